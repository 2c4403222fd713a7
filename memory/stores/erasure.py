"""Erasing from disk what a forget deleted: after the deletes, the text is in no file of the data folder.

A delete takes a text out of what the stores serve, not yet out of their files. Redis's
append-only file still holds the commands that wrote it, until the file is rewritten from the
data held now; an RDB snapshot holds it until the next one. Embedded Chroma's SQLite database
holds it in its write-ahead log (the ``embeddings_queue`` table keeps each write, document and
vector included, until the collection's vector index is saved, every thousand writes), in the
full-text index's older segments (until they are merged) and in the pages and page space its
deletes freed (until a VACUUM); a deleted collection's vector index folder stays behind. And
hnswlib writes bytes into the vector index files that it never set: the length of every vector
when the space normalizes none (``length.bin``) and the slots past the last entry
(``data_level0.bin``). They hold whatever the process had freed there, a fragment of any text.

:func:`rewrite_append_only_files` and :func:`erase_chroma_files` do what each needs, once every
delete of a forget is done (:meth:`DataFolderErasure.erase_deleted`); :func:`clear_unset_index_bytes` zeroes
hnswlib's unset bytes, then (a forget of a fact too), after each archive write of a process that
has forgotten something (in the indexes written since), and when a process that wrote to the
index closes it. Several
processes may share the embedded Redis: it rewrites one file at a time (a rewrite already under
way may have begun before these deletes: it is waited out and asked for again). Chroma's SQLite
is a library of its own in this process, which does not see the file locks Python's takes, so
nothing may use the embedded Chroma while its database is rewritten: in this process its calls
wait (``BlockingPool.run``); another process on the data folder (which the embedded
defaults do not allow) makes the erase refuse.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import closing, contextmanager
from functools import partial
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from memory.errors import BackendUnavailable
from memory.settings import MemorySettings
from memory.redis_clients import process_client_name
from memory.stores.redis_backend import RedisBackend

log = logging.getLogger(__name__)

# A file's modification time lags the clock by up to a tick (a few ms on Linux, 2 s on FAT):
# an index changed this long before the last zeroing started is looked at again.
_MTIME_SLACK_S = 2.0
_CLOSE_WAIT_S = 10.0  # for a Chroma call still running as the process closes (abandoned by a deadline)
_POLL_S = 0.02  # INFO polled while Redis rewrites its append-only file (Redis has no wait for it)
_LONGEST_POLL_S = 0.5
_SQLITE_BUSY_S = 60.0  # waiting for another connection that does lock (a tool, an earlier erase) to end
_SQLITE_CACHE = "-65536"  # KiB: a VACUUM of a 450 MB database takes ~25 % less than with the default 2 MB
# Chroma's codes of operations in its write-ahead log (chromadb's SqlEmbeddingsQueue).
_ADD, _UPSERT, _DELETE = 0, 2, 3
# The start of hnswlib's index header (``header.bin``): its format, then offsetLevel0_,
# max_elements_, cur_element_count and size_data_per_element_.
_HNSW_HEADER = struct.Struct("<iQQQQ")
_HNSW_FORMAT = 1
_FLOAT_BYTES = 4
_ZEROS = bytes(1 << 20)
# Each vector index's folder (named for its segment) and whether hnswlib keeps its vectors'
# lengths, which only a cosine space does (it stores vectors normalized).
_VECTOR_SEGMENTS = """
SELECT segments.id, collections.config_json_str LIKE '%"cosine"%' OR collections.schema_str LIKE '%"cosine"%'
       OR EXISTS (SELECT 1 FROM collection_metadata WHERE collection_id = collections.id
                  AND key = 'hnsw:space' AND str_value = 'cosine')
FROM segments JOIN collections ON segments.collection = collections.id WHERE segments.scope = 'VECTOR'
"""
_SEGMENT_FOLDER = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Every write of an entry that a later delete of it, or a later whole write of it (vector and
# document: an edited turn), supersedes. Replaying the log (Chroma does, from where the vector
# index was last saved) then deletes an entry it never added (a no-op), or writes it whole.
_PURGE_SUPERSEDED = f"""
DELETE FROM embeddings_queue WHERE seq_id IN (
    SELECT written.seq_id FROM embeddings_queue AS later
    JOIN embeddings_queue AS written ON written.topic = later.topic AND written.id = later.id
    WHERE written.operation != {_DELETE} AND written.seq_id < later.seq_id
      AND (later.operation = {_DELETE} OR (later.operation IN ({_ADD}, {_UPSERT}) AND later.vector IS NOT NULL
           AND json_extract(later.metadata, '$."chroma:document"') IS NOT NULL)))
