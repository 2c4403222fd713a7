"""The physical backends behind the layers, each connected lazily and failing on its own.

Redis (embedded unless ``redis.url`` is set; a Redis Cluster with ``redis.cluster``) holds
L1, L2, L2.5, the word index, the locks, the outbox and the turn journal; Chroma (embedded
unless ``chroma.url``) holds L3; the embedding model runs locally. Blocking work (Chroma,
the model) runs in a thread pool of its own, so that a stuck call can be abandoned by a
caller's deadline without blocking the event loop or the default executor.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, TypeVar

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError

from memory.stores.cache import SearchCache
from memory.stores.chat_lock import ChatLocks
from memory.encoders.embeddings import LocalEmbeddings, encoder_class
from memory.stores.episodic import EpisodicStore
from memory.stores.erasure import DataFolderErasure, SharedOrAlone
from memory.errors import BackendUnavailable, EncoderMismatch
from memory.stores.facts import FactsStore, RedisFactsStore
from memory.stores.letta import LettaFactsStore
from memory.stores.entry_index import EntryIndex
from memory.stores.lexical import LexicalIndex
from memory.redis_clients import async_client
from memory.stores.redis_server import EmbeddedRedis
from memory.settings import MemorySettings
from memory.stores.working import WorkingMemory
from memory.words import Words

log = logging.getLogger(__name__)
T = TypeVar("T")

PREFIX = "goat"
# The encoder whose vectors the archive holds (Chroma and the entry index): its record
# (the encoder's name, and whatever else its vectors depend on: Encoder.record).
ENCODER_KEY = f"{PREFIX}:encoder"
# A re-embedding under way (or interrupted): {"to": encoder record}, and the chats it has finished.
REEMBED_KEY = f"{PREFIX}:reembed"
REEMBED_DONE_KEY = f"{PREFIX}:reembed:done"
REEMBED_LEASE = "goat reembed"  # held, as a chat's lease is, by the one re-embedding that runs
# Archives written before the encoder was recorded hold this one's vectors.
FIRST_ENCODER = "minilm-l6"
# Per-chat Redis reads of a wide scope ("user", "global") in flight at once: the client's
# connection pool holds 100.
_CHATS_AT_ONCE = 32


async def gather_bounded(read: Callable[[str], Awaitable[T]], chats: Iterable[str],
                         limit: int = _CHATS_AT_ONCE) -> list[T]:
    """``read`` of each chat, as ``asyncio.gather``, with at most ``limit`` running at once.
    Each call is made when its turn comes, so a cancelled gather leaves none un-awaited."""
    semaphore = asyncio.Semaphore(limit)

    async def one(chat: str) -> T:
        async with semaphore:
            return await read(chat)

    return await asyncio.gather(*(one(chat) for chat in chats))


def is_redis_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis's failure: its own error, or Redis found unavailable."""
    return isinstance(exc, RedisError) or (isinstance(exc, BackendUnavailable) and exc.backend == "redis")


def cache_scope_key(chat_id: str, user_id: str, scope: str) -> str:
    """The L2.5 cache's scope of a search: what one L3 write invalidates."""
    return {"chat": f"chat:{chat_id}", "user": f"user:{user_id}"}.get(scope, "global")


