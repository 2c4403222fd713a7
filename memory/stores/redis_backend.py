"""Redis, connected on first use (embedded unless ``redis.url`` is set; a Redis Cluster with
``redis.cluster``), and the stores it holds: L1 facts (unless Letta keeps them), L2, the L2.5
cache, the word and entry index, the chat leases; the keys' prefix and the helpers of the
stores that read it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError

from memory.encoders.embeddings import encoder_class
from memory.errors import BackendUnavailable
from memory.redis_clients import async_client
from memory.settings import MemorySettings
from memory.stores.cache import SearchCache
from memory.stores.chat_lock import ChatLocks
from memory.stores.entry_index import EntryIndex
from memory.stores.facts import FactsStore, RedisFactsStore
from memory.stores.letta import LettaFactsStore
from memory.stores.lexical import LexicalIndex
from memory.stores.redis_server import EmbeddedRedis
from memory.stores.working import WorkingMemory
from memory.words import Words

T = TypeVar("T")

PREFIX = "goat"
# Per-chat Redis reads of a wide scope ("user", "global") in flight at once: the client's
# connection pool holds 100.
_CHATS_AT_ONCE = 32

RunBlocking = Callable[..., Awaitable[Any]]  # fn, *args: fn(*args) run in memory's thread pool


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


class RedisBackend:
    """The Redis client of one process and the stores on it, each opened on first use."""

    def __init__(self, settings: MemorySettings, run_blocking: RunBlocking, facts: FactsStore | None = None) -> None:
        """Args:
            settings: the process's settings (Redis's, the cache's, Letta's, the word index's).
            run_blocking: runs a blocking call in memory's thread pool (starting the embedded server).
            facts: a facts store already open, used instead of opening one.
        """
        self._settings = settings
        self._run_blocking = run_blocking
        self._client: aioredis.Redis | aioredis.RedisCluster | None = None
        self.url: str | None = None  # once connected: the embedded server's, or the configured one
        self._embedded: EmbeddedRedis | None = None
        self._connecting = asyncio.Lock()
        self._working: WorkingMemory | None = None
        self._cache: SearchCache | None = None
        self._chat_locks: ChatLocks | None = None
        self._facts_locks: ChatLocks | None = None
        self._lexical: LexicalIndex | None = None
        self._facts = facts

    @property
    def opened(self) -> aioredis.Redis | aioredis.RedisCluster | None:
        """The client, if connected (None: Redis was not asked yet, or never answered)."""
        return self._client

    @property
    def embedded_folder(self) -> Path | None:
        """The folder of the embedded Redis this process started; None for a Redis server."""
        return self._embedded.folder if self._embedded else None

    async def client(self) -> aioredis.Redis | aioredis.RedisCluster:
        """The Redis client (a cluster client with ``redis.cluster``; either serves every store)."""
        async with self._connecting:
            if self._client is None:
                url = self._settings.redis.url
                if url is None:
                    url = await self._start_embedded()
                self._client, self.url = await _connected(url, self._settings.redis.cluster), url
            return self._client

    async def _start_embedded(self) -> str:
        # In a worker thread: resolving a relative data folder reads the working
        # directory, a blocking call LangGraph's server refuses on its event loop.
        self._embedded = server = await self._run_blocking(EmbeddedRedis, self._settings.data_dir)
        try:
            return await self._run_blocking(server.start)
        except Exception as exc:
            raise BackendUnavailable(
                "redis", f"the embedded server did not start ({exc})", f"make {server.folder} readable "
                "and writable, with space free, or set GOAT_REDIS_URL to a Redis server") from exc

    async def working(self) -> WorkingMemory:
        """L2: the chats' recent messages."""
        if self._working is None:
            self._working = WorkingMemory(await self.client(), PREFIX)
        return self._working

    async def cache(self) -> SearchCache:
        """L2.5: the searches cached by scope."""
        if self._cache is None:
            self._cache = SearchCache(await self.client(), self._settings.cache.ttl_seconds, PREFIX)
        return self._cache

    async def searches_cached(self) -> None:
        """Wait for this process's writes to the search cache under way (a turn's, before it lets
        its chat go: a forget that holds the chat next, here or in another process, finds them landed)."""
        if self._cache is not None:
            await self._cache.written()

    async def facts(self) -> FactsStore:
        """L1: the users' facts, in Letta with ``letta.url``, else in Redis."""
        if self._facts is None:
            letta = self._settings.letta
            if letta.url:
                self._facts = LettaFactsStore(
                    letta.url, token=letta.token.get_secret_value() if letta.token else None,
                    timeout=letta.timeout, shared=self._settings.memory.scope == "global", lease=self._facts_lease,
                )
            else:
                self._facts = RedisFactsStore(await self.client(), PREFIX)
        return self._facts

    @asynccontextmanager
    async def _facts_lease(self, name: str) -> AsyncIterator[None]:
        # Letta's facts are read, changed and written back: one writer at a time per agent,
        # across workers (the chat lease's mechanism, on its own keys).
        if self._facts_locks is None:
            self._facts_locks = ChatLocks(await self.client(), f"{PREFIX}:facts", self._settings.redis.chat_lock_seconds)
        async with self._facts_locks.hold(name):
            yield

    async def lexical_index(self) -> LexicalIndex:
        """The chats' word index, with their entry index."""
        if self._lexical is None:
            encoder = encoder_class(self._settings.embeddings.model)
            self._lexical = LexicalIndex(await self.client(), PREFIX, Words(self._settings.words.stemmer),
                                         encoder.dimensions, encoder.english_block)
        return self._lexical

    async def entry_index(self) -> EntryIndex:
        """The chats' entry index (ids, times, vectors, centroids): the one the word index writes."""
        return (await self.lexical_index()).entries

    async def chat_locks(self) -> ChatLocks:
        """The chats' leases: a chat's turns (and whatever holds it as a turn does) one at a time."""
        if self._chat_locks is None:
            self._chat_locks = ChatLocks(await self.client(), PREFIX, self._settings.redis.chat_lock_seconds)
        return self._chat_locks

    async def invalidate_searches_of(self, chat_id: str, user_ids: set[str], *, delete: bool = False) -> None:
        """A write to (or deletion of) a chat's L3 changes the searches of every scope it is in.
        With ``delete``, the cached results are deleted rather than left to expire."""
        scopes = sorted({cache_scope_key(chat_id, user_id, scope)
                         for user_id in user_ids or {""} for scope in ("chat", "user", "global")})
        cache = await self.cache()
        await (cache.drop(*scopes) if delete else cache.invalidate(*scopes))

    async def aclose(self) -> None:
        """Close Letta's client, the Redis client (its stores reopen on use) and the embedded server."""
        if isinstance(self._facts, LettaFactsStore):
            await self._facts.aclose()
            self._facts = None
        if self._client is not None:
            await self.searches_cached()
            await self._client.aclose()
            self._client = self._working = self._cache = self._chat_locks = self._facts_locks = self._lexical = None
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None

    def stop_at_exit(self) -> None:
        """Synchronous last resort for processes that never close their services (the
        LangGraph server): stop the embedded Redis if this process started it."""
        if self._embedded is not None:
            self._embedded.stop()


