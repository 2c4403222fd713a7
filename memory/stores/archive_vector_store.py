"""One chat's archive as LangChain's vector store: langchain-chroma's ``Chroma`` over the chat's own
collection, the one the archiver writes (no second index, nothing embedded again), its questions
embedded as GOAT's meaning search embeds them for that chat (:class:`ChatEmbeddings`).

Read-only: L3 is written through GOAT's door alone, which keeps the word index, L2 and what
forgetting erases in step with it, so every write the vector store offers is refused
(:class:`ArchiveReadOnly`), and its collection answers reads alone. The turn's own search does not
come through here: it asks the collection for the nearest ids alone (docs/design.md)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn

import chromadb
from chromadb.errors import NotFoundError
from langchain_chroma import Chroma

from memory.encoders.embeddings import ChatEmbeddings
from memory.errors import ArchiveReadOnly
from memory.stores.erasure import ReadersWriterLock

# A collection's calls that read its entries; any other (a write, a function attached…) is refused.
_READS = frozenset({"query", "get", "search", "count", "peek"})


class _ReadOnlyCollection:
    """A chat's Chroma collection as the vector store sees it: its reads hold memory's files shared
    (the erasure rewrites embedded Chroma's files alone: a read beside it would see them torn) and
    go through the client open then (memory may have closed the one it was made with), its
    attributes are its own (name, configuration…), and its other calls are refused."""

    def __init__(self, collection: chromadb.Collection, files: ReadersWriterLock,
                 current: Callable[[], chromadb.Collection]) -> None:
        self._chat_collection, self._files, self._current = collection, files, current

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._chat_collection, name)
        if not callable(attribute):
            return attribute
        if name not in _READS:
            raise ArchiveReadOnly()
        return partial(self._read, name)

    def _read(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._files.shared():
            current = self._current()
            if current.id != self._chat_collection.id:
                raise LookupError("the chat's archive was rebuilt or forgotten since this vector store was made: "
                                  "ask for it again")
            return getattr(current, name)(*args, **kwargs)


def _refused(*args: Any, **kwargs: Any) -> NoReturn:
    raise ArchiveReadOnly()


class ArchiveVectorStore(Chroma):
    """langchain-chroma's ``Chroma`` over one chat's L3 collection, read-only: similarity and
    maximal-marginal-relevance searches, as a retriever too (``as_retriever``), each document an
    entry (``id``: its archive id; ``page_content``: the turn verbatim, ``user: …\\nassistant: …``,
    or a note; ``metadata``: its time, user, chat…). Every write raises :class:`ArchiveReadOnly`
    before anything is embedded or written."""

    def __init__(self, client: chromadb.ClientAPI, collection_name: str, chat_id: str, embeddings: ChatEmbeddings,
                 files: ReadersWriterLock, current: Callable[[], chromadb.Collection]) -> None:
        """Made in memory's thread pool, whose call holds ``files`` shared (the collection is read).

        Args:
            client: GOAT's Chroma client (embedded, or a Chroma server's).
            collection_name: the chat's collection.
            chat_id: the chat (named when it has no archive yet).
            embeddings: how the chat's questions are embedded.
            files: held shared by every later read.
            current: the collection through memory's client open at the time of a read.
        Raises:
            LookupError: nothing of the chat is archived yet.
        """
        try:
            super().__init__(collection_name, embeddings, client=client, create_collection_if_not_exists=False)
        except NotFoundError as exc:
            raise LookupError(f"chat {chat_id!r} has no archive yet: its first turn is archived behind its "
                              "reply, an import as it runs") from exc
        self._chroma_collection = _ReadOnlyCollection(self._chroma_collection, files, current)

    # Every write langchain-chroma offers (add_documents, update_document, reset_collection and
    # from_documents go through these), refused before anything is embedded.
    add_texts = add_images = update_documents = delete = delete_collection = fork = _refused
    from_texts = classmethod(_refused)