"""


class NotErased(BackendUnavailable):
    """The deletes are done, but what they removed may still be read in the backend's files."""

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(backend, detail, "the next forget erases it")
        self.args = (f"what was forgotten is deleted but may still be in {backend}'s files: {self.detail} "
                     f"— {self.fix}",)


class ReadersWriterLock:
    """A readers-writer lock for threads, the writer first: many share it (:meth:`shared`) or one
    holds it alone (:meth:`alone`), and one waiting to hold it alone goes before those that come
    to share it after."""

    def __init__(self) -> None:
        self._state = threading.Condition()
        self._sharing = 0
        self._alone = False
        self._waiting_alone = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._state:
            self._state.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._sharing += 1
        try:
            yield
        finally:
            with self._state:
                self._sharing -= 1
                self._state.notify_all()

    @contextmanager
    def alone(self, timeout: float | None = None) -> Iterator[None]:
        """Held alone, once those sharing it are done.

        Raises:
            TimeoutError: they were not done within ``timeout`` seconds (None: no limit).
        """
        with self._state:
            self._waiting_alone += 1
            free = self._state.wait_for(lambda: not self._alone and not self._sharing, timeout)
            self._waiting_alone -= 1
            if not free:
                self._state.notify_all()  # those waiting to share behind this one go on
                raise TimeoutError(f"the lock was still shared after {timeout} s")
            self._alone = True
        try:
            yield
        finally:
            with self._state:
                self._alone = False
                self._state.notify_all()


class DataFolderErasure:
    """One process's erasing of its data folder's files: what a forget's deletes took out, and,
    from its first forget on, hnswlib's unset bytes of the vector indexes written since (after
    each archive write, and at close for every index written while the embedded Chroma was open).
    Chroma's calls of the process share ``files``; the erasing holds it alone."""

    def __init__(self, settings: MemorySettings, files: ReadersWriterLock, executor: Executor,
                 redis: RedisBackend) -> None:
        self.settings = settings
        self._files = files
        self._executor = executor
        self._redis = redis
        self._chroma_opened_at: float | None = None  # when this process opened the embedded Chroma
        # Set by the first forget: the vector index files changed since are zeroed after each
        # archive write (what the process freed may hold the forgotten text).
        self._unset_bytes_since: float | None = None

    @property
    def chroma_folder(self) -> Path:
        """The embedded Chroma's folder in the data folder."""
        return Path(self.settings.data_dir) / "chroma"

    def opening_chroma(self) -> Path:
        """The embedded Chroma's folder, which this process opens now: every vector index written
        from now on has its unset bytes zeroed at close (:meth:`clear_at_close`)."""
        self._chroma_opened_at = time.time()
        return self.chroma_folder

    async def erase_deleted(self, *, l3: bool) -> None:
        """Redis's append-only file rewritten and, side by side, embedded Chroma's files cleaned
        with ``l3``, else only hnswlib's unset bytes zeroed (they may hold a fragment of any text
        this process held, a forgotten fact's too). Of the embedded Redis this process started,
        the snapshot in its folder is dropped, and while other processes use that server Chroma's
        files are left as they are. Of a Redis server, only the append-only file is rewritten
        (when it keeps one and allows it). A Chroma server's files are its own.

        Raises:
            NotErased: a rewrite failed, or, with ``l3``, another process uses the embedded Chroma
                (its files are erased by the next forget made alone); what was deleted may still
                be in a file.
        """
        redis_folder = self._redis.embedded_folder  # as it was before this call connected, if it does
        redis = await self._redis.client()
        redis_files = rewrite_append_only_files(redis, redis_folder)
        if self.settings.chroma.url:
            await redis_files
            return
        if others := await other_processes(redis) if redis_folder else []:
            await redis_files
            if l3:
                raise NotErased("chroma", f"other processes use this data folder ({', '.join(others)}), and "
                                          "Chroma's files cannot be rewritten under them")
            return
        if self._unset_bytes_since is None:  # whether or not this erase succeeds
            self._unset_bytes_since = time.time() - _MTIME_SLACK_S
        chroma_files = asyncio.get_running_loop().run_in_executor(
            self._executor, self._alone, erase_chroma_files if l3 else erase_unset_index_bytes,
            (self.chroma_folder,))
        await asyncio.gather(redis_files, chroma_files)

    async def clear_after_forget(self) -> None:
        """Once this process has forgotten something, the unset bytes of the vector index files
        written since the last time, zeroed: an index made or grown after the forget may hold a
        fragment of the forgotten text, which the process held in memory. Nothing else may use
        the embedded Chroma meanwhile, and not while another process may be writing the indexes."""
        if self._unset_bytes_since is None:
            return
        started = time.time() - _MTIME_SLACK_S
        if await self._clear_unset_index_bytes(self._unset_bytes_since):
            self._unset_bytes_since = started

    async def clear_at_close(self) -> None:
        """As the process closes the embedded Chroma it opened: the unset bytes of every index
        written since, zeroed, waiting at most ``_CLOSE_WAIT_S`` for Chroma calls still running."""
        if self._chroma_opened_at is not None:
            await self._clear_unset_index_bytes(self._chroma_opened_at, wait=_CLOSE_WAIT_S)

    async def _clear_unset_index_bytes(self, since: float, *, wait: float | None = None) -> bool:
        """hnswlib's unset bytes in the vector index files changed since ``since``, zeroed
        (:func:`clear_unset_index_bytes`) once nothing else of this process uses the embedded
        Chroma (beside a write, they could be its new entries); skipped if its calls outlast
        ``wait`` seconds (None: no limit), as at close, where a call a deadline abandoned may
        still run. Not while another process may be writing them.

        Returns:
            Whether they were zeroed (False: skipped, or failed and logged).
        """
        embedded, redis = self.settings.redis.url is None, self._redis.opened
        if embedded and redis is None:
            return False  # the embedded Redis never answered here: other processes cannot be told
        try:
            if embedded and await other_processes(redis):
                return False
            await asyncio.to_thread(self._alone, partial(clear_unset_index_bytes, since=since), (self.chroma_folder,),
                                    wait)
        except (OSError, sqlite3.Error, RedisError, TimeoutError) as exc:
            log.warning("hnswlib's unset bytes in the vector index files were not cleared: %s", exc)
            return False
        return True

    def _alone(self, erase: Callable[..., None], args: tuple, timeout: float | None = None) -> None:
        with self._files.alone(timeout):
            erase(*args)


