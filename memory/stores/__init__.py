"""Where memory is kept: Redis (L2, the word and entry indexes, the outbox, the cache, the chat
leases, who wrote to which chat, the embedded server), Chroma (L3), the facts (Redis or Letta),
and what writes, migrates, re-embeds and forgets them. The façade opens them (a ``Backends``);
outside ``memory/`` only these names are used: the embedded Redis (the benchmarks and tests start
their own), the chat leases (the webhook's inbox), and what the benchmarks slow down or time.
Redis's clients come from ``memory/redis_clients.py``."""

from memory.stores.chat_lock import ChatLocks
from memory.stores.episodic import EpisodicStore
from memory.stores.redis_server import EmbeddedRedis, answers_ping

__all__ = ["ChatLocks", "EmbeddedRedis", "EpisodicStore", "answers_ping"]
