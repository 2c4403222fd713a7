"""The copies kept outside memory of what the chats' turns read (the graph's checkpoints): a
text forgotten in memory (a fact, an entry, a message's edited text) is cut out of them too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from memory.prompt.blocks import one_line
from memory.retrieval.choosing.excerpts import excerpt_pieces
from memory.retrieval.explicit_search import RESULT_CHARS
from memory.retrieval.message.keys import structural_keys
from memory.stores.archive import Archive
from memory.stores.erasure import DataFolderErasure
from memory.stores.redis_backend import RedisBackend

# Cuts texts out of the copies kept outside memory of what chats' turns read: (chats, texts).
CopiesRedactor = Callable[[list[str], list[str]], Awaitable[None]]


class TurnCopies:
    """Who cuts the copies, and the texts forgotten meanwhile in the chats with a turn running
    in this process: cut once the turn has written its last (it may have read them before)."""

    def __init__(self, redis: RedisBackend, erasure: DataFolderErasure, archiver: Archive, lock_seconds: float) -> None:
        """Args:
            redis: the chats' leases, held while their copies are cut.
            erasure: erases what was cut from the data folder's files.
            archiver: writes a turn's archive before the erase.
            lock_seconds: a lease's time (``redis.chat_lock_seconds``).
        """
        self._redis, self._erasure, self._archiver, self._lock_seconds = redis, erasure, archiver, lock_seconds
        self._redact: CopiesRedactor | None = None
        self._forgotten_in_turn: dict[str, set[str]] = {}

    def redact_with(self, redact: CopiesRedactor) -> None:
        self._redact = redact

    def turn_started(self, chat_id: str) -> None:
        self._forgotten_in_turn[chat_id] = set()

    async def turn_ended(self, chat_id: str) -> None:
        """Cut what was forgotten during the chat's turn, and erase it from the data folder's
        files. The turn's archive is written first: the vector index files it writes may hold
        a fragment of the forgotten text (``memory/stores/erasure.py``), zeroed by the erase."""
        forgotten = self._forgotten_in_turn.pop(chat_id)
        if forgotten and self._redact is not None:
            await self._redact([chat_id], sorted(forgotten))
            await self._archiver.flush()
            await self._erasure.erase_deleted(l3=False)

    async def cut(self, chats: list[str], texts: Iterable[str]) -> None:
        """Cut the texts out of the chats' copies, in every form a turn's state holds them: as
        stored, on one line (a prompt), cut to a search result's length, the sentences an excerpt
        of them holds, and the structural keys recall read from them. Of a chat with a turn running here, once the turn ends; of
        another, holding it as a turn does, so that a turn running in another process, which
        may have read them, writes its last copies first."""
        if self._redact is None:
            return
        shown = {form for text in texts for form in _forms(text) if form.strip()}
        locks, cut = await self._redis.chat_locks(), sorted(shown)
        # While a turn runs here (the model's forget_fact may be calling), a bounded wait: this
        # process may be the one another process's forget waits for.
        wait = self._lock_seconds if self._forgotten_in_turn else True
        for chat_id in chats:
            if chat_id in self._forgotten_in_turn:
                self._forgotten_in_turn[chat_id] |= shown
                continue
            async with locks.hold(chat_id, wait=wait):  # a turn of another process that read them ends first
                await self._redact([chat_id], cut)


def _forms(text: str) -> tuple[str, ...]:
    """``text`` in every form a turn's state may hold it: as stored, on one line (a prompt), cut to
    a search result's length, each sentence an excerpt of it holds (as stored and on one line),
    and the structural keys recall read from it."""
    pieces = excerpt_pieces(text)
    return (text, one_line(text), one_line(text[:RESULT_CHARS]), *pieces, *map(one_line, pieces),
            *structural_keys(text))
