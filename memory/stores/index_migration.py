"""The word index brought to this version's scheme: every chat's index, once per process, as the
archive connects or first writes. A Redis mark says which scheme a migration last brought every
chat's index to; a lease lets one process migrate at a time; a long migration tells how far it is."""

from __future__ import annotations

import asyncio
import logging
import time

from memory.stores.archive_encoder import REEMBED_KEY
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import PREFIX, RedisBackend, is_redis_failure
from memory.stores.index_sync import IndexSync

log = logging.getLogger(__name__)

# The word index's scheme every chat's index was last brought to (see IndexMigration.bring_index_current).
INDEX_SCHEME_KEY = f"{PREFIX}:word_index_scheme"
_PROGRESS_EVERY_S = 5.0  # how often a long migration of the word index says how far it is
_MIGRATION_LEASE = "word index migration"  # held as a chat's lease is: one migrating process at a time


class IndexMigration:
    def __init__(self, redis: RedisBackend, l3: L3Backend, indexer: IndexSync) -> None:
        """``indexer``: what indexes the chats the migration finds behind."""
        self._redis, self._l3, self._indexer = redis, l3, indexer
        self._index_current = False  # every chat's word index was brought to this version's scheme
        self._bringing_index_current = asyncio.Lock()

    async def bring_index_current(self) -> bool:
        """Bring every chat's word index to this version's scheme and up to its archived turns,
        once per process (the write path keeps it so from then on, and the read path trusts it).
        A Redis mark says when a process already did: then this is one read. One process
        migrates at a time (a lease); the others wait for it and find the mark. A long
        migration logs how far it is every few seconds.

        Returns:
            False when it could not be done now (L3 unreachable, a re-embedding unfinished):
            logged, and tried again at the next connect or write.
        Raises:
            Redis's failures.
        """
        if self._index_current:
            return True
        async with self._bringing_index_current:
            if not self._index_current:
                try:
                    self._index_current = await self._migrate_index()
                except Exception as exc:
                    if is_redis_failure(exc):
                        raise
                    log.warning("the word index was not brought up to date (%s: %s); tried again at the "
                                "next start or write", type(exc).__name__, exc)
            return self._index_current

    async def _migrate_index(self) -> bool:
        redis, index = await self._redis.client(), await self._redis.lexical_index()
        if (await redis.get(INDEX_SCHEME_KEY) or b"").decode() == index.scheme:
            return True
        async with (await self._redis.chat_locks()).hold(_MIGRATION_LEASE):
            if (await redis.get(INDEX_SCHEME_KEY) or b"").decode() == index.scheme:
                return True  # another process did it meanwhile
            if await redis.exists(REEMBED_KEY):
                log.warning("the word index is brought up to date once the re-embedding has finished")
                return False
            store = await self._l3.episodic()
            chats = await self._l3.call(store.chat_ids)
            progress = await self._indexer.index_progress(chats)
            # Archived turns the index lacks, or nothing counted as indexed: an index of another
            # scheme, or a chat of saved memories alone, which no turn count tells apart.
            behind = [(chat, indexed == 0 == archived) for chat, (indexed, archived) in zip(chats, progress)
                      if archived > indexed or indexed == 0]
            if behind:
                await self._index_chats(behind, len(chats))
            await redis.set(INDEX_SCHEME_KEY, index.scheme)
            return True

    async def _index_chats(self, behind: list[tuple[str, bool]], archived_chats: int) -> None:
        index = await self._redis.lexical_index()
        started = said = time.monotonic()
        log.warning("bringing the word index of up to %d of %d archived chat(s) up to date (an older version "
                    "wrote them, or Redis lost their index); searches by words and time ranges see them when it "
                    "is done",
                    len(behind), archived_chats)
        for done, (chat, no_turns) in enumerate(behind, 1):
            if no_turns:  # nothing counts as indexed: every entry is read, the indexed ones skipped
                await self._indexer.index_afresh(chat, drop=await index.outdated(chat))
            else:
                await self._indexer.sync_index([chat])
            if time.monotonic() - said >= _PROGRESS_EVERY_S or done == len(behind):
                said = time.monotonic()
                log.warning("word index: %d of %d chat(s) done (%.0f s)", done, len(behind), said - started)
