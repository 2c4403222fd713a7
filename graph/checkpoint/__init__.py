"""The graph's persistence: a LangGraph checkpointer on plain Redis (see ``saver``), and the
services of every process that writes or erases the chats' checkpoints (see ``services``)."""

from graph.checkpoint.saver import DEFAULT_KEEP_TURNS, DEFAULT_PREFIX, RedisCheckpointSaver
from graph.checkpoint.services import CheckpointedServices, served_services

__all__ = ["DEFAULT_KEEP_TURNS", "DEFAULT_PREFIX", "CheckpointedServices", "RedisCheckpointSaver", "served_services"]
