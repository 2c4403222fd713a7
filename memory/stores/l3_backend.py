"""L3's backend: Chroma (embedded unless ``chroma.url``), opened on first use, and the thread
pool its blocking calls (and the model's) run in, of their own, so that a stuck call can be
abandoned by a caller's deadline without blocking the event loop or the default executor."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from memory.encoders.embeddings import ChatEmbeddings, LocalEmbeddings
from memory.errors import BackendUnavailable
from memory.stores.archive_vector_store import ArchiveVectorStore
from memory.stores.episodic import EpisodicStore
from memory.stores.erasure import DataFolderErasure, ReadersWriterLock

T = TypeVar("T")
log = logging.getLogger(__name__)
_RELEASE_WAIT_S = 10.0  # for L3's calls under way before a release (a search abandoned by a deadline may run on)
# After a release the bound started found a call still running: the calls that wait behind a
# release's wait are not held up again sooner.
_BOUND_RETRY_S = 60.0


class BlockingPool:
    """Memory's thread pool. Chroma's SQLite does not see the locks of Python's: its calls hold
    ``files`` shared, and wait while the erasure rewrites its files (holding it alone)."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="goat-memory")
        self.files = ReadersWriterLock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool (abandonable by a caller's deadline); not while the embedded
        Chroma's files are erased (:meth:`DataFolderErasure.erase_deleted`)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._sharing, fn, args)

    def _sharing(self, fn: Callable[..., T], args: tuple) -> T:
        with self.files.shared():  # held by the pool's thread for as long as fn runs
            return fn(*args)

    async def alone(self, fn: Callable[[], None], wait: float) -> None:
        """``fn()`` once no call of the pool runs, none starting meanwhile.

        Raises:
            TimeoutError: a call still ran after ``wait`` seconds (``fn`` not run).
        """
        def run() -> None:
            with self.files.alone(wait):
                fn()

        await asyncio.to_thread(run)

    def shutdown(self) -> None:
        """Stop the pool without waiting: stuck searches abandoned by a deadline must not hold shutdown."""
        self.executor.shutdown(wait=False, cancel_futures=True)


class L3Backend:
    """The Chroma store of one process, opened on first use, and L3's health as last seen."""

    def __init__(self, chroma_url: str | None, pool: BlockingPool, erasure: DataFolderErasure,
                 model: Callable[[], Awaitable[LocalEmbeddings]], episodic: EpisodicStore | None = None,
                 open_chats: int | None = None) -> None:
        """Args:
            chroma_url: a Chroma server's; None: the embedded store in the data folder.
            pool: where Chroma's calls run.
            erasure: the data folder's, which knows when the embedded store was opened.
            model: the encoder the store embeds with (loaded on first use).
            episodic: a store already open, used instead of opening one.
            open_chats: past this many chats' collections held in memory, the store is released
                (``chroma.open_chats``); None: never.
        """
        self._chroma_url, self._pool, self._erasure, self._model = chroma_url, pool, erasure, model
        self._episodic = episodic
        self._open_chats = open_chats
        self._bounding: asyncio.Future[None] | None = None  # a release the bound started
        self._bound_retry_at = 0.0  # time.monotonic() before which the bound starts none
        self._episodic_load: asyncio.Future[EpisodicStore] | None = None
        # L3's health as last seen by a Chroma call ("" when it worked): what the archive node
        # reports about the turns it leaves in the outbox.
        self.problem = ""

    @property
    def opened(self) -> EpisodicStore | None:
        """The store, if opened."""
        return self._episodic

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the memory pool; then, past ``open_chats`` chats held, a release."""
        try:
            return await self._pool.run(fn, *args)
        finally:
            self._keep_within_bound()

    async def call(self, call: Callable[..., T], *args: Any) -> T:
        """A Chroma call, in the memory pool; its outcome is L3's health as last seen."""
        try:
            result = await self.run_blocking(call, *args)
        except Exception as exc:
            self.problem = f"{type(exc).__name__}: {exc}"
            raise
        self.problem = ""
        return result

    async def episodic(self) -> EpisodicStore:
        """The store, loaded once in a task of its own: a turn whose deadline gives up waiting
        cancels only its wait (shield), never the load; a failed open is retried next time."""
        if self._episodic is None:
            failed = self._episodic_load is not None and self._episodic_load.done() and (
                self._episodic_load.exception() is not None
            )
            if self._episodic_load is None or failed:
                self._episodic_load = asyncio.ensure_future(self._load())
            try:
                self._episodic = await asyncio.shield(self._episodic_load)
            except BackendUnavailable as exc:
                self.problem = str(exc)
                raise
        return self._episodic

    async def release(self) -> bool:
        """Close an embedded store once none of its calls runs (the next call opens it again),
        and give the memory it held back to the system (:meth:`EpisodicStore.release`); a call
        still running after ``_RELEASE_WAIT_S`` leaves it open, for the next release.

        Returns:
            False when a call still running left it open.
        """
        if (store := self._episodic) is None:
            return True
        try:
            await self._pool.alone(store.release, _RELEASE_WAIT_S)
        except TimeoutError:
            log.info("L3 left open: a call of it still runs")
            return False
        await asyncio.to_thread(_give_back_freed_memory)
        return True

    async def finish_release(self) -> None:
        """Wait for a release the bound started, if one runs (before the store is closed for good)."""
        if self._bounding is not None:
            await asyncio.shield(self._bounding)

    def _keep_within_bound(self) -> None:
        """Release the store in the background once it holds more chats' collections than
        ``open_chats``: Chroma's own cache of them, capped, does not give their memory back (only a
        closed client does), so every one is let go and the chats asked next are read in again."""
        store = self._episodic
        if store is None or self._open_chats is None or store.held_chats <= self._open_chats:
            return
        if (self._bounding is None or self._bounding.done()) and time.monotonic() >= self._bound_retry_at:
            self._bounding = asyncio.ensure_future(self._release_for_bound())

    async def _release_for_bound(self) -> None:
        if not await self.release():
            self._bound_retry_at = time.monotonic() + _BOUND_RETRY_S

    async def open_vector_store(self, chat_id: str, embeddings: ChatEmbeddings) -> ArchiveVectorStore:
        """The chat's collection as LangChain's vector store, read-only, built on L3's thread
        (:meth:`EpisodicStore.build_vector_store`); its reads (in the caller's thread) hold the
        pool's files shared as the pool's calls do.

        Raises:
            LookupError: nothing of the chat is archived yet.
            BackendUnavailable: Chroma cannot be opened.
        """
        store = await self.episodic()
        return await self.call(store.build_vector_store, chat_id, embeddings, self._pool.files)

    async def _load(self) -> EpisodicStore:
        return await self.run_blocking(self._open, await self._model())

    def _open(self, embeddings: LocalEmbeddings) -> EpisodicStore:
        url = self._chroma_url
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


def _give_back_freed_memory() -> None:
    """glibc keeps what a process freed for its next allocations; ``malloc_trim`` hands it back
    (without it a closed Chroma client's memory stayed resident). Elsewhere, nothing."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # no glibc (TypeError: Windows's CDLL(None))
        pass
