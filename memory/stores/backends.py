"""The physical backends of one process, each connected lazily and failing on its own.

Redis (``memory/stores/redis_backend.py``) holds L1, L2, L2.5, the word index, the locks, the
outbox and the turn journal; Chroma (``memory/stores/l3_backend.py``) holds L3; the embedding
model runs locally (``memory/stores/archive_encoder.py``). :class:`Backends` builds them and
closes them; the stores and services are each handed the ones they use.
"""

from __future__ import annotations

from memory.encoders.embeddings import LocalEmbeddings
from memory.settings import MemorySettings
from memory.stores.archive_encoder import ArchiveEncoder, EncoderModel
from memory.stores.episodic import EpisodicStore
from memory.stores.erasure import DataFolderErasure
from memory.stores.facts import FactsStore
from memory.stores.l3_backend import BlockingPool, L3Backend
from memory.stores.redis_backend import RedisBackend


class Backends:
    """The backends of one process, opened on first use: Redis, Chroma, the encoder, and the
    erasure of what they wrote to the data folder."""

    def __init__(
        self,
        settings: MemorySettings,
        *,
        episodic: EpisodicStore | None = None,
        facts: FactsStore | None = None,
        embeddings: LocalEmbeddings | None = None,
    ) -> None:
        """``episodic``, ``facts``, ``embeddings``: backends already open, used instead of opening them."""
        self._pool = BlockingPool()
        self.redis = RedisBackend(settings, self._pool.run, facts)
        self.erasure = DataFolderErasure(settings, self._pool.files, self._pool.executor, self.redis)
        model = EncoderModel(settings.embeddings.model, self._pool.run, embeddings)
        self.l3 = L3Backend(settings.chroma.url, self._pool, self.erasure, model.load, episodic,
                            settings.chroma.open_chats)
        self.encoder = ArchiveEncoder(model, self.redis, self.l3)

    async def aclose(self) -> None:
        """Close every backend (each reopens on use)."""
        await self.l3.finish_release()
        self._pool.shutdown()
        if (store := self.l3.opened) is not None:
            store.close()
            await self.erasure.clear_at_close()
        await self.redis.aclose()

    def stop_at_exit(self) -> None:
        """Synchronous last resort for processes that never close their services (the
        LangGraph server): stop the embedded Redis if this process started it."""
        self.redis.stop_at_exit()
