"""The word index kept up with what Chroma holds: entries read back from Chroma with their vectors
and indexed, a chat's index caught up with its archived turns, or built afresh."""

from __future__ import annotations

import asyncio

from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import RedisBackend, gather_bounded
from memory.stores.entry_index import IndexEntry
from memory.turns import archive_id

_INDEX_BATCH = 512  # archived turns read back from Chroma (~1 ms each) and indexed per call


class IndexSync:
    def __init__(self, redis: RedisBackend, l3: L3Backend) -> None:
        self._redis, self._l3 = redis, l3

    async def index_entries(self, chat_id: str, ids: list[str]) -> int:
        """Add these L3 entries of a chat to its word index and centroid, read back from Chroma
        with their vectors; entries already indexed (or not in Chroma) are skipped. Returns how
        many were added. For entries written before the index held them: what this process
        writes is indexed as it is written."""
        index = await self._redis.lexical_index()
        missing = await index.entries.missing(chat_id, ids)
        if not missing:
            return 0
        store = await self._l3.episodic()
        found = await self._l3.run_blocking(store.get_with_vectors, [chat_id], missing)
        return await index.add(
            chat_id, [IndexEntry(hit["id"], hit["content"], vector, hit["timestamp"]) for hit, vector in found]
        )

    async def sync_index(self, chats: list[str]) -> None:
        """Bring the chats' word index up to their archived turns, now: the turns it lacks
        (written by another process, or past a gap) are read back from Chroma and indexed; an
        index of another scheme (words folded otherwise, or no times and vectors: an older
        version's) is indexed afresh."""
        index = await self._redis.lexical_index()
        progress = await self.index_progress(chats)
        for chat, (indexed, archived) in zip(chats, progress):
            if indexed == 0 and await index.outdated(chat):  # an outdated index counts no turn indexed
                await self.index_afresh(chat, drop=True)
            elif archived > indexed:
                await self._index_turns(chat, indexed, archived)

    async def _index_turns(self, chat_id: str, indexed: int, archived: int) -> None:
        """Index archived turns indexed+1..archived, in batches, recording progress after each.
        A turn not in Chroma yet (waiting in the outbox) is passed over; it is indexed when the
        archiver writes it."""
        index = await self._redis.lexical_index()
        for start in range(indexed, archived, _INDEX_BATCH):
            end = min(archived, start + _INDEX_BATCH)
            await self.index_entries(chat_id, [archive_id(chat_id, n) for n in range(start + 1, end + 1)])
            await index.advance_turns_indexed(chat_id, range(start + 1, end + 1))

    async def rebuild_index(self, chat_id: str) -> None:
        """Index the chat's L3 afresh from what Chroma holds (after entries were deleted: the
        index has no way to take one out)."""
        await self.forget_index(chat_id)
        await self.index_afresh(chat_id)

    async def index_afresh(self, chat_id: str, drop: bool = False) -> None:
        """Index every L3 entry of the chat that Chroma holds (into an empty index: ``drop``
        empties it first), then count all its archived turns as indexed."""
        if drop:
            await (await self._redis.entry_index()).drop(chat_id)
        store = await self._l3.episodic()
        entries = await self._l3.run_blocking(store.entries, chat_id)
        for start in range(0, len(entries), _INDEX_BATCH):
            await self.index_entries(chat_id, [hit["id"] for hit in entries[start : start + _INDEX_BATCH]])
        [(_, archived)] = await self.index_progress([chat_id])
        index = await self._redis.lexical_index()
        for start in range(0, archived, _INDEX_BATCH):
            await index.advance_turns_indexed(chat_id, range(start + 1, min(archived, start + _INDEX_BATCH) + 1))

    async def forget_index(self, chat_id: str) -> None:
        """Drop the chat's word index and centroid (with the chat's L3: turn numbers restart)."""
        await (await self._redis.entry_index()).drop(chat_id)

    async def index_progress(self, chats: list[str]) -> list[tuple[int, int]]:
        """Per chat: (archived turns its word index holds, archived turns)."""
        index, working = await self._redis.lexical_index(), await self._redis.working()

        async def progress_of(chat: str) -> tuple[int, int]:
            indexed, archived = await asyncio.gather(index.indexed_turns(chat), working.completed_turns(chat))
            return indexed, archived

        return await gather_bounded(progress_of, chats)
