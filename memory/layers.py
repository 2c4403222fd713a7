"""MemoryLayers: the one door from the graph to memory.

It maps the logical layers (L1 facts, L2 working, L2.5 cache, L3 episodic) onto
the physical backends (Redis, Chroma, the facts store), connects each lazily,
and runs blocking work (Chroma, the embedding model) in its own thread pool so
that a stuck call can be abandoned by the caller's deadline without blocking
the event loop or the default executor.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, TypeVar

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from memory.settings import Settings
from memory.cache import SearchCache
from memory.chat_lock import ChatLocks
from memory.checkpoint import RedisCheckpointSaver
from memory.curated import curated_entry
from memory.embeddings import MiniLMEmbeddings
from memory.episodic import EpisodicStore
from memory.errors import BackendUnavailable
from memory.facts import FactsFull, FactsStore, RedisFactsStore, clean_fact_text
from memory.lexical import IndexEntry, LexicalIndex, terms
from memory.prompt import facts_block
from memory.redis_server import EmbeddedRedis, waiting_pool
from memory.tokens import count_tokens
from memory.working import WorkingMemory

log = logging.getLogger(__name__)
T = TypeVar("T")

ARCHIVE_TAG = "l2_full_archive"
PREFIX = "goat"
OUTBOX_KEY = f"{PREFIX}:l3_outbox"
IN_FLIGHT_KEY = f"{PREFIX}:turns_in_flight"
_TURN_KEY = re.compile(r"^turn_(\d+)$")
# Archived turns missing from a chat's word index: up to this many are indexed during the turn
# (~1 ms per turn read back from Chroma); a longer backlog by a background task, in batches.
_INDEX_NOW = 64
_INDEX_BATCH = 512
# Per-chat Redis reads of a wide scope ("user", "global") in flight at once: the client's
# connection pool holds 100.
_CHATS_AT_ONCE = 32
_BACKLOGS_AT_ONCE = 4  # chats whose backlog is indexed at the same time, in the background
# A time range of at most this many entries is ranked exactly from the index's vectors
# (~1.3 ms per 1 000 here, 8 ms for a week of an 80 000-turn chat); a wider one from the
# 300 nearest by Chroma's vector index (~4 ms), cut to the range by the index's times.
_EXACT_RANGE = 2048
_DEEPER_K = 300
# The archiver writes at most this many outbox entries per Chroma call; after a failure it
# retries with a doubling pause (and at every new turn).
_ARCHIVE_BATCH = 256
_ARCHIVE_RETRY_FIRST_S = 1.0
_ARCHIVE_RETRY_MAX_S = 30.0
_ARCHIVE_SETTLE_S = 30.0  # what closing waits for the archive at most
_ARCHIVE_MAX_DELAY_S = 2.0  # what the archiver waits at most for a moment without turns
_KEY_CANDIDATES = 64  # newest entries holding a key's words, checked for the key itself
_EMBEDDINGS_AHEAD = 64  # messages embedded ahead of their turn and not yet asked for, at most


def archive_id(chat_id: str, turn: int) -> str:
    """Deterministic per (chat, turn), so replaying an archive never duplicates it."""
    return f"{chat_id}:turn_{turn:04d}"


def archive_content(user_text: str | None, assistant_text: str | None) -> str:
    """A turn exactly as archived: verbatim, nothing summarised."""
    lines = []
    if user_text is not None:
        lines.append(f"user: {user_text}")
    if assistant_text is not None:
        lines.append(f"assistant: {assistant_text}")
    return "\n".join(lines)


async def _gather_bounded(read: Callable[[str], Awaitable[T]], chats: Iterable[str],
                          limit: int = _CHATS_AT_ONCE) -> list[T]:
    """``read`` of each chat, as ``asyncio.gather``, with at most ``limit`` running at once.
    Each call is made when its turn comes, so a cancelled gather leaves none un-awaited."""
    semaphore = asyncio.Semaphore(limit)

    async def one(chat: str) -> T:
        async with semaphore:
            return await read(chat)

    return await asyncio.gather(*(one(chat) for chat in chats))


def _within(timestamp: float, after: float | None, before: float | None) -> bool:
    return (after is None or timestamp >= after) and (before is None or timestamp <= before)


def _log_failure(task: asyncio.Task) -> None:
    """Done-callback of background indexing: its failure costs only the word index, so it is logged."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("indexing L3 words failed (retried on a later turn): %s", task.exception())