class Backends:
    """The connections and stores of one process, opened on first use."""

    def __init__(
        self,
        settings: MemorySettings,
        *,
        episodic: EpisodicStore | None = None,
        facts: FactsStore | None = None,
        embeddings: LocalEmbeddings | None = None,
    ) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="goat-memory")
        # Chroma's SQLite does not see the locks of Python's: its calls wait while the erasure rewrites its files.
        self._chroma_files = SharedOrAlone()
        self._redis: aioredis.Redis | aioredis.RedisCluster | None = None
        self.redis_url: str | None = None  # once connected: the embedded server's, or the configured one
        self._embedded_redis: EmbeddedRedis | None = None
        self._redis_lock = asyncio.Lock()
        self._working: WorkingMemory | None = None
        self._cache: SearchCache | None = None
        self._chat_locks: ChatLocks | None = None
        self._facts_locks: ChatLocks | None = None
        self._lexical: LexicalIndex | None = None
        self._episodic = episodic
        self._episodic_load: asyncio.Future[EpisodicStore] | None = None
        self._erasure = DataFolderErasure(settings, self._chroma_files, self._executor)
        self._facts = facts
        self._embeddings = embeddings
        self._embeddings_load: asyncio.Future[LocalEmbeddings] | None = None
        self._encoder_checked = False
        # L3's health as last seen by a Chroma call ("" when it worked): what the archive node
        # reports about the turns it leaves in the outbox.
        self.l3_problem = ""

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in the memory thread pool (abandonable by a caller's deadline); not while the
        embedded Chroma's files are erased (:meth:`erase_deleted`)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._sharing, fn, args)

    def _sharing(self, fn: Callable[..., T], args: tuple) -> T:
        with self._chroma_files.shared():  # held by the pool's thread for as long as fn runs
            return fn(*args)

    async def l3(self, call: Callable[..., T], *args: Any) -> T:
        """A Chroma call, in the memory pool; its outcome is L3's health as last seen."""
        try:
            result = await self.run_blocking(call, *args)
        except Exception as exc:
            self.l3_problem = f"{type(exc).__name__}: {exc}"
            raise
        self.l3_problem = ""
        return result

    async def redis(self) -> aioredis.Redis | aioredis.RedisCluster:
        """The Redis client (a cluster client with ``redis.cluster``; either serves every store)."""
        async with self._redis_lock:
            if self._redis is None:
                url, cluster = self.settings.redis.url, self.settings.redis.cluster
                if url is None:
                    # In a worker thread: resolving a relative data folder reads the working
                    # directory, a blocking call LangGraph's server refuses on its event loop.
                    self._embedded_redis = server = await self.run_blocking(EmbeddedRedis, self.settings.data_dir)
                    try:
                        url = await self.run_blocking(server.start)
                    except Exception as exc:
                        raise BackendUnavailable(
                            "redis", f"the embedded server did not start ({exc})", f"make {server.folder} readable "
                            "and writable, with space free, or set GOAT_REDIS_URL to a Redis server") from exc
                client = async_client(url, cluster=cluster)
                try:
                    # ECHO, not PING: a server that cannot write to its disk refuses PING, yet serves reads.
                    await client.echo("")
                    # A cluster's node reached as one server answers MOVED for most keys: say so now.
                    in_cluster = cluster or await _is_cluster_node(client)
                except (RedisError, RedisClusterException, OSError) as exc:
                    await client.aclose()
                    what = f"the Redis Cluster at {url}" if cluster else url
                    raise BackendUnavailable(
                        "redis", f"cannot reach {what} ({exc})", "start it or fix GOAT_REDIS_URL"
                    ) from exc
                if in_cluster != cluster:
                    await client.aclose()
                    raise BackendUnavailable(
                        "redis", f"{url} is a node of a Redis Cluster", "set GOAT_REDIS__CLUSTER=true"
                    )
                self._redis, self.redis_url = client, url
            return self._redis

    # The model and the Chroma store load once, in a task of their own: a turn whose
    # deadline gives up waiting cancels only its wait (shield), never the load, so the
    # next turn finds it done instead of starting over.

    async def embeddings(self, *, checked: bool = True) -> LocalEmbeddings:
        """The process's encoder. ``checked``: only if the archive holds its vectors (raises
        :class:`EncoderMismatch` otherwise); only a re-embedding uses one that may not."""
        if self._embeddings is None:
            if self._embeddings_load is None:
                name = self.settings.embeddings.model
                self._embeddings_load = asyncio.ensure_future(self.run_blocking(LocalEmbeddings, None, name))
            self._embeddings = await asyncio.shield(self._embeddings_load)
        if checked and not self._encoder_checked:
            await self.check_encoder(self._embeddings.record)
            self._encoder_checked = True
        return self._embeddings

    async def check_encoder(self, name: str) -> None:
        """Raises :class:`EncoderMismatch` unless the archive's vectors are those of the encoder
        recorded as ``name`` (:attr:`Encoder.record`). An archive with none yet is recorded as
        ``name``'s; one from before encoders were recorded is MiniLM's."""
        redis = await self.redis()
        async with redis.pipeline(transaction=False) as pipe:  # one round trip: it runs before every write
            unfinished, recorded = await pipe.hget(REEMBED_KEY, "to").get(ENCODER_KEY).execute()
        if unfinished is not None:
            running = await (await self.chat_locks()).held(REEMBED_LEASE)
            raise EncoderMismatch(None, name, reembedding=unfinished.decode(), running=running)
        archive = recorded.decode() if recorded is not None else await self._unrecorded_encoder()
        if archive is None:
            await redis.set(ENCODER_KEY, name, nx=True)
            archive = (await redis.get(ENCODER_KEY)).decode()
        if archive != name:
            if await self._holds_vectors():
                raise EncoderMismatch(archive, name)
            await redis.set(ENCODER_KEY, name)  # nothing written with the other one yet

    async def archive_encoder(self) -> str | None:
        """The encoder of the archive's vectors; None for an archive that holds none yet."""
        if (recorded := await (await self.redis()).get(ENCODER_KEY)) is not None:
            return recorded.decode()
        return await self._unrecorded_encoder()

    async def _unrecorded_encoder(self) -> str | None:
        """An archive from before encoders were recorded holds MiniLM's vectors, if any."""
        return FIRST_ENCODER if await self._holds_vectors() else None

    async def _holds_vectors(self) -> bool:
        """Whether the archive holds any vector: a chat in the entry index or in Chroma (when
        Chroma is down, only the entry index is looked at)."""
        async for _ in (await self.redis()).scan_iter(match=f"{PREFIX}:lex:*:meta", count=1000):
            return True
        try:
            store = await self.episodic()
            return bool(await self.run_blocking(store.chat_ids))
        except BackendUnavailable:
            return False

    async def embed(self, texts: list[str], every_language: bool = True) -> np.ndarray:
        """The texts' vectors, computed once and handed to both Chroma and the entry index
        (``every_language`` False: for a chat that holds English only, see :meth:`Encoder.encode`).
        The archive's encoder is checked again on every write: a re-embedding started since
        this process began stops its writes (they wait in the outbox) instead of mixing encoders."""
        embeddings = await self.embeddings(checked=False)
        await self.check_encoder(embeddings.record)
        return await self.run_blocking(partial(embeddings.encoder.encode, every_language=every_language), texts)

    async def episodic(self) -> EpisodicStore:
        if self._episodic is None:
            failed = self._episodic_load is not None and self._episodic_load.done() and (
                self._episodic_load.exception() is not None
            )
            if self._episodic_load is None or failed:  # a failed open is retried next time
                self._episodic_load = asyncio.ensure_future(self._load_episodic())
            try:
                self._episodic = await asyncio.shield(self._episodic_load)
            except BackendUnavailable as exc:
                self.l3_problem = str(exc)
                raise
        return self._episodic

    async def _load_episodic(self) -> EpisodicStore:
        return await self.run_blocking(self._open_episodic, await self.embeddings(checked=False))

    def _open_episodic(self, embeddings: LocalEmbeddings) -> EpisodicStore:
        url = self.settings.chroma.url
        try:
            if url:
                store = EpisodicStore.http(url, embeddings)
                store.heartbeat()
                return store
            return EpisodicStore.embedded(self._erasure.opening_chroma(), embeddings)
        except Exception as exc:
            raise BackendUnavailable(
                "chroma", f"cannot open {url or 'the embedded store'} ({exc})", "run `goat doctor`"
            ) from exc

    async def working(self) -> WorkingMemory:
        if self._working is None:
            self._working = WorkingMemory(await self.redis(), PREFIX)
        return self._working

    async def cache(self) -> SearchCache:
        if self._cache is None:
            self._cache = SearchCache(await self.redis(), self.settings.cache.ttl_seconds, PREFIX)
        return self._cache

    async def searches_cached(self) -> None:
        """Wait for this process's writes to the search cache under way (a turn's, before it lets
        its chat go: a forget that holds the chat next, here or in another process, finds them landed)."""
        if self._cache is not None:
            await self._cache.written()

    async def facts(self) -> FactsStore:
        if self._facts is None:
            letta = self.settings.letta
            if letta.url:
                self._facts = LettaFactsStore(
                    letta.url, token=letta.token.get_secret_value() if letta.token else None,
                    timeout=letta.timeout, shared=self.settings.memory.scope == "global", lease=self._facts_lease,
                )
            else:
                self._facts = RedisFactsStore(await self.redis(), PREFIX)
        return self._facts

    @asynccontextmanager
    async def _facts_lease(self, name: str) -> AsyncIterator[None]:
        # Letta's facts are read, changed and written back: one writer at a time per agent,
        # across workers (the chat lease's mechanism, on its own keys).
        if self._facts_locks is None:
            self._facts_locks = ChatLocks(await self.redis(), f"{PREFIX}:facts", self.settings.redis.chat_lock_seconds)
        async with self._facts_locks.hold(name):
            yield

    async def lexical_index(self) -> LexicalIndex:
        if self._lexical is None:
            encoder = encoder_class(self.settings.embeddings.model)
            self._lexical = LexicalIndex(await self.redis(), PREFIX, Words(self.settings.words.stemmer),
                                         encoder.dimensions, encoder.english_block)
        return self._lexical

    async def entry_index(self) -> EntryIndex:
        """The chats' entry index (ids, times, vectors, centroids): the one the word index writes."""
        return (await self.lexical_index()).entries

    async def chat_locks(self) -> ChatLocks:
        if self._chat_locks is None:
            self._chat_locks = ChatLocks(await self.redis(), PREFIX, self.settings.redis.chat_lock_seconds)
        return self._chat_locks

    # ---- the cached searches a write invalidates ----------------------------------------

    async def invalidate_searches_of(self, chat_id: str, user_ids: set[str], *, delete: bool = False) -> None:
        """A write to (or deletion of) a chat's L3 changes the searches of every scope it is in.
        With ``delete``, the cached results are deleted rather than left to expire."""
        scopes = sorted({cache_scope_key(chat_id, user_id, scope)
                         for user_id in user_ids or {""} for scope in ("chat", "user", "global")})
        cache = await self.cache()
        await (cache.drop(*scopes) if delete else cache.invalidate(*scopes))

    # ---- erasing from disk ----------------------------------------------------------------

    async def erase_deleted(self, *, l3: bool) -> None:
        """Erase from the data folder's files what deletes took out (:meth:`DataFolderErasure.erase_deleted`).

        Raises:
            NotErased: a rewrite failed, or, with ``l3``, another process uses the embedded Chroma;
                what was deleted may still be in a file.
        """
        server = self._embedded_redis
        await self._erasure.erase_deleted(await self.redis(), server.folder if server else None, l3=l3)

    async def clear_unset_bytes_after_forget(self) -> None:
        """After each archive write of a process that has forgotten something: the vector index
        files written since, their unset bytes zeroed (:meth:`DataFolderErasure.clear_after_forget`)."""
        await self._erasure.clear_after_forget(self._redis)

    # ---- lifecycle ----------------------------------------------------------------------

    async def aclose(self) -> None:
        # Stuck searches abandoned by a deadline must not hold shutdown.
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._episodic is not None:
            self._episodic.close()
            await self._erasure.clear_at_close(self._redis)
        if isinstance(self._facts, LettaFactsStore):
            await self._facts.aclose()
            self._facts = None
        if self._redis is not None:
            await self.searches_cached()
            await self._redis.aclose()
            self._redis = self._working = self._cache = self._chat_locks = self._facts_locks = self._lexical = None
        if self._embedded_redis is not None:
            await asyncio.to_thread(self._embedded_redis.stop)
            self._embedded_redis = None

    def stop_at_exit(self) -> None:
        """Synchronous last resort for processes that never close their services (the
        LangGraph server): stop the embedded Redis if this process started it."""
        if self._embedded_redis is not None:
            self._embedded_redis.stop()


async def _is_cluster_node(client: aioredis.Redis) -> bool:
    """Whether the server is a node of a Redis Cluster (a server that hides INFO is taken as not)."""
    try:
        return bool((await client.info("cluster")).get("cluster_enabled"))
    except RedisError:
        return False