async def other_processes(redis: aioredis.Redis) -> list[str]:
    """The other GOAT processes connected to the embedded Redis: they use the same data folder."""
    names = {client.get("name", "") for client in await redis.client_list()}
    return sorted(name for name in names if name.startswith("goat-") and name != process_client_name())


async def rewrite_append_only_files(redis: aioredis.Redis | aioredis.RedisCluster, folder: Path | None) -> None:
    """Have Redis rewrite its append-only file (every primary's, in a cluster) from the data it holds
    now, if it keeps one and allows it, and wait until it has. ``folder``: the embedded server's,
    whose RDB snapshot (never read: it loads its AOF) is deleted, and none is written from then on.

    Raises:
        NotErased: the rewrite failed (a full disk…); what was deleted may still be in the file.
    """
    nodes = redis.get_primaries() if isinstance(redis, aioredis.RedisCluster) else [None]
    for node in nodes:
        target = {} if node is None else {"target_nodes": node}
        if folder is not None:  # a server an older version started, with save points
            await redis.execute_command("CONFIG SET", "save", "", **target)
        await _rewrite_append_only_file(redis, target)
    if folder is not None:  # after the rewrite: it waits for a snapshot being written to end
        await asyncio.to_thread((folder / "dump.rdb").unlink, missing_ok=True)  # off the loop: other turns go on


async def _rewrite_append_only_file(redis: aioredis.Redis | aioredis.RedisCluster, target: dict) -> None:
    if not int((await _persistence(redis, target)).get("aof_enabled", 0)):
        return
    while True:
        try:
            await redis.execute_command("BGREWRITEAOF", **target)
            break
        except ResponseError as exc:
            if "in progress" not in str(exc):  # a managed Redis may refuse it (renamed, or an ACL)
                log.warning("Redis refused BGREWRITEAOF (%s): its append-only file keeps what was deleted "
                            "until the server rewrites it", exc)
                return
            await _rewritten(redis, target)  # that rewrite may have begun before the deletes
    status = await _rewritten(redis, target)
    if status != "ok":
        raise NotErased("redis", f"rewriting its append-only file failed ({status}; see the server's log)")


async def _rewritten(redis: aioredis.Redis | aioredis.RedisCluster, target: dict) -> str:
    """Wait until no rewrite of the append-only file runs or waits to run; returns the last one's status."""
    pause = _POLL_S
    while True:
        info = await _persistence(redis, target)
        if not int(info.get("aof_rewrite_in_progress", 0)) and not int(info.get("aof_rewrite_scheduled", 0)):
            return str(info.get("aof_last_bgrewrite_status"))
        await asyncio.sleep(pause)
        pause = min(2 * pause, _LONGEST_POLL_S)


async def _persistence(redis: aioredis.Redis | aioredis.RedisCluster, target: dict) -> dict:
    return await redis.execute_command("INFO", "persistence", **target)


