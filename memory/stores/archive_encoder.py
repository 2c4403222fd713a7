"""The encoder of the archive's vectors: the process's model, loaded on first use, and the
record in Redis of whose vectors the archive (Chroma and the entry index) holds, checked before
the model reads or writes them."""

from __future__ import annotations

import asyncio
from functools import partial

import numpy as np

from memory.encoders.embeddings import LocalEmbeddings
from memory.encoders.paired import current_record
from memory.errors import BackendUnavailable, EncoderMismatch
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import PREFIX, RedisBackend, RunBlocking

# The encoder whose vectors the archive holds (Chroma and the entry index): its record
# (the encoder's name, and whatever else its vectors depend on: Encoder.record).
ENCODER_KEY = f"{PREFIX}:encoder"
# A re-embedding under way (or interrupted): {"to": encoder record}, and the chats it has finished.
REEMBED_KEY = f"{PREFIX}:reembed"
REEMBED_DONE_KEY = f"{PREFIX}:reembed:done"
REEMBED_LEASE = "goat reembed"  # held, as a chat's lease is, by the one re-embedding that runs
# Archives written before the encoder was recorded hold this one's vectors.
FIRST_ENCODER = "minilm-l6"


class EncoderModel:
    """The process's encoder, loaded once in a task of its own: a turn whose deadline gives up
    waiting cancels only its wait (shield), never the load, so the next turn finds it done."""

    def __init__(self, name: str, run_blocking: RunBlocking, ready: LocalEmbeddings | None = None) -> None:
        """Args:
            name: the model's (``embeddings.model``).
            run_blocking: runs the load in memory's thread pool.
            ready: a model already loaded, used instead of loading one.
        """
        self._name, self._run_blocking = name, run_blocking
        self._embeddings = ready
        self._load: asyncio.Future[LocalEmbeddings] | None = None

    async def load(self) -> LocalEmbeddings:
        """The model, whether or not the archive holds its vectors."""
        if self._embeddings is None:
            if self._load is None:
                self._load = asyncio.ensure_future(self._run_blocking(LocalEmbeddings, None, self._name))
            self._embeddings = await asyncio.shield(self._load)
        return self._embeddings


class ArchiveEncoder:
    """The model, handed out once the archive is found to hold its vectors."""

    def __init__(self, model: EncoderModel, redis: RedisBackend, l3: L3Backend) -> None:
        """Args:
            model: the process's encoder.
            redis: where the archive's encoder is recorded, and the entry index.
            l3: Chroma, looked at for vectors when none is recorded.
        """
        self._model, self._redis, self._l3 = model, redis, l3
        self._checked = False

    async def embeddings(self, *, checked: bool = True) -> LocalEmbeddings:
        """The process's encoder. ``checked``: only if the archive holds its vectors (raises
        :class:`EncoderMismatch` otherwise); only a re-embedding uses one that may not."""
        embeddings = await self._model.load()
        if checked and not self._checked:
            await self.check(embeddings.record)
            self._checked = True
        return embeddings

    async def check(self, name: str) -> None:
        """Raises :class:`EncoderMismatch` unless the archive's vectors are those of the encoder
        recorded as ``name`` (:attr:`Encoder.record`). An archive with none yet is recorded as
        ``name``'s; one from before encoders were recorded is MiniLM's."""
        redis = await self._redis.client()
        async with redis.pipeline(transaction=False) as pipe:  # one round trip: it runs before every write
            unfinished, recorded = await pipe.hget(REEMBED_KEY, "to").get(ENCODER_KEY).execute()
        if unfinished is not None:
            running = await (await self._redis.chat_locks()).held(REEMBED_LEASE)
            raise EncoderMismatch(None, name, reembedding=unfinished.decode(), running=running)
        archive = current_record(recorded.decode()) if recorded is not None else await self._unrecorded()
        if archive is None:
            await redis.set(ENCODER_KEY, name, nx=True)
            archive = (await redis.get(ENCODER_KEY)).decode()
        if archive != name:
            if await self._holds_vectors():
                raise EncoderMismatch(archive, name)
            await redis.set(ENCODER_KEY, name)  # nothing written with the other one yet

    async def of_archive(self) -> str | None:
        """The encoder of the archive's vectors; None for an archive that holds none yet."""
        if (recorded := await (await self._redis.client()).get(ENCODER_KEY)) is not None:
            return current_record(recorded.decode())
        return await self._unrecorded()

    async def _unrecorded(self) -> str | None:
        """An archive from before encoders were recorded holds MiniLM's vectors, if any."""
        return FIRST_ENCODER if await self._holds_vectors() else None

    async def _holds_vectors(self) -> bool:
        """Whether the archive holds any vector: a chat in the entry index or in Chroma (when
        Chroma is down, only the entry index is looked at)."""
        async for _ in (await self._redis.client()).scan_iter(match=f"{PREFIX}:lex:*:meta", count=1000):
            return True
        try:
            store = await self._l3.episodic()
            return bool(await self._l3.run_blocking(store.chat_ids))
        except BackendUnavailable:
            return False

    async def embed(self, texts: list[str], every_language: bool = True) -> np.ndarray:
        """The texts' vectors, computed once and handed to both Chroma and the entry index
        (``every_language`` False: for a chat that holds English only, see :meth:`Encoder.encode`).
        The archive's encoder is checked again on every write: a re-embedding started since
        this process began stops its writes (they wait in the outbox) instead of mixing encoders."""
        embeddings = await self._model.load()
        await self.check(embeddings.record)
        return await self._l3.run_blocking(partial(embeddings.encoder.encode, every_language=every_language), texts)
