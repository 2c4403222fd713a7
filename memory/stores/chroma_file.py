"""Entries' text and metadata read straight from embedded Chroma's SQLite file.

Chroma's own read of a few records costs a fixed ~1.5 ms a call, and more beside the
threads it shares the process with (a question's encoding): a turn asks it twice, for the
nearest entries' records and for its word hits'. The same rows read with Python's sqlite3
cost a third of that. The file stays Chroma's: connections here are read-only, the tables
are those of the pinned chromadb (the erasure reads them too), and an entry they do not
show as expected (an array in its metadata, a table not known here) is asked of Chroma,
as is a collection the file no longer holds (so that Chroma's "not found" refreshes it).

Chroma's SQLite is a library of its own in this process: neither sees the other's file
locks, and as POSIX locks belong to the process, an unlock by one would drop the other's.
So connections here take no locks at all (``nolock``), and a read never runs beside a write
of this process's Chroma (:class:`FileReads`, one per file, whatever the stores on it).
Another process writing the same embedded data folder, which the embedded defaults do not
support, could be read mid-write: what fails there is asked of Chroma.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any

# Chroma keeps a document as its entry's metadata under this key.
_DOCUMENT = "chroma:document"
# One row: the collection's metadata segment (NULL: the file does not hold the collection),
# and a JSON array of its entries' metadata values, one element a value (NULLs: an entry with
# none; an element marked ``array``: an entry with an array value, embedding_metadata_array,
# asked of Chroma), each led by the row id Chroma stores entries in the order of. One row, not
# one per value: sqlite3 lets go of the GIL for each row it steps to, and under a burst each
# taking it back waits for the event loop (a read of 17 entries took 10-90 ms, for ~1 ms of
# work). Floats travel as 17-digit text: SQLite's JSON writes 15 digits, which does not round-trip,
# and its printf is exact below 1e100 only: an entry with a larger float is asked of Chroma.
_RECORDS = """
WITH segment AS (SELECT id FROM segments WHERE collection = ? AND scope = 'METADATA'),
chosen AS (SELECT id, embedding_id FROM embeddings
           WHERE segment_id = (SELECT id FROM segment) AND embedding_id IN ({ids})),
values_ AS (
    SELECT chosen.id AS row, chosen.embedding_id AS entry, embedding_metadata.key AS key,
           embedding_metadata.string_value AS text, embedding_metadata.int_value AS integer,
           CASE WHEN embedding_metadata.float_value IS NOT NULL
                THEN printf('%!.17g', embedding_metadata.float_value) END AS real,
           embedding_metadata.bool_value AS boolean,
           coalesce(abs(embedding_metadata.float_value) >= 1e100, 0) AS array
    FROM chosen LEFT JOIN embedding_metadata ON embedding_metadata.id = chosen.id
    UNION ALL
    SELECT DISTINCT chosen.id, chosen.embedding_id, NULL, NULL, NULL, NULL, NULL, 1
    FROM chosen JOIN embedding_metadata_array ON embedding_metadata_array.id = chosen.id
)
SELECT (SELECT id FROM segment),
       (SELECT json_group_array(json_array(row, entry, key, text, integer, real, boolean, array)) FROM values_)
"""

Record = tuple[str | None, dict[str, Any]]  # an entry's document (None without one) and metadata


class FileReads:
    """This process's reads of the file and its Chroma's writes, never at once: a write waits
    for the reads under way (each a millisecond); a read that would wait for a write does not
    happen (its caller asks Chroma, which orders its own reads and writes)."""

    def __init__(self) -> None:
        self._state = threading.Condition()
        self._reading = 0
        self._writing = 0

    @contextmanager
    def reading(self) -> Iterator[bool]:
        """Yields whether the file may be read now."""
        with self._state:
            free = not self._writing
            self._reading += free
        try:
            yield free
        finally:
            if free:
                with self._state:
                    self._reading -= 1
                    self._state.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Held while this process writes the file (or closes its connections to it): reads
        under way finish first, and none starts meanwhile."""
        try:
            with self._state:
                self._writing += 1
                self._state.wait_for(lambda: not self._reading)
            yield
        finally:
            with self._state:
                self._writing -= 1


_ACCESS: weakref.WeakValueDictionary[Path, FileReads] = weakref.WeakValueDictionary()
_ACCESS_LOCK = threading.Lock()


def file_access(database: Path) -> FileReads:
    """The :class:`FileReads` of the database at ``database``: one in this process for as long
    as some store on it holds it.

    Args:
        database: the path of Chroma's ``chroma.sqlite3``.

    Returns:
        The same object for every store on that file.
    """
    path = database.resolve()
    with _ACCESS_LOCK:
        access = _ACCESS.get(path)
        if access is None:
            access = _ACCESS[path] = FileReads()
        return access


class ChromaFile:
    """Read-only access to an embedded Chroma's ``chroma.sqlite3``, a connection per thread."""

    def __init__(self, folder: Path) -> None:
        database = folder / "chroma.sqlite3"
        # A file URI needs an absolute path (the default data folder is relative); no locks (above).
        self._uri = f"{database.absolute().as_uri()}?mode=ro&nolock=1"
        self.access = file_access(database)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def records(self, collection_id: str, ids: list[str]) -> dict[str, Record | None] | None:
        """The entries of the collection with these ids, as the file shows them.

        Args:
            collection_id: the Chroma collection's id.
            ids: entry ids, without repeats.

        Returns:
            id → (document, metadata) of the entries found, in the order Chroma stores them,
            and id → None for those to be asked of Chroma; an id missing is not in the
            collection. None when Chroma is to be asked for all: a write of this process under
            way, a collection the file does not hold, tables not known here.
        """
        with self.access.reading() as free:
            if not free:
                return None
            try:
                marks = ",".join("?" * len(ids))
                segment, values = self._connection().execute(
                    _RECORDS.format(ids=marks), (collection_id, *ids)).fetchone()
            except sqlite3.Error:
                return None
        return None if segment is None else _records(json.loads(values))

    def close(self) -> None:
        """Close every thread's connection, once the reads under way have finished; a later read
        connects again."""
        with self.access.writing(), self._lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
            for connection in connections:
                connection.close()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # Several threads use the same file; close() closes them all, from its own thread.
            connection = sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA temp_store = MEMORY")  # a sort never spills records to a file
            with self._lock:
                self._connections.append(connection)
            self._local.connection = connection
        return connection


def _records(rows: list[list[Any]]) -> dict[str, Record | None]:
    metadatas: dict[str, dict[str, Any]] = {}
    with_arrays = set()
    for _, entry_id, key, text, integer, real, boolean, array in sorted(rows, key=itemgetter(0)):
        metadata = metadatas.setdefault(entry_id, {})
        if array:
            with_arrays.add(entry_id)
        elif key is not None:
            metadata[key] = (text if text is not None else integer if integer is not None
                             else float(real) if real is not None else bool(boolean))
    return {entry_id: None if entry_id in with_arrays else (metadata.pop(_DOCUMENT, None), metadata)
            for entry_id, metadata in metadatas.items()}
