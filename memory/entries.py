"""ChatEntries: memory's door for what a chat holds, written and reached otherwise than by its
turns (``Memory.entries``): exchanges imported, its L3 entries read, paged and deleted by id, and
a user's message edited where its turn stored it. The faces that reach a chat's records call it:
MCP's tools, the LangGraph Store, ``goat import``, the Telegram bot's edited messages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from memory.copies import TurnCopies
from memory.errors import BackendUnavailable
from memory.prompt.tokens import count_unremembered
from memory.stores.archive import Archive
from memory.stores.chat_owners import ChatOwners
from memory.stores.chat_users import users_of_chat
from memory.stores.erasure import DataFolderErasure, NotErased
from memory.stores.journal import TurnJournal
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import RedisBackend
from memory.stores.working import MessageLink
from memory.turns import Hit, ImportedTurn, Message, Standing, Writers, archived_texts

log = logging.getLogger(__name__)

_IMPORT_BATCH = 512  # exchanges embedded and written to L3 per call: the importer's largest batch


class ChatEntries:
    def __init__(self, redis: RedisBackend, l3: L3Backend, erasure: DataFolderErasure, archiver: Archive,
                 journal: TurnJournal, copies: TurnCopies, owners: ChatOwners,
                 hold: Callable[[str], AbstractAsyncContextManager[bool]]) -> None:
        """``redis``, ``l3``: where the chat's records are (L2 and the word index, L3);
        ``erasure``: erases what an edit or a delete replaced from the files; ``owners``: who
        may write into a chat; ``hold(chat_id)``: the chat held as a turn holds it."""
        self._redis, self._l3, self._erasure = redis, l3, erasure
        self._archiver, self._journal, self._copies, self._owners = archiver, journal, copies, owners
        self._hold = hold

    async def check_import(self, people: Mapping[str, frozenset[str]]) -> None:
        """Refuse an import before it writes anything (``people``: per chat, who it writes as) if
        one of its chats holds another person's turns (``memory/stores/chat_owners.py``).

        Raises:
            ChatHeldByOthers: naming the first such chat.
        """
        await self._owners.check_import(people)

    async def import_turns(self, chat_id: str, turns: list[ImportedTurn], progress: Callable[[int], None] | None = None,
                           *, writers: Writers | None = None) -> list[int]:
        """Write a chat's imported exchanges to L3 and L2 as live turns are written, numbered
        once per exchange (by digest): a repeated or interrupted import never writes one twice.
        An exchange of a new digest whose ``ref`` was imported before (a message edited since)
        rewrites that turn in place, and the text it replaced is erased from the files. The chat
        is held meanwhile, and its writers enter it first (``memory/stores/chat_owners.py``).

        Args:
            writers: who the import writes as in the chat (all its turns, not only these) and by
                what right; by default, these turns' users, as an import.
        Returns:
            The turn numbers written (or rewritten) now; an exchange already written is not among them.
        Raises:
            ChatHeldByOthers: an import into a chat holding another person's turns (nothing written).
        """
        writers = writers or Writers(frozenset(turn.user_id for turn in turns), Standing.IMPORTED)
        async with (await self._redis.chat_locks()).hold(chat_id):
            await self._owners.enter(chat_id, writers)
            numbers, completed, edited = await self._journal.import_numbers(chat_id, turns)
            pending = [(n, t) for n, t in zip(numbers, turns) if n > completed]
            rewritten = [(numbers[index], turns[index]) for index in edited]
            if progress and len(turns) > len(pending) + len(rewritten):
                progress(len(turns) - len(pending) - len(rewritten))
            replaced = await self._rewrite_imported(chat_id, rewritten)
            if progress and rewritten:
                progress(len(rewritten))
            now = time.time()
            for start in range(0, len(pending), _IMPORT_BATCH):
                batch = pending[start : start + _IMPORT_BATCH]
                await self._archiver.write([turn.exchange(chat_id, number) for number, turn in batch], now)
                await (await self._redis.working()).append_turns(chat_id, with_tokens(batch))
                if progress:
                    progress(len(batch))
        # Once the chat is free: inside, the cut would wait for the hold to end.
        await self.erase_replaced(chat_id, replaced)
        return [number for number, _ in [*rewritten, *pending]]

    async def _rewrite_imported(self, chat_id: str, turns: list[tuple[int, ImportedTurn]]) -> list[str]:
        """Imported turns whose message was edited since, each rewritten where the first import
        wrote it (L3, its words and vector, and L2), then known by its new digest (the chat held
        by the caller). Returns the texts they replaced, to erase from the files as an edit's are."""
        replaced: list[str] = []
        working = await self._redis.working()
        for number, turn in turns:
            exchange = turn.exchange(chat_id, number)
            if (old := await self._archiver.rewrite_turn(exchange)) is not None:
                await working.replace_turn(chat_id, exchange.timestamp, old, list(turn.messages))
                replaced += [text for text in archived_texts(old) if text and text not in exchange.content]
        if turns:
            await self._journal.record_imported(chat_id, {turn.digest: number for number, turn in turns})
        return replaced

    async def release_archive(self) -> None:
        """Let go of what L3 holds in memory for the chats it wrote (an import calls it every so
        many exchanges): the embedded Chroma keeps every collection it opened or wrote until its
        client closes, so an import of many chats grew with its file. Waits for L3's calls under
        way (the next call opens it again); skipped if one outlasts the wait, or for a server."""
        await self._l3.release()

    async def link_message(self, chat_id: str, message_ref: str, turn: Mapping[str, Any]) -> None:
        """Record that a turn (its state: ``turn``, ``now``, ``message``, ``user_id``) stored the
        client's message ``message_ref`` (a Telegram message id), so that an edit of the message can
        replace what the turn stored (:meth:`edit_message`). Kept beside the chat's L2; forgetting the
        chat, or the user, drops it."""
        link = MessageLink(turn["turn"], turn["now"], len(turn["message"]), turn["user_id"])
        await (await self._redis.working()).link(chat_id, message_ref, link)

    async def edit_message(self, chat_id: str, message_ref: str, user_id: str, text: str) -> bool:
        """Put the edited ``text`` of the user's message ``message_ref`` where its turn stored it: the
        user's message in L2, and in the turn's L3 entry (embedded afresh, the reply kept) with the
        word index. Runs no turn; holds the chat meanwhile, as a turn does, so the chat's next turn
        sees the edit. Then the text replaced is cut out of the chat's copies (the graph's
        checkpoints) and erased from the data folder's files, as a forget is.

        Returns:
            False, changing nothing, when no turn of this user stored the message (a command, a
            message from before links were kept, another user's).
        """
        async with (await self._redis.chat_locks()).hold(chat_id):
            replaced = await self.edit_held(chat_id, message_ref, user_id, text)
        if replaced is None:
            return False
        # The text it replaced is erased from the files as a forget erases (the new one may hold it).
        await self.erase_replaced(chat_id, replaced)
        return True

    async def edit_held(self, chat_id: str, message_ref: str, user_id: str, text: str) -> list[str] | None:
        """:meth:`edit_message`'s writes, the chat held by the caller, who erases what they replaced
        (:meth:`erase_replaced`) once the chat is free.

        Returns:
            The texts replaced (those the new text does not hold); None when no turn of this user
            stored the message.
        """
        working = await self._redis.working()
        link = await working.linked(chat_id, message_ref)
        if link is None or link.user_id != user_id:
            return None
        # L3 first: it may be down.
        archived = await self._archiver.replace_user_text(chat_id, link.turn, link.chars, text)
        saved = await working.replace_user_text(chat_id, link, text)
        await working.link(chat_id, message_ref, link._replace(chars=len(text)))
        return [old for old in {*archived, saved} if old and old not in text]

    async def erase_replaced(self, chat_id: str, replaced: list[str]) -> None:
        """Cut texts an edit replaced out of the chat's copies and erase them from the files
        (when that fails, the edit is kept all the same)."""
        if not replaced:
            return
        await self._copies.cut([chat_id], replaced)
        try:
            await self._erasure.erase_deleted(l3=True)
        except NotErased as exc:
            log.warning("%s", exc)

    async def page(self, chat_id: str, limit: int, cursor: str | None = None) -> tuple[list[Hit], str | None]:
        """A page of the chat's L3 entries (archived turns and stored notes), newest first.

        Args:
            limit: entries in the page, at most.
            cursor: where the page starts: the cursor the previous page returned (None: the newest).
        Returns:
            The entries (as hits at distance 0) and the next page's cursor, None after the
            last page.
        Raises:
            ValueError: the cursor is not one a page returned.
        """
        # Ordered by the entry index's times (Chroma cannot order), caught up with L3 first.
        await self._archiver.indexer.sync_index([chat_id])
        index = await self._redis.entry_index()
        numbers, following = await index.newest(chat_id, limit, cursor)
        ids = [entry_id for entry_id in await index.ids(chat_id, numbers) if entry_id]
        store = await self._l3.episodic()
        by_id = {hit["id"]: hit for hit in await self._l3.call(store.get_by_ids, [chat_id], ids)}
        return [by_id[entry_id] for entry_id in ids if entry_id in by_id], following

    async def of_ids(self, chat_id: str, ids: list[str]) -> list[Hit]:
        """The chat's L3 entries of these ids (the archive written behind the replies first, so a
        turn just answered is among them).

        Returns:
            The entries found (as hits at distance 0), in no set order; an id the chat does not
            hold is left out.
        """
        await self._archiver.flush()
        store = await self._l3.episodic()
        return await self._l3.call(store.get_by_ids, [chat_id], ids)

    async def delete(self, chat_id: str, entry_id: str) -> bool:
        """Delete one of the chat's L3 entries by id: from Chroma, from the word index (and the
        chat's centroid) and, for an archived turn, its messages in L2; the chat's cached searches
        are dropped; an exchange deleted so can be imported or archived again. Holds the chat as
        a turn does, and writes the archive waiting behind the replies first, so a turn just
        archived can be deleted and is not written back after. Then the entry is erased from the
        data folder's files.

        Returns:
            False when the chat holds no entry of that id (another chat's id is not this chat's).
        """
        redis, l3 = self._redis, self._l3
        async with self._hold(chat_id):
            if await self._archiver.flush():
                raise BackendUnavailable("chroma", f"the archive cannot be written ({l3.problem or 'unreachable'})")
            store = await l3.episodic()
            found = await l3.call(store.get_with_vectors, [chat_id], [entry_id])
            if not found:
                return False
            [(entry, vector)] = found
            await l3.call(store.delete_entries, chat_id, [entry_id])
            await (await redis.lexical_index()).remove(chat_id, entry_id, entry["content"], vector)
            if "turn" in entry["metadata"]:
                await (await redis.working()).remove_turn(chat_id, entry["timestamp"], entry["content"])
                await self._journal.forget_imported(chat_id, entry["metadata"]["turn"])
            await redis.invalidate_searches_of(chat_id, await users_of_chat(redis, chat_id), delete=True)
        # Once the chat is free: inside, the cut would wait for the hold to end and erase once more.
        await self._copies.cut([chat_id], archived_texts(entry["content"]))
        await self._erasure.erase_deleted(l3=True)
        return True


def with_tokens(turns: list[tuple[int, ImportedTurn]]) -> list[tuple[int, list[Message]]]:
    """Imported turns' messages as L2 keeps a turn's, each with its token count; counted in one
    batch, and not remembered: an import's thousands would push out the live turns' counts."""
    counts = iter(count_unremembered([message["content"] for _, turn in turns for message in turn.messages]))
    return [(number, [{**message, "tokens": next(counts)} for message in turn.messages]) for number, turn in turns]