async def _connected(url: str, cluster: bool) -> aioredis.Redis | aioredis.RedisCluster:
    """A client of the Redis at ``url``, which answered; raises :class:`BackendUnavailable` if it
    did not, or is a node of a cluster while ``cluster`` says otherwise (or the reverse)."""
    client = async_client(url, cluster=cluster)
    try:
        # ECHO, not PING: a server that cannot write to its disk refuses PING, yet serves reads.
        await client.echo("")
        # A cluster's node reached as one server answers MOVED for most keys: say so now.
        in_cluster = cluster or await _is_cluster_node(client)
    except (RedisError, RedisClusterException, OSError) as exc:
        await client.aclose()
        what = f"the Redis Cluster at {url}" if cluster else url
        raise BackendUnavailable("redis", f"cannot reach {what} ({exc})", "start it or fix GOAT_REDIS_URL") from exc
    if in_cluster != cluster:
        await client.aclose()
        raise BackendUnavailable("redis", f"{url} is a node of a Redis Cluster", "set GOAT_REDIS__CLUSTER=true")
    return client


async def _is_cluster_node(client: aioredis.Redis) -> bool:
    """Whether the server is a node of a Redis Cluster (a server that hides INFO is taken as not)."""
    try:
        return bool((await client.info("cluster")).get("cluster_enabled"))
    except RedisError:
        return False
