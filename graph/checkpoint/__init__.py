"""The graph's persistence: a LangGraph checkpointer on plain Redis (see ``saver``)."""

from graph.checkpoint.saver import DEFAULT_KEEP_TURNS, DEFAULT_PREFIX, RedisCheckpointSaver

__all__ = ["DEFAULT_KEEP_TURNS", "DEFAULT_PREFIX", "RedisCheckpointSaver"]
