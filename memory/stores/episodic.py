"""L3 episodic memory: every archived turn and curated memory, in Chroma.

One collection per chat. Chroma's metadata filters are its expensive part (a
``chat_id`` equality filter costs ~5x an unfiltered query over 20k entries), so
chats are partitioned physically instead of filtered. Collections compare vectors in
the encoder's space (:attr:`Encoder.collection_space`): squared L2, which on unit
vectors is ``2 − 2·q·p``, or the inner product ``1 − q·p`` (doubled here).

All methods are synchronous and thread-safe; the memory façade runs them in a
thread pool. The client connects lazily, so a Chroma server that is down at
start-up costs only L3, and only until it is back.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import chromadb
import numpy as np
from chromadb.config import Settings
from chromadb.errors import NotFoundError
from langchain_core.embeddings import Embeddings

from memory.encoders.embeddings import ChatEmbeddings
from memory.stores.archive_vector_store import ArchiveVectorStore
from memory.stores.chroma_file import ChromaFile, Record
from memory.stores.chroma_hits import (as_hit, bump_access_counts, exact_hits, hits_from_get, records_from_get,
                                       with_line_tokens)
from memory.stores.erasure import ReadersWriterLock
from memory.turns import Hit

COLLECTION_PREFIX = "l3-"
_ASIDE = "-rebuilt"  # a collection being filled to replace its chat's (EpisodicStore.begin_rebuild)
DEFAULT_PORT = 8000
# Embedded Chroma holds the GIL through a whole add (~3 ms an entry at 1 152 dimensions beside 150 000
# entries), the event loop stalled meanwhile: it is handed at most this many entries a call (a stall of
# ~0.2 s, ~0.4 with the vector index's save every 1 000 entries, where 5 000 a call stalled 13 s).
_ADD_SLICE = 64

T = TypeVar("T")


@dataclass(frozen=True)
class _ChatCollection:
    collection: chromadb.Collection
    space: str  # how Chroma compares its vectors: "l2" or "ip"

    def nearest(self, queries: list[np.ndarray | list[float]], k: int,
                include: list[str]) -> tuple[chromadb.QueryResult, list[list[float]]]:
        """Chroma's ``k`` nearest entries to each of ``queries`` with ``include``, in one call
        (a query's two spaces cost less than two calls), and their distances as
        ``2 − 2·q·p``: squared L2 less what a query longer than 1 adds (a paired encoder's), or
        the inner-product distance doubled."""
        found = self.collection.query(query_embeddings=list(queries), n_results=k, include=[*include, "distances"])
        if self.space == "ip":
            return found, [[2.0 * float(distance) for distance in row] for row in found["distances"]]
        corrected = []
        for query, row in zip(queries, found["distances"], strict=True):
            in_double = np.asarray(query, dtype=np.float64)  # a float32 sum drifts by ~1e-7
            excess = 1.0 - float(in_double @ in_double)
            corrected.append([float(distance) + excess for distance in row])
        return found, corrected


def collection_name(chat_id: str) -> str:
    """A valid Chroma name (3-512 chars of [a-zA-Z0-9._-]) for any chat id."""
    return COLLECTION_PREFIX + hashlib.sha256(chat_id.encode()).hexdigest()[:32]


def _writes(method: Callable[..., T]) -> Callable[..., T]:
    """A method that writes to Chroma: never beside a read of its file (``ChromaFile``)."""

    @functools.wraps(method)
    def write(self: EpisodicStore, *args: Any, **kwargs: Any) -> T:
        with self._writing():
            return method(self, *args, **kwargs)

    return write


class EpisodicStore:
    def __init__(self, client: chromadb.ClientAPI | Callable[[], chromadb.ClientAPI], embeddings: Embeddings,
                 file: ChromaFile | None = None) -> None:
        """``client`` is a Chroma client or a function that connects one on first use; ``file``, an
        embedded client's database, which records are read from when it can be."""
        self._connect = client if callable(client) else lambda: client
        self._file = file
        self._embeddings = embeddings
        self._chroma: chromadb.ClientAPI | None = None
        self._chats: dict[str, _ChatCollection] = {}
        self._lock = threading.Lock()
        # New collections compare vectors as the encoder's are meant to be (langchain's own
        # embeddings, without one, are unit vectors).
        space = getattr(getattr(embeddings, "encoder", None), "collection_space", "l2")
        self._configuration = {"hnsw": {"space": space}}

    @classmethod
    def embedded(cls, path: Path, embeddings: Embeddings) -> EpisodicStore:
        settings = Settings(anonymized_telemetry=False)
        return cls(lambda: chromadb.PersistentClient(path=str(path), settings=settings), embeddings, ChromaFile(path))

    @classmethod
    def http(cls, url: str, embeddings: Embeddings) -> EpisodicStore:
        """A store on a Chroma server at ``http(s)://host[:port]`` (port 8000 by default)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a Chroma server URL (want http://host:port): {url!r}")
        ssl = parts.scheme == "https"
        port = parts.port or (443 if ssl else DEFAULT_PORT)

        def connect() -> chromadb.ClientAPI:
            # Creating an HttpClient already talks to the server, hence the deferral.
            return chromadb.HttpClient(
                host=parts.hostname, port=port, ssl=ssl, settings=Settings(anonymized_telemetry=False)
            )

        return cls(connect, embeddings)

    def heartbeat(self) -> None:
        """Raises ``ConnectionError`` when Chroma cannot be reached."""
        try:
            self._client().heartbeat()
        except Exception as exc:
            raise ConnectionError(f"Chroma is unreachable: {exc}") from exc

    def upsert(self, chat_id: str, entries: list[tuple[str, str, dict[str, Any]]],
               vectors: list[list[float]] | None = None) -> None:
        """Stores (id, content, metadata) entries with their vectors (embedded here when not
        given); an existing id is overwritten."""
        if not entries:
            return
        ids = [entry_id for entry_id, _, _ in entries]
        contents = [content for _, content, _ in entries]
        # The chat id comes from the caller's scope, never from entry data.
        metadatas = with_line_tokens([{**metadata, "chat_id": chat_id} for _, _, metadata in entries], contents)
        batch = min(_ADD_SLICE, self._client().get_max_batch_size())
        for start in range(0, len(entries), batch):
            end = start + batch
            chunk = vectors[start:end] if vectors is not None else self._embeddings.embed_documents(contents[start:end])
            self._add(chat_id, ids[start:end], contents[start:end], metadatas[start:end], chunk)

    def search(self, chat_ids: list[str] | None, vectors: list[np.ndarray | list[float]],
               k: int) -> list[list[Hit]]:
        """For each of ``vectors`` (a query's spaces), the k entries nearest to it, closest first,
        each as if it were asked alone; one Chroma query a chat. ``chat_ids=None`` searches every
        chat. (A time range is ranked from the word index, which holds each entry's time.)"""
        if k <= 0 or not vectors:
            return [[] for _ in vectors]

        def nearest(chat: _ChatCollection) -> list[list[Hit]]:
            if self._file is None:
                found, distances = chat.nearest(vectors, k, ["documents", "metadatas"])
                records = [list(zip(documents, metadatas, strict=True))
                           for documents, metadatas in zip(found["documents"], found["metadatas"], strict=True)]
            else:  # an entry deleted since the vector index found it is in no record
                found, distances = chat.nearest(vectors, k, [])
                by_id = self._records(chat, [entry_id for ids in found["ids"] for entry_id in ids])
                records = [[by_id.get(entry_id, (None, None)) for entry_id in ids] for ids in found["ids"]]
            return [[as_hit(entry_id, content, metadata, distance)
                     for entry_id, (content, metadata), distance in zip(ids, found_records, row, strict=True)
                     if content is not None]
                    for ids, found_records, row in zip(found["ids"], records, distances, strict=True)]

        each: list[list[Hit]] = [[] for _ in vectors]
        for chat_id in self._scope(chat_ids):
            for hits, found in zip(each, self._read(chat_id, nearest, [[] for _ in vectors]), strict=True):
                hits += found
        for hits in each:
            hits.sort(key=lambda hit: hit["distance"])
        return [hits[:k] for hits in each]

    def nearest_ids(self, chat_id: str, vectors: list[np.ndarray | list[float]],
                    k: int) -> list[list[tuple[str, float]]]:
        """The chat's ``k`` entries nearest to each of ``vectors`` as (id, distance), closest
        first: the vector index alone (reading the entries' metadata too costs ~5x at k = 300)."""

        def nearest(chat: _ChatCollection) -> list[list[tuple[str, float]]]:
            found, distances = chat.nearest(vectors, k, [])
            return [list(zip(ids, row, strict=True)) for ids, row in zip(found["ids"], distances, strict=True)]

        return self._read(chat_id, nearest, [[] for _ in vectors]) if k > 0 and vectors else [[] for _ in vectors]

    def get_by_ids(self, chat_ids: list[str] | None, ids: list[str]) -> list[Hit]:
        """The entries with these ids, in the order they are stored (the hits' distance is 0.0)."""
        if not ids:
            return []

        return [hit for chat_id in self._scope(chat_ids)
                for hit in self._read(chat_id, lambda chat: exact_hits(self._records(chat, ids)), [])]

    def get_with_vectors(self, chat_ids: list[str] | None, ids: list[str]) -> list[tuple[Hit, np.ndarray]]:
        """The entries with these ids, each with its stored vector (the hit's distance is 0.0:
        the caller measures it against its own query)."""
        if not ids:
            return []

        unique = list(dict.fromkeys(ids))  # Chroma refuses repeated ids

        def read(chat: _ChatCollection) -> list[tuple[Hit, np.ndarray]]:
            found = chat.collection.get(ids=unique, include=["documents", "metadatas", "embeddings"])
            return list(zip(hits_from_get(found), np.asarray(found["embeddings"], dtype=np.float32), strict=True))

        return [pair for chat_id in self._scope(chat_ids) for pair in self._read(chat_id, read, [])]

    @_writes
    def set_vectors(self, chat_id: str, ids: list[str], vectors: np.ndarray) -> None:
        """Replace these entries' vectors (their text and metadata stay)."""
        if ids:
            self._read(chat_id, lambda chat: chat.collection.update(ids=ids, embeddings=vectors), None)

    @_writes
    def bump_access(self, hits: Iterable[Hit], now: float) -> None:
        """Counts one more access of each hit, updating metadata only (no re-embedding)."""
        ids_by_chat: dict[str, set[str]] = defaultdict(set)
        for hit in hits:
            ids_by_chat[hit["metadata"]["chat_id"]].add(hit["id"])
        for chat_id, ids in ids_by_chat.items():
            self._read(chat_id, lambda chat: bump_access_counts(chat.collection, sorted(ids), now), None)

    def entries(self, chat_id: str, user_id: str | None = None) -> list[Hit]:
        """Every entry of the chat (of one user's turns and notes, with ``user_id``), in no order."""
        where = {"user_id": user_id} if user_id is not None else None
        return self._read(chat_id, lambda chat: hits_from_get(chat.collection.get(where=where)), [])

    @_writes
    def begin_rebuild(self, chat_id: str) -> None:
        """Start a collection aside to replace the chat's (a re-embedding to vectors of another
        length, which a collection cannot take): filled by :meth:`add_to_rebuild`, put in place by
        :meth:`swap_in_rebuild`. A kill before the swap leaves the chat as it was, a kill during
        it is completed by :meth:`finish_rebuilds`."""
        client = self._client()
        try:
            client.delete_collection(self._aside(chat_id))  # a rebuild killed while it was filled
        except NotFoundError:
            pass
        # Without a chat id in its metadata, chat_ids() does not list it.
        client.create_collection(self._aside(chat_id), metadata={"rebuilt": chat_id}, embedding_function=None,
                                 configuration=self._configuration)

    @_writes
    def add_to_rebuild(self, chat_id: str, entries: list[Hit], vectors: np.ndarray) -> None:
        """Add entries, with their new vectors, to the chat's collection being rebuilt."""
        collection = self._client().get_collection(self._aside(chat_id), embedding_function=None)
        for start in range(0, len(entries), _ADD_SLICE):
            part, some = slice(start, start + _ADD_SLICE), entries[start : start + _ADD_SLICE]
            collection.add(ids=[entry["id"] for entry in some], documents=[entry["content"] for entry in some],
                           metadatas=[entry["metadata"] for entry in some], embeddings=vectors[part])

    @_writes
    def swap_in_rebuild(self, chat_id: str) -> None:
        """Put the chat's rebuilt collection in the place of its old one."""
        client = self._client()
        collection = client.get_collection(self._aside(chat_id), embedding_function=None)
        self._forget(chat_id)
        try:
            client.delete_collection(collection_name(chat_id))
        except NotFoundError:
            pass
        collection.modify(name=collection_name(chat_id), metadata={"chat_id": chat_id})

    @_writes
    def finish_rebuilds(self) -> None:
        """Put in place a rebuilt collection whose chat's old one is already gone (a rebuild
        killed between the two steps); one whose old collection is still there was not filled
        to the end, and goes."""
        client = self._client()
        names = {collection.name: collection for collection in client.list_collections()}
        for name, collection in names.items():
            if name.startswith(COLLECTION_PREFIX) and name.endswith(_ASIDE):
                chat_id = (collection.metadata or {}).get("rebuilt")
                if chat_id is not None and name.removesuffix(_ASIDE) not in names:
                    collection.modify(name=name.removesuffix(_ASIDE), metadata={"chat_id": chat_id})
                else:
                    client.delete_collection(name)

    @_writes
    def delete_entries(self, chat_id: str, ids: list[str]) -> None:
        if ids:
            self._read(chat_id, lambda chat: chat.collection.delete(ids=ids), None)

    def build_vector_store(self, chat_id: str, embeddings: ChatEmbeddings,
                           files: ReadersWriterLock) -> ArchiveVectorStore:
        """An :class:`ArchiveVectorStore` (LangChain's, read-only) over the chat's collection, through
        the client open now.

        Args:
            embeddings: how the chat's questions are embedded.
            files: held shared by the vector store's reads.
        Raises:
            LookupError: the chat has no collection yet.
        """
        return ArchiveVectorStore(self._client(), collection_name(chat_id), chat_id, embeddings, files,
                                  functools.partial(self._collection_now, chat_id))

    def _collection_now(self, chat_id: str) -> chromadb.Collection:
        """The chat's collection through the client open now (:meth:`close` may have closed the
        one a vector store was made with)."""
        if (chat := self._existing(chat_id)) is None:
            raise LookupError(f"chat {chat_id!r} has no archive any more")
        return chat.collection

    def count(self, chat_id: str) -> int:
        return self._read(chat_id, lambda chat: chat.collection.count(), 0)

    def chat_ids(self) -> list[str]:
        """Every chat that has an L3 collection."""
        return sorted(
            collection.metadata["chat_id"]
            for collection in self._client().list_collections()
            if collection.name.startswith(COLLECTION_PREFIX) and "chat_id" in (collection.metadata or {})
        )

    @_writes
    def delete_chat(self, chat_id: str) -> None:
        self._forget(chat_id)
        try:
            self._client().delete_collection(collection_name(chat_id))
        except NotFoundError:
            pass

    def close(self) -> None:
        """Release the client (its files and threads); a later call connects again."""
        with self._lock:
            client, self._chroma = self._chroma, None
            self._chats.clear()
        if self._file is not None:
            self._file.close()
        if client is not None:
            client.close()

    @property
    def held_chats(self) -> int:
        """How many chats' collections this process holds in memory: those an embedded client
        read or wrote since it opened (a server's are held by the server)."""
        return len(self._chats) if self._file is not None else 0

    def release(self) -> None:
        """Close an embedded client (the next call opens it again): Chroma keeps the vector index
        of each collection it opened or wrote in memory (~10 KB an entry) until then, up to a
        fifth of the process's open-file limit of them. A server's client, or one given open, stays."""
        if self._file is not None:
            self.close()

    def _client(self) -> chromadb.ClientAPI:
        with self._lock:
            if self._chroma is None:
                with self._writing():
                    self._chroma = self._connect()  # opening an embedded database writes to it
            return self._chroma

    def _writing(self) -> AbstractContextManager[None]:
        """Held while this process's Chroma writes: no read of its file meanwhile (``ChromaFile``)."""
        return self._file.access.writing() if self._file is not None else nullcontext()

    def _scope(self, chat_ids: list[str] | None) -> list[str]:
        return self.chat_ids() if chat_ids is None else list(dict.fromkeys(chat_ids))

    def _cached(
        self, chat_id: str, get_collection: Callable[[chromadb.ClientAPI, str], chromadb.Collection]
    ) -> _ChatCollection:
        client = self._client()
        with self._lock:
            if chat_id not in self._chats:
                name = collection_name(chat_id)
                collection = get_collection(client, name)
                space = (collection.configuration.get("hnsw") or {}).get("space", "l2")
                self._chats[chat_id] = _ChatCollection(collection, space)
            return self._chats[chat_id]

    def _existing(self, chat_id: str) -> _ChatCollection | None:
        try:
            return self._cached(chat_id, lambda client, name: client.get_collection(name, embedding_function=None))
        except NotFoundError:
            return None

    def _create(self, chat_id: str) -> _ChatCollection:
        return self._cached(
            chat_id,
            lambda client, name: client.get_or_create_collection(
                name, metadata={"chat_id": chat_id}, embedding_function=None, configuration=self._configuration
            ),
        )

    @staticmethod
    def _aside(chat_id: str) -> str:
        return collection_name(chat_id) + _ASIDE

    def _forget(self, chat_id: str) -> None:
        with self._lock:
            self._chats.pop(chat_id, None)

    def _read(self, chat_id: str, read: Callable[[_ChatCollection], T], default: T) -> T:
        """``read`` on the chat's collection, or ``default`` when the chat has none."""
        for _ in range(2):
            chat = self._existing(chat_id)
            if chat is None:
                return default
            try:
                return read(chat)
            except NotFoundError:  # deleted since it was cached, or replaced (rebuilt by goat reembed)
                self._forget(chat_id)
        return default

    def _records(self, chat: _ChatCollection, ids: list[str]) -> dict[str, Record]:
        """The chat's entries with these ids, by id: read from the file, else (a write under way,
        an entry the file does not show as Chroma would) asked of Chroma."""
        unique = list(dict.fromkeys(ids))  # Chroma refuses repeated ids
        found = self._file.records(str(chat.collection.id), unique) if self._file is not None else None
        if found is None:
            return records_from_get(chat.collection.get(ids=unique))
        if asked := [entry_id for entry_id, record in found.items() if record is None]:
            found.update(records_from_get(chat.collection.get(ids=asked)))
        return {entry_id: record for entry_id, record in found.items() if record is not None}

    @_writes
    def _add(self, chat_id: str, ids: list[str], contents: list[str], metadatas: list[dict[str, Any]],
             vectors: list[list[float]]) -> None:
        def write(chat: _ChatCollection) -> None:
            chat.collection.upsert(ids=ids, embeddings=vectors, documents=contents, metadatas=metadatas)

        try:
            write(self._create(chat_id))
        except NotFoundError:  # deleted (e.g. by another worker) since it was cached: recreate it
            self._forget(chat_id)
            write(self._create(chat_id))
