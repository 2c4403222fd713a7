"""L2.5 session cache: L3 search results kept for a TTL, invalidated per scope.

Every entry key contains its scope's generation number. Invalidating a scope
increments that number (O(1)): its old entries are never read again and expire
by their TTL. A scope's first generation is a random number, so a scope dropped
and met again never returns to a generation a search under way still holds.
Keys carry the scope as a hash tag (``goat:cache:{chat:42}:…``) so a scope's
generation and entries share one Redis Cluster slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from typing import Any

import orjson
from redis.asyncio import Redis

from memory.redis_clients import glob_escaped

log = logging.getLogger(__name__)

# Read the scope's generation (starting it at ARGV[3] if it has none) and the entry under it,
# in one round trip. KEYS[1]: generation counter. ARGV: entry key stem, digest, first generation.
# Returns {generation, value or nil}.
_LOOKUP = """
local generation = redis.call('GET', KEYS[1])
if not generation then
  generation = ARGV[3]
  redis.call('SET', KEYS[1], generation)
end
return {generation, redis.call('GET', ARGV[1] .. generation .. ':' .. ARGV[2])}
"""

# Write an entry only while its scope's generation is still the one its search was looked up
# under: a search that outlives an invalidation or a drop (another process's, or one that did
# not hold the chat, such as a search in another user's chat under a wider scope) writes nothing.
# KEYS[1]: generation counter, KEYS[2]: entry. ARGV: generation, value, TTL. Returns 1 if written.
_PUT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""


class SearchCache:
    def __init__(self, redis: Redis, ttl_seconds: int, prefix: str = "goat") -> None:
        if ttl_seconds < 1:
            raise ValueError(f"ttl_seconds must be >= 1, got {ttl_seconds}")
        self._redis = redis
        self._ttl_seconds = ttl_seconds
        self._prefix = prefix
        self._lookup = redis.register_script(_LOOKUP)
        self._put = redis.register_script(_PUT)
        # (scope, digest) -> its write under way (put_behind), until it has landed
        self._writing: dict[tuple[str, str], asyncio.Future[None]] = {}

    @staticmethod
    def digest(query: str, **params: object) -> str:
        """A stable key for a search: same query and parameters, same digest."""
        canonical = json.dumps(
            {"query": query, "params": params},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,  # datetimes and the like, by their text
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]

    async def lookup(self, scope_key: str, digest: str) -> tuple[Any, str]:
        """(the cached value, as JSON read it, or None; the scope's generation it was looked up
        under); a write of the same search this process started is waited for first."""
        if (writing := self._writing.get((scope_key, digest))) is not None:
            await asyncio.wait([writing])
        generation, raw = await self._lookup(
            keys=[self._generation_key(scope_key)],
            args=[self._entry_stem(scope_key), digest, secrets.randbelow(1 << 62)],
        )
        generation = generation.decode() if isinstance(generation, bytes) else generation
        return (None if raw is None else orjson.loads(raw)), generation

    async def put(self, scope_key: str, digest: str, value: Any, generation: str) -> None:
        """Cache ``value`` under the generation its lookup saw, if that is still the scope's:
        results computed before an invalidation or a drop are not written."""
        await self._put(keys=[self._generation_key(scope_key), f"{self._entry_stem(scope_key)}{generation}:{digest}"],
                        args=[generation, orjson.dumps(value), self._ttl_seconds])

    def put_behind(self, scope_key: str, digest: str, value: Any, generation: str) -> None:
        """:meth:`put`, without waiting for it: the search that found ``value`` goes on meanwhile.
        A failed write is logged. Whoever must know it landed (a turn before it lets its chat go,
        :meth:`drop` and :meth:`clear` before they delete) waits with :meth:`written`."""
        writing = asyncio.ensure_future(self._put_logged(scope_key, digest, value, generation))
        self._writing[(scope_key, digest)] = writing

        def landed(_: asyncio.Future[None]) -> None:
            if self._writing.get((scope_key, digest)) is writing:
                del self._writing[(scope_key, digest)]

        writing.add_done_callback(landed)

    async def written(self) -> None:
        """Wait for the writes this process started with :meth:`put_behind` to land (or fail)."""
        if self._writing:
            await asyncio.wait(list(self._writing.values()))

    async def _put_logged(self, scope_key: str, digest: str, value: Any, generation: str) -> None:
        try:
            await self.put(scope_key, digest, value, generation)
        except Exception as exc:  # nobody waits for the outcome: a lost write costs a search later
            log.warning("L2.5 cache write failed: %s", exc)

    async def invalidate(self, *scope_keys: str) -> None:
        """Forget every cached search of these scopes."""
        if not scope_keys:
            return
        # No MULTI: in a cluster the scopes' counters may live on different nodes.
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope_key in scope_keys:
                pipe.incr(self._generation_key(scope_key))
            await pipe.execute()

    async def drop(self, *scope_keys: str) -> None:
        """Delete every cached search of these scopes (forgetting a person: an invalidation
        leaves the old entries to expire), once this process's writes under way have landed."""
        await self.written()
        for scope_key in scope_keys:
            # SCAN's default of 10 keys a call took 18 s at 100 000 archived turns (220 000 keys).
            keys = [key async for key in self._redis.scan_iter(match=f"{glob_escaped(self._entry_stem(scope_key))}*",
                                                                count=1000)]
            await self._redis.unlink(self._generation_key(scope_key), *keys)

    async def clear(self) -> None:
        """Delete every cached search (the archive's vectors changed), once this process's writes
        under way have landed."""
        await self.written()
        keys = [key async for key in self._redis.scan_iter(match=f"{glob_escaped(self._prefix)}:cache:*", count=1000)]
        async with self._redis.pipeline(transaction=False) as pipe:  # a key a command: in a cluster, many slots
            for key in keys:  # as a command of its own: a cluster's pipeline.unlink is a coroutine, queuing nothing
                pipe.execute_command("UNLINK", key)
            await pipe.execute()

    def _generation_key(self, scope_key: str) -> str:
        return f"{self._prefix}:cache:gen:{{{scope_key}}}"

    def _entry_stem(self, scope_key: str) -> str:
        return f"{self._prefix}:cache:{{{scope_key}}}:"