def erase_chroma_files(folder: Path) -> None:
    """Erase deleted and rewritten entries from embedded Chroma's files: their superseded writes in
    its write-ahead log, the full-text index merged into one segment without them, the database
    rewritten without freed space (VACUUM), the vector index folders of deleted collections
    removed and hnswlib's unset bytes zeroed (:func:`clear_unset_index_bytes`). Blocking; Chroma's
    own calls (another process's too) wait while the database is rewritten.

    Raises:
        NotErased: SQLite failed (a full disk…), or Chroma's tables are not the ones known here.
    """
    database = folder / "chroma.sqlite3"
    if not database.is_file():
        return
    # Listed before the segments are read: a segment's folder is made after its row is committed.
    folders = [entry for entry in folder.iterdir() if entry.is_dir() and _SEGMENT_FOLDER.fullmatch(entry.name)]
    try:
        with closing(sqlite3.connect(database, timeout=_SQLITE_BUSY_S, isolation_level=None)) as db:
            db.execute(f"PRAGMA cache_size = {_SQLITE_CACHE}")
            db.execute("BEGIN IMMEDIATE")
            db.execute(_PURGE_SUPERSEDED)
            db.execute("COMMIT")
            db.execute("INSERT INTO embedding_fulltext_search(embedding_fulltext_search) VALUES ('optimize')")
            db.execute("VACUUM")
            segments = {segment for (segment,) in db.execute("SELECT id FROM segments")}
            vector_segments = db.execute(_VECTOR_SEGMENTS).fetchall()
    except sqlite3.Error as exc:
        raise NotErased("chroma", f"{database}: {type(exc).__name__}: {exc}") from exc
    for orphan in folders:
        if orphan.name not in segments:
            shutil.rmtree(orphan, ignore_errors=True)
    try:
        _clear_unset_bytes(folder, vector_segments, since=0.0)
    except OSError as exc:
        raise NotErased("chroma", f"{folder}: {exc}") from exc


def erase_unset_index_bytes(folder: Path) -> None:
    """:func:`clear_unset_index_bytes` of every vector index, for a forget that deleted nothing
    from Chroma (the text was only ever in this process's memory).

    Raises:
        NotErased: a file or Chroma's database could not be read or written.
    """
    try:
        clear_unset_index_bytes(folder)
    except (OSError, sqlite3.Error) as exc:
        raise NotErased("chroma", f"{folder}: {type(exc).__name__}: {exc}") from exc


def clear_unset_index_bytes(folder: Path, *, since: float = 0.0) -> None:
    """Zero the bytes hnswlib wrote into embedded Chroma's vector index files without setting them:
    its vectors' lengths where it keeps none (every space but cosine, where nothing reads them) and
    the slots past the index's last entry. Blocking; nothing may write to the indexes meanwhile.

    Args:
        folder: embedded Chroma's folder.
        since: only the indexes whose files changed at or after this time (``time.time()``).

    Raises:
        OSError, sqlite3.Error: a file could not be read or written.
    """
    database = folder / "chroma.sqlite3"
    if not database.is_file():
        return
    # A file URI needs an absolute path; the default data folder is relative.
    with closing(sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True, timeout=_SQLITE_BUSY_S)) as db:
        vector_segments = db.execute(_VECTOR_SEGMENTS).fetchall()
    _clear_unset_bytes(folder, vector_segments, since=since)


def _clear_unset_bytes(folder: Path, vector_segments: list[tuple[str, int]], *, since: float) -> None:
    for segment, keeps_lengths in vector_segments:
        index = folder / segment
        try:
            if max((index / name).stat().st_mtime for name in ("data_level0.bin", "length.bin")) < since:
                continue
            header = (index / "header.bin").read_bytes()[:_HNSW_HEADER.size]
        except FileNotFoundError:  # not written yet: the index lives in memory and the log
            continue
        if len(header) < _HNSW_HEADER.size:
            continue
        version, _, _, entries, entry_bytes = _HNSW_HEADER.unpack(header)
        if version != _HNSW_FORMAT:
            log.warning("%s: hnswlib's index format %d is not known here; its unset bytes are left", index, version)
            continue
        _zero_from(index / "data_level0.bin", entries * entry_bytes)
        _zero_from(index / "length.bin", entries * _FLOAT_BYTES if keeps_lengths else 0)


def _zero_from(path: Path, start: int) -> None:
    """Zero ``path`` from byte ``start`` to its end, writing only the blocks that are not zero yet."""
    with path.open("r+b") as file:
        file.seek(start)
        while block := file.read(len(_ZEROS)):
            if block.count(0) != len(block):
                file.seek(-len(block), 1)
                file.write(_ZEROS[:len(block)])