def _log_archiver_end(task: asyncio.Task) -> None:
    """The archiver stops only on a Redis failure (the outbox lives there): the next turn's
    wake-up starts another, and the outbox still holds what was not written."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("the archiver stopped: %s", task.exception())


def _is_redis_failure(exc: BaseException) -> bool:
    return isinstance(exc, RedisError) or (isinstance(exc, BackendUnavailable) and exc.backend == "redis")


@dataclass(frozen=True)
class Exchange:
    """One turn to archive in L3: a user message and the reply (either may be missing on import)."""

    chat_id: str
    user_id: str
    turn: int
    timestamp: float
    user_text: str | None
    assistant_text: str | None

    @property
    def id(self) -> str:
        return archive_id(self.chat_id, self.turn)

    def metadata(self, now: float) -> dict[str, Any]:
        return {
            "chat_id": self.chat_id,
            "user_id": self.user_id,
            "turn": self.turn,
            "timestamp": self.timestamp,
            "time": datetime.fromtimestamp(self.timestamp, timezone.utc).isoformat(),
            "tags": ARCHIVE_TAG,
            "access_count": 0,
            "last_accessed": now,
        }


@dataclass(frozen=True)
class BackendHealth:
    name: str
    mode: str
    ok: bool
    detail: str
    fix: str = ""


class MemoryLayers:
    def __init__(
        self,
        settings: Settings,
        *,
        episodic: EpisodicStore | None = None,
        facts: FactsStore | None = None,
        embeddings: MiniLMEmbeddings | None = None,
    ) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="goat-memory")
        self._redis: aioredis.Redis | None = None
        self._redis_url: str | None = None
        self._checkpointer: RedisCheckpointSaver | None = None
        self._chat_locks: ChatLocks | None = None
        self._embedded_redis: EmbeddedRedis | None = None
        self._redis_lock = asyncio.Lock()
        self._working: WorkingMemory | None = None
        self._cache: SearchCache | None = None
        self._episodic = episodic
        self._episodic_load: asyncio.Future[EpisodicStore] | None = None
        self._facts = facts
        self._embeddings = embeddings
        self._embeddings_load: asyncio.Future[MiniLMEmbeddings] | None = None
        self._embedding_ahead: dict[str, asyncio.Future[list[float]]] = {}  # message -> its vector
        self._lexical: LexicalIndex | None = None
        self._indexing: dict[str, asyncio.Task] = {}  # chat -> background catch-up of its word index
        self._indexing_slots = asyncio.Semaphore(_BACKLOGS_AT_ONCE)
        self._archiver: asyncio.Task | None = None  # writes the outbox to L3, behind the replies
        self._archive_wanted = asyncio.Event()
        self._outbox_lock = asyncio.Lock()
        self._closing = False
        self._access_bumps: list[tuple[list[dict], float]] = []  # (hits, when), for the archiver
        # Chroma's embedded client holds the GIL through a write (50-75 ms at 100 000 entries),
        # stalling every turn of the process: the archiver waits until none is running.
        self._turns_running = 0
        self._no_turn_running = asyncio.Event()
        self._no_turn_running.set()
        # L3's health as last seen by a Chroma call ("" when it worked): what the archive node
        # reports about the turns it leaves in the outbox.
        self.l3_problem = ""

    # ---- plumbing -------------------------------------------------------------

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in the memory thread pool (abandonable by a caller's deadline)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _l3(self, read: Callable[..., T], *args: Any) -> T:
        """A Chroma call, in the memory pool; its outcome is L3's health as last seen."""
        try:
            result = await self.run_blocking(read, *args)
        except Exception as exc:
            self.l3_problem = f"{type(exc).__name__}: {exc}"
            raise
        self.l3_problem = ""
        return result

    async def redis(self) -> aioredis.Redis:
        async with self._redis_lock:
            if self._redis is None:
                url = self.settings.redis.url
                if url is None:
                    self._embedded_redis = EmbeddedRedis(self.settings.data_dir)
                    try:
                        url = await self.run_blocking(self._embedded_redis.start)
                    except Exception as exc:
                        raise BackendUnavailable(
                            "redis", f"the embedded server did not start ({exc})", "run `goat doctor`"
                        ) from exc
                client = aioredis.Redis.from_pool(waiting_pool(url))
                try:
                    await client.ping()
                except (RedisError, OSError) as exc:
                    await client.aclose()
                    raise BackendUnavailable(
                        "redis", f"cannot reach {url} ({exc})", "start it or fix GOAT_REDIS_URL"
                    ) from exc
                self._redis, self._redis_url = client, url
            return self._redis

    async def checkpointer(self) -> RedisCheckpointSaver:
        """The graph's checkpointer, on the same Redis as L2 (a turn and its state fail together)."""
        if self._checkpointer is None:
            await self.redis()
            self._checkpointer = RedisCheckpointSaver.from_url(
                self._redis_url, keep_turns=self.settings.redis.checkpoint_keep_turns
            )
        return self._checkpointer

    async def chat_locks(self) -> ChatLocks:
        if self._chat_locks is None:
            self._chat_locks = ChatLocks(await self.redis(), PREFIX, self.settings.redis.chat_lock_seconds)
        return self._chat_locks

    # The model and the Chroma store load once, in a task of their own: a turn whose
    # deadline gives up waiting cancels only its wait (shield), never the load, so the
    # next turn finds it done instead of starting over.

    async def embeddings(self) -> MiniLMEmbeddings:
        if self._embeddings is None:
            if self._embeddings_load is None:
                self._embeddings_load = asyncio.ensure_future(self.run_blocking(MiniLMEmbeddings))
            self._embeddings = await asyncio.shield(self._embeddings_load)
        return self._embeddings

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
        return await self.run_blocking(self._open_episodic, await self.embeddings())

    def _open_episodic(self, embeddings: MiniLMEmbeddings) -> EpisodicStore:
        url = self.settings.chroma.url
        try:
            if url:
                store = EpisodicStore.http(url, embeddings)
                store.heartbeat()
                return store
            return EpisodicStore.embedded(Path(self.settings.data_dir) / "chroma", embeddings)
        except Exception as exc:
            raise BackendUnavailable(
                "chroma", f"cannot open {url or 'the embedded store'} ({exc})", "run `goat doctor`"
            ) from exc

    async def working_memory(self) -> WorkingMemory:
        if self._working is None:
            self._working = WorkingMemory(await self.redis(), PREFIX)
        return self._working

    async def cache(self) -> SearchCache:
        if self._cache is None:
            self._cache = SearchCache(await self.redis(), self.settings.cache.ttl_seconds, PREFIX)
        return self._cache

    async def facts_store(self) -> FactsStore:
        if self._facts is None:
            self._facts = RedisFactsStore(await self.redis(), PREFIX)
        return self._facts

    async def warm_up(self) -> None:
        """Connect every backend and load the model now, so the first turn is not a cold one."""
        from memory.temporal import warm_up as warm_up_dates  # dateparser's first parse is slow

        await self.redis()  # the one backend a turn cannot do without: its failure is raised
        try:
            await self.episodic()
        except BackendUnavailable as exc:  # costs only L3, turn by turn, until it is back
            log.warning("%s", exc)
        await asyncio.gather(self.run_blocking(warm_up_dates), self.run_blocking(count_tokens, "warm-up"))
        await self.embed_query("warm-up")  # the first forward pass pages the weights in

    async def aclose(self) -> None:
        await self._settle_archive()
        for task in self._indexing.values():
            task.cancel()  # a backlog resumes where it stopped (the index records its progress)
        await asyncio.gather(*self._indexing.values(), return_exceptions=True)
        self._indexing.clear()
        # Stuck searches abandoned by a deadline must not hold shutdown.
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._episodic is not None:
            self._episodic.close()
        if self._checkpointer is not None:
            await self._checkpointer.aclose()
            self._checkpointer = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = self._working = self._cache = self._chat_locks = self._lexical = None
        if self._embedded_redis is not None:
            await asyncio.to_thread(self._embedded_redis.stop)
            self._embedded_redis = None

    async def _settle_archive(self) -> None:
        """Write what this process queued before it goes; what L3 cannot take stays in the outbox.

        The archiver is asked to stop rather than cancelled: a cancellation that lands as an
        awaited call completes can be swallowed (``wait_for``, redis-py), leaving it waiting."""
        archiver, self._archiver = self._archiver, None
        if archiver is None:
            return
        self._closing = True
        self._archive_wanted.set()
        _, running = await asyncio.wait({archiver}, timeout=_ARCHIVE_SETTLE_S)
        for task in running:  # stuck in a call to L3
            task.cancel()
        self._closing = False  # a later turn (the services reopen on use) starts a new archiver
        try:
            await asyncio.wait_for(self.flush_archive(), _ARCHIVE_SETTLE_S)
        except Exception as exc:  # noqa: BLE001 — the outbox keeps the turns for the next start
            log.warning("the archive did not settle before closing (%s: %s); the outbox keeps it",
                        type(exc).__name__, exc)

    def stop_at_exit(self) -> None:
        """Synchronous last resort for processes that never close their services (the
        LangGraph server): stop the embedded Redis if this process started it."""
        if self._embedded_redis is not None:
            self._embedded_redis.stop()

    # ---- scope ----------------------------------------------------------------

    def _user_chats_key(self, user_id: str) -> str:
        return f"{PREFIX}:user_chats:{user_id}"

    def _chat_users_key(self, chat_id: str) -> str:
        return f"{PREFIX}:chat_users:{chat_id}"

    async def scope_chats(self, chat_id: str, user_id: str, scope: str) -> list[str]:
        """Which chats' L3 a turn may see: its own, its user's, or every chat."""
        if scope == "chat":
            return [chat_id]
        if scope == "user":
            members = await (await self.redis()).smembers(self._user_chats_key(user_id))
            return sorted({chat_id, *(m.decode() for m in members)})
        store = await self.episodic()
        return await self.run_blocking(store.chat_ids)

    @staticmethod
    def cache_scope_key(chat_id: str, user_id: str, scope: str) -> str:
        return {"chat": f"chat:{chat_id}", "user": f"user:{user_id}"}.get(scope, "global")

    async def _invalidate_searches_of(self, chat_id: str, user_ids: set[str]) -> None:
        """A write to (or deletion of) a chat's L3 changes the searches of every scope it is in."""
        scopes = {self.cache_scope_key(chat_id, user_id, scope)
                  for user_id in user_ids or {""} for scope in ("chat", "user", "global")}
        await (await self.cache()).invalidate(*sorted(scopes))

    # ---- L1 ---------------------------------------------------------------------

    async def facts(self, user_id: str) -> dict[str, str]:
        return await (await self.facts_store()).get_all(user_id)

    # ---- L2 ---------------------------------------------------------------------

    async def completed_turns(self, chat_id: str) -> int:
        return await (await self.working_memory()).completed_turns(chat_id)

    async def working(self, chat_id: str, max_messages: int, max_tokens: int | None = None) -> tuple[int, list[dict]]:
        """(completed turns, the pinned first message + the most recent messages)."""
        working = await self.working_memory()
        return await working.load(chat_id, max_messages, max_tokens)

    async def save_turn(self, chat_id: str, turn: int, messages: list[dict]) -> bool:
        """Append a turn's messages to L2, each with its token count (``tokens``): counted once
        here rather than by every later turn that trims L2 to its budget."""
        counted = [{**message, "tokens": count_tokens(message["content"])} for message in messages]
        return await (await self.working_memory()).append_turn(chat_id, turn, counted)

    # ---- L3 ---------------------------------------------------------------------

    def embed_ahead(self, text: str) -> None:
        """Start embedding a message whose turn is about to run: the model works in its thread
        while the turn waits for the chat's lock and reads its checkpoint (~6 ms), and
        :meth:`embed_query` then finds the vector ready."""
        if text in self._embedding_ahead:
            return
        while len(self._embedding_ahead) >= _EMBEDDINGS_AHEAD:  # turns that never asked (they failed first)
            self._embedding_ahead.pop(next(iter(self._embedding_ahead)))
        ahead = self._embedding_ahead[text] = asyncio.ensure_future(self._embed(text))
        ahead.add_done_callback(lambda done: done.cancelled() or done.exception())  # read by its turn, if any

    async def embed_query(self, text: str) -> list[float]:
        ahead = self._embedding_ahead.pop(text, None)
        return await (ahead if ahead is not None else self._embed(text))

    async def _embed(self, text: str) -> list[float]:
        embeddings = await self.embeddings()
        return await self.run_blocking(embeddings.embed_query, text)

    async def search(
        self, chats: list[str], vector: list[float], k: int, after: float | None = None,
        before: float | None = None, indexed: bool | None = None,
    ) -> list[dict]:
        """The chats' ``k`` entries nearest to ``vector``, closest first; with ``after`` or
        ``before`` (unix seconds, inclusive), among those timed within that range.

        Without a range this is Chroma's vector index. A chat's range is ranked exactly from the
        vectors in its own index when it holds at most ``_EXACT_RANGE`` entries; a wider one by
        a deeper vector search cut to the range. Chats whose index is behind (``indexed``: known
        by the caller, else checked) or older than time indexing are searched with Chroma's
        metadata filter: exact, but a scan of the whole database.
        """
        store = await self.episodic()
        if after is None and before is None:
            return await self._l3(store.search, chats, vector, k)
        if indexed is None:
            indexed = await self.sync_index(chats)
        index = await self.lexical_index()
        query = np.asarray(vector, dtype=np.float32)

        async def of_chat(chat: str) -> list[dict]:
            if not (indexed and await index.has_times(chat)):
                return await self._l3(store.search, [chat], vector, k, after, before)
            numbers = await index.between(chat, after, before)
            if len(numbers) > _EXACT_RANGE:
                deeper = await self._l3(store.nearest_ids, chat, vector, _DEEPER_K)
                times = await index.times(chat, [entry_id for entry_id, _ in deeper])
                distance_of = dict([pair for pair, timestamp in zip(deeper, times)
                                    if timestamp is not None and _within(timestamp, after, before)][:k])
            else:
                distances = np.sum(np.square(await index.vectors(chat, numbers) - query), axis=1)
                nearest = np.argsort(distances, kind="stable")[:k]
                ids = await index.ids(chat, numbers[nearest])
                distance_of = {entry_id: float(distances[n]) for entry_id, n in zip(ids, nearest) if entry_id}
            hits = await self._l3(store.get_by_ids, [chat], list(distance_of))
            return [{**hit, "distance": distance_of[hit["id"]]} for hit in hits]

        found = [hit for hits in await _gather_bounded(of_chat, chats) for hit in hits]
        return sorted(found, key=lambda hit: hit["distance"])[:k]

    async def cached_search(
        self, chats: list[str], scope_key: str, query: str, vector: list[float] | Awaitable[list[float]], k: int
    ) -> tuple[list[dict], dict[str, Any]]:
        """The thematic search through the L2.5 cache: (results, {"hit", "key"}). ``vector`` may
        be one still being computed: the cache is looked up meanwhile, and it is awaited on a miss."""
        cache = await self.cache()
        key = SearchCache.digest(query, k=k)
        try:
            cached, generation = await cache.lookup(scope_key, key)
        except RedisError:
            cached, generation = None, None
        if cached is not None:
            return cached, {"hit": True, "key": key}
        results = await self.search(chats, await vector if inspect.isawaitable(vector) else vector, k)
        try:
            if generation is not None:
                await cache.put(scope_key, key, results, generation)
        except RedisError as exc:
            log.warning("L2.5 cache write failed: %s", exc)
        return results, {"hit": False, "key": key}

    async def find_by_keys(self, chats: list[str], keys: list[str], limit: int, indexed: bool = True) -> list[dict]:
        """Exact lookup of structural keys: id match, then content contains (case-sensitive).

        Content is searched through the word index (the entries holding every word of the key,
        then checked); chats whose index is behind (``indexed`` false) by Chroma's substring scan.
        """
        store, index = await self.episodic(), await self.lexical_index()
        ids = list(keys)
        for key in keys:
            if match := _TURN_KEY.match(key):
                ids += [archive_id(chat, int(match.group(1))) for chat in chats]
        found = {hit["id"]: hit for hit in await self._l3(store.get_by_ids, chats, ids)}
        for key in keys:
            if not indexed:
                for hit in await self._l3(store.find_containing, chats, key, limit):
                    found.setdefault(hit["id"], hit)
                continue
            for chat in chats:
                numbers = await index.with_all_terms(chat, terms(key), _KEY_CANDIDATES)
                candidates = [i for i in await index.ids(chat, numbers) if i and i not in found]
                for hit in await self._l3(store.get_by_ids, [chat], candidates):
                    if key in hit["content"]:
                        found[hit["id"]] = hit
        return list(found.values())[:limit]

    # ---- L3 by words, and the chat's background ----------------------------------

    async def lexical_index(self) -> LexicalIndex:
        if self._lexical is None:
            self._lexical = LexicalIndex(await self.redis(), PREFIX)
        return self._lexical

    async def index_entries(self, chat_id: str, ids: list[str]) -> int:
        """Add these L3 entries of a chat to its word index and centroid, read back from Chroma
        with their vectors; entries already indexed (or not in Chroma) are skipped. Returns how
        many were added. Archived turns are caught up by :meth:`sync_index` anyway; call this
        right after writing other entries (curated memories) or to index turns at once."""
        index = await self.lexical_index()
        missing = await index.missing(chat_id, ids)
        if not missing:
            return 0
        store = await self.episodic()
        found = await self.run_blocking(store.get_with_vectors, [chat_id], missing)
        return await index.add(
            chat_id, [IndexEntry(hit["id"], hit["content"], vector, hit["timestamp"]) for hit, vector in found]
        )

    async def sync_index(self, chats: list[str]) -> bool:
        """Bring the chats' word index up to their archived turns; True when nothing is left behind.

        A short backlog (usually the one turn archived since the last search) is indexed now; a
        long one (an import, an archive older than the index) by one background task per chat,
        and meanwhile searches use what is indexed.
        """
        index, working = await self.lexical_index(), await self.working_memory()

        async def progress_of(chat: str) -> list[int]:  # turns indexed, turns archived
            return await asyncio.gather(index.indexed_turns(chat), working.completed_turns(chat))

        progress = await _gather_bounded(progress_of, chats)
        complete = True
        for chat, (indexed, archived) in zip(chats, progress):
            if archived - indexed <= 0:
                continue
            if archived - indexed <= _INDEX_NOW:
                await self._index_turns(chat, indexed, archived)
            elif chat not in self._indexing or self._indexing[chat].done():
                complete = False
                self._indexing[chat] = asyncio.create_task(self._index_backlog(chat, indexed, archived))
                self._indexing[chat].add_done_callback(_log_failure)
            else:
                complete = False
        return complete

    async def wait_indexing(self) -> None:
        """Wait for the background indexing started so far (tests, benchmarks, after an import)."""
        await asyncio.gather(*self._indexing.values())

    async def _index_backlog(self, chat_id: str, indexed: int, archived: int) -> None:
        async with self._indexing_slots:
            await self._index_turns(chat_id, indexed, archived)

    async def _index_turns(self, chat_id: str, indexed: int, archived: int) -> None:
        """Index archived turns indexed+1..archived, in batches, recording progress after each.
        A turn not in Chroma yet (waiting in the outbox) is passed over; it is indexed when the
        archive that lands it calls :meth:`index_entries`."""
        for start in range(indexed, archived, _INDEX_BATCH):
            end = min(archived, start + _INDEX_BATCH)
            await self.index_entries(chat_id, [archive_id(chat_id, n) for n in range(start + 1, end + 1)])
            await (await self.lexical_index()).advance_turns_indexed(chat_id, range(start + 1, end + 1))

    async def lexical_search(
        self, chats: list[str], query: str, k: int, max_df_share: float
    ) -> list[tuple[dict, np.ndarray, float]]:
        """The chats' ``k`` best entries by the words of ``query`` (BM25), best first, each as
        (hit, its vector, its word score). Word scores of different chats are compared as they are.

        The vectors come from the word index (float16, with the ids); Chroma is asked only for
        the entries' text and metadata, which costs it half as much as with their vectors.
        """
        index = await self.lexical_index()
        per_chat = await _gather_bounded(lambda chat: index.search(chat, query, k, max_df_share), chats)
        found = sorted(
            ((chat, entry_id, score, vector)
             for chat, hits in zip(chats, per_chat) for entry_id, score, vector in hits),
            key=lambda found: -found[2],
        )[:k]
        if not found:
            return []
        store = await self.episodic()
        ids_by_chat: dict[str, list[str]] = {}
        for chat, entry_id, _, _ in found:
            ids_by_chat.setdefault(chat, []).append(entry_id)
        indexed_vector = {entry_id: vector for _, entry_id, _, vector in found if vector is not None}

        def read() -> dict[str, tuple[dict, np.ndarray]]:
            found_here: dict[str, tuple[dict, np.ndarray]] = {}
            for chat, ids in ids_by_chat.items():
                if all(entry_id in indexed_vector for entry_id in ids):
                    found_here |= {hit["id"]: (hit, indexed_vector[hit["id"]]) for hit in store.get_by_ids([chat], ids)}
                else:  # an index older than its vectors: Chroma's
                    found_here |= {hit["id"]: (hit, vector) for hit, vector in store.get_with_vectors([chat], ids)}
            return found_here

        by_id = await self.run_blocking(read)
        return [(*by_id[entry_id], score) for _, entry_id, score, _ in found if entry_id in by_id]

    async def background_distance(self, chats: list[str], vector: list[float] | np.ndarray) -> float | None:
        """The query's mean distance to the chats' indexed entries (squared L2 on unit vectors:
        2 − 2·q·centroid, exact), or None when nothing of them is indexed yet."""
        centroid = await (await self.lexical_index()).centroid(chats)
        return None if centroid is None else float(2.0 - 2.0 * np.dot(np.asarray(vector, dtype=np.float64), centroid))

    async def forget_index(self, chat_id: str) -> None:
        """Drop the chat's word index and centroid (with the chat's L3: turn numbers restart)."""
        if (task := self._indexing.pop(chat_id, None)) is not None:
            task.cancel()
        await (await self.lexical_index()).drop(chat_id)

    def bump_access_later(self, hits: list[dict], now: float) -> None:
        """Count one more access of each hit: best effort, by the archiver between turns (an
        update is a Chroma write, which stalls the process while it runs)."""
        if hits:
            self._access_bumps.append((hits, now))
            self.wake_archiver()

    async def archive(self, exchanges: list[Exchange], now: float) -> list[str]:
        """Write turns verbatim to L3 (idempotent by id) and invalidate the affected caches."""
        if not exchanges:
            return []
        store, index = await self.episodic(), await self.lexical_index()
        by_chat: dict[str, list[Exchange]] = {}
        for ex in exchanges:
            by_chat.setdefault(ex.chat_id, []).append(ex)
        for chat_id, chat_exchanges in by_chat.items():
            entries = [(ex.id, archive_content(ex.user_text, ex.assistant_text), ex.metadata(now))
                       for ex in chat_exchanges]
            await self._l3(store.upsert, chat_id, entries)
            # Indexed now, after the reply, rather than caught up by the chat's next search.
            await self.index_entries(chat_id, [ex.id for ex in chat_exchanges])
            await index.advance_turns_indexed(chat_id, [ex.turn for ex in chat_exchanges])
        redis = await self.redis()
        for chat_id, chat_exchanges in by_chat.items():
            user_ids = {ex.user_id for ex in chat_exchanges}
            async with redis.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    pipe.sadd(self._user_chats_key(user_id), chat_id)
                pipe.sadd(self._chat_users_key(chat_id), *user_ids)
                pipe.smembers(self._chat_users_key(chat_id))
                *_, members = await pipe.execute()
            # Everyone who shares the chat searches it in user scope, not only this turn's user.
            await self._invalidate_searches_of(chat_id, {m.decode() for m in members})
        return [ex.id for ex in exchanges]

    async def forget_chat(self, chat_id: str) -> None:
        """Drop a chat's L2, L3 and import records (its user's L1 facts stay)."""
        store = await self.episodic()
        await self.run_blocking(store.delete_chat, chat_id)
        await self.forget_index(chat_id)
        await (await self.working_memory()).clear(chat_id)
        redis = await self.redis()
        users = {m.decode() for m in await redis.smembers(self._chat_users_key(chat_id))}
        async with redis.pipeline(transaction=False) as pipe:
            for user_id in users:
                pipe.srem(self._user_chats_key(user_id), chat_id)
            pipe.delete(self._chat_users_key(chat_id), f"{PREFIX}:imported:{chat_id}")
            await pipe.execute()
        await self._invalidate_searches_of(chat_id, users)

    # ---- the archive, written behind the replies ------------------------------------

    async def archive_later(self, exchanges: list[Exchange], now: float) -> int:
        """Park the turns in the Redis outbox and wake the archiver, which writes them to L3
        after the reply (embedding and Chroma's write cost ~50 ms a turn at 100 000 entries).
        Once this returns the turns are durable; the same ids make every rewrite of them
        harmless. Returns how many entries wait in the outbox."""
        redis = await self.redis()
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(OUTBOX_KEY, mapping={ex.id: json.dumps({**asdict(ex), "now": now}) for ex in exchanges})
            pipe.hlen(OUTBOX_KEY)
            _, waiting = await pipe.execute()
        self.wake_archiver()
        return waiting

    def wake_archiver(self) -> None:
        """Have the outbox written to L3 soon, by this process's archiver (started if needed)."""
        loop = asyncio.get_running_loop()
        if self._archiver is None or self._archiver.done() or self._archiver.get_loop() is not loop:
            self._archive_wanted = asyncio.Event()
            self._archiver = loop.create_task(self._archive_behind(), name="goat-archiver")
            self._archiver.add_done_callback(_log_archiver_end)
        self._archive_wanted.set()

    async def _archive_behind(self) -> None:
        retry_in = _ARCHIVE_RETRY_FIRST_S
        while True:
            await self._archive_wanted.wait()
            self._archive_wanted.clear()
            if self._closing:
                return
            await self._between_turns()
            if await self.flush_archive() == 0:
                retry_in = _ARCHIVE_RETRY_FIRST_S
                continue
            # L3 unreachable: try again after a while, or at the next turn's wake-up.
            try:
                await asyncio.wait_for(self._archive_wanted.wait(), retry_in)
            except TimeoutError:
                self._archive_wanted.set()
            retry_in = min(2 * retry_in, _ARCHIVE_RETRY_MAX_S)

    @asynccontextmanager
    async def turn_running(self) -> AsyncIterator[None]:
        """Mark a turn of this process as running (the archiver writes between turns)."""
        self._turns_running += 1
        self._no_turn_running.clear()
        try:
            yield
        finally:
            self._turns_running -= 1
            if self._turns_running == 0:
                self._no_turn_running.set()

    async def _between_turns(self) -> None:
        """Until no turn of this process runs, or ``_ARCHIVE_MAX_DELAY_S`` at most (a busy
        process writes anyway rather than let the outbox grow)."""
        try:
            await asyncio.wait_for(self._no_turn_running.wait(), _ARCHIVE_MAX_DELAY_S)
        except TimeoutError:
            pass

    async def flush_archive(self) -> int:
        """Write what the outbox holds to L3 now, oldest first, in batches, then the access
        bumps waiting; returns how many outbox entries are left (L3 unreachable). Tests and
        shutdowns call it to see the archive settled."""
        async with self._outbox_lock:
            # What woke the archiver is being written now: it need not run again for it.
            self._archive_wanted.clear()
            left = await self._write_outbox()
            await self._write_access_bumps()
            return left

    async def _write_access_bumps(self) -> None:
        bumps, self._access_bumps = self._access_bumps, []
        if not bumps or self._episodic is None:
            return
        try:
            for hits, now in bumps:  # each turn's hits once, with that turn's time
                await self._l3(self._episodic.bump_access, hits, now)
        except Exception as exc:  # noqa: BLE001 — popularity is a soft signal
            log.warning("access counts not updated: %s", exc)

    async def _write_outbox(self) -> int:
        redis = await self.redis()
        parked = await redis.hgetall(OUTBOX_KEY)
        entries = sorted((json.loads(raw) for raw in parked.values()), key=lambda e: (e["now"], e["turn"]))
        for start in range(0, len(entries), _ARCHIVE_BATCH):
            batch = entries[start : start + _ARCHIVE_BATCH]
            try:
                await self.archive([Exchange(**{k: v for k, v in e.items() if k != "now"}) for e in batch],
                                   now=max(e["now"] for e in batch))
            except Exception as exc:
                if _is_redis_failure(exc):
                    raise
                log.warning("the outbox keeps %d entr(ies): L3 unreachable (%s)", len(entries) - start, exc)
                return len(entries) - start
            await redis.hdel(OUTBOX_KEY, *(archive_id(e["chat_id"], e["turn"]) for e in batch))
        return 0

    # ---- turns in flight (for recovery after a crash) --------------------------------

    async def begin_turn(self, chat_id: str) -> bool:
        """Note that a turn of this chat is running; True if an earlier one never finished."""
        return not await (await self.redis()).sadd(IN_FLIGHT_KEY, chat_id)

    async def end_turn(self, chat_id: str) -> None:
        await (await self.redis()).srem(IN_FLIGHT_KEY, chat_id)

    async def unfinished_chats(self) -> list[str]:
        return sorted(m.decode() for m in await (await self.redis()).smembers(IN_FLIGHT_KEY))

    # ---- import bookkeeping -----------------------------------------------------

    async def import_turn_numbers(self, chat_id: str, digests: list[str]) -> tuple[list[int], int]:
        """The turn number of each imported exchange, allocated once and remembered by digest,
        so an interrupted or repeated import rewrites the same turns instead of adding new ones;
        and the chat's completed turns (those numbers at or below it are already written)."""
        redis = await self.redis()
        key = f"{PREFIX}:imported:{chat_id}"
        known = await redis.hmget(key, digests) if digests else []
        completed = await self.completed_turns(chat_id)
        planned = [int(n) for n in known if n is not None]
        next_turn = max([completed, *planned]) + 1
        numbers, new = [], {}
        for digest, number in zip(digests, known):
            if number is None and digest not in new:
                new[digest] = next_turn
                next_turn += 1
            numbers.append(int(number) if number is not None else new[digest])
        if new:
            await redis.hset(key, mapping=new)
        return numbers, completed

    # ---- doctor -------------------------------------------------------------------

    async def health(self) -> list[BackendHealth]:
        report = []
        redis_mode = f"server at {self.settings.redis.url}" if self.settings.redis.url else (
            f"embedded redis-server, data in {Path(self.settings.data_dir) / 'redis'}"
        )
        try:
            info = await (await self.redis()).info("server")
            report.append(BackendHealth("redis", redis_mode, True, f"redis {info.get('redis_version')}"))
        except Exception as exc:
            report.append(BackendHealth("redis", redis_mode, False, str(exc),
                                        "unset GOAT_REDIS_URL for the embedded server, or start yours"))
        chroma_mode = f"server at {self.settings.chroma.url}" if self.settings.chroma.url else (
            f"embedded PersistentClient in {Path(self.settings.data_dir) / 'chroma'}"
        )
        try:
            store = await self.episodic()
            chats = await self.run_blocking(store.chat_ids)
            report.append(BackendHealth("chroma", chroma_mode, True, f"{len(chats)} chat(s) archived"))
        except Exception as exc:
            report.append(BackendHealth("chroma", chroma_mode, False, str(exc),
                                        "unset GOAT_CHROMA_URL for the embedded store, or `chroma run`"))
        facts_mode = "Redis hash per user" if not self.settings.letta.url else f"Letta at {self.settings.letta.url}"
        try:
            await self.facts("doctor")
            report.append(BackendHealth("facts", facts_mode, True, "reachable"))
        except Exception as exc:
            report.append(BackendHealth("facts", facts_mode, False, str(exc), "check the Redis line above"))
        return report

    # ---- chat commands (/forget, /reset) -----------------------------------------------

    async def forget_fact(self, user_id: str, key: str) -> bool:
        """Delete one of the user's L1 facts; False if there was none by that key."""
        return await (await self.facts_store()).delete(user_id, key)

    async def reset_working(self, chat_id: str) -> None:
        """Start the chat's L2 afresh. L3 keeps every turn (later turns recall them from there),
        and turn numbers go on from where they were, so archive ids never repeat. The archive
        written behind the replies is flushed first: no turn leaves L2 before it is in L3."""
        await self.flush_archive()
        await (await self.working_memory()).clear_messages(chat_id)

    # ---- curated writes (the model's memory tools) ---------------------------------------

    async def remember_fact(self, user_id: str, key: str, value: str, max_tokens: int) -> int:
        """Upsert one of the user's L1 facts by key; returns the facts block's tokens with it.

        L1 is in every prompt, so a fact that would take the block past ``max_tokens``
        (memory/tokens.py counts) is refused with ``FactsFull`` and nothing is written."""
        key, value = clean_fact_text(key, "fact key"), clean_fact_text(value, "fact value")
        store = await self.facts_store()
        tokens = count_tokens(facts_block({**await store.get_all(user_id), key: value}))
        if tokens > max_tokens:
            raise FactsFull(
                f"refused: with this fact the known-facts block would take {tokens} tokens, over its "
                f"limit of {max_tokens}; shorten the value or forget a fact that no longer matters"
            )
        await store.upsert(user_id, key, value)
        return tokens

    async def store_memory(self, chat_id: str, user_id: str, content: str, tags: list[str] | None,
                           now: float) -> str:
        """Write a curated entry to the chat's L3 (see memory/curated.py) and return its id.
        The same content again rewrites the same entry. Invalidates the chat's cached searches."""
        entry = curated_entry(chat_id, user_id, content, tags, now)
        store = await self.episodic()
        await self.run_blocking(store.upsert, chat_id, [entry])
        await self.index_entries(chat_id, [entry[0]])  # not a turn: sync_index would never catch it up
        await self._invalidate_searches_of(chat_id, await self._add_chat_user(chat_id, user_id))
        return entry[0]

    async def _add_chat_user(self, chat_id: str, user_id: str) -> set[str]:
        """Record that the user wrote to the chat's L3; returns every user of the chat."""
        async with (await self.redis()).pipeline(transaction=False) as pipe:
            pipe.sadd(self._user_chats_key(user_id), chat_id)
            pipe.sadd(self._chat_users_key(chat_id), user_id)
            pipe.smembers(self._chat_users_key(chat_id))
            *_, members = await pipe.execute()
        return {member.decode() for member in members}
