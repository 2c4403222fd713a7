"""What a chat holds, written and reached otherwise than by its turns: exchanges imported, its
L3 entries read, paged and deleted by id, and a user's message edited where its turn stored it
(the façade's verbs of those names say what each promises)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from memory.copies import TurnCopies
from memory.errors import BackendUnavailable
from memory.stores.archive import Archive
from memory.stores.backends import Backends
from memory.stores.chat_users import users_of_chat
from memory.stores.erasure import NotErased
from memory.stores.journal import TurnJournal
from memory.stores.working import MessageLink
from memory.turns import Hit, ImportedTurn, archived_texts

log = logging.getLogger(__name__)

_IMPORT_BATCH = 256  # exchanges embedded and written to L3 per call


class ChatEntries:
    def __init__(self, backends: Backends, archiver: Archive, journal: TurnJournal, copies: TurnCopies,
                 hold: Callable[[str], AbstractAsyncContextManager[bool]],
                 save_turn: Callable[[str, int, list[dict]], Awaitable[bool]]) -> None:
        """``hold(chat_id)``: the chat held as a turn holds it; ``save_turn``: a turn's messages
        written to L2 as a turn writes them."""
        self._backends, self._archiver, self._journal, self._copies = backends, archiver, journal, copies
        self._hold, self._save_turn = hold, save_turn

    async def import_turns(self, chat_id: str, turns: list[ImportedTurn],
                           progress: Callable[[int], None] | None) -> list[int]:
        numbers, completed, edited = await self._journal.import_numbers(chat_id, turns)
        pending = [(n, t) for n, t in zip(numbers, turns) if n > completed]
        rewritten = [(numbers[index], turns[index]) for index in edited]
        if progress and len(turns) > len(pending) + len(rewritten):
            progress(len(turns) - len(pending) - len(rewritten))
        if rewritten:
            await self._rewrite_imported(chat_id, rewritten)
            if progress:
                progress(len(rewritten))
        now = time.time()
        for start in range(0, len(pending), _IMPORT_BATCH):
            batch = pending[start : start + _IMPORT_BATCH]
            await self._archiver.write([turn.exchange(chat_id, number) for number, turn in batch], now)
            for number, turn in batch:
                await self._save_turn(chat_id, number, list(turn.messages))
            if progress:
                progress(len(batch))
        return [number for number, _ in [*rewritten, *pending]]

    async def _rewrite_imported(self, chat_id: str, turns: list[tuple[int, ImportedTurn]]) -> None:
        """Imported turns whose message was edited since, each rewritten where the first import
        wrote it (L3, its words and vector, and L2), then known by its new digest; the texts they
        replaced erased from the files as an edit's are."""
        replaced: list[str] = []
        async with self._hold(chat_id):
            working = await self._backends.working()
            for number, turn in turns:
                exchange = turn.exchange(chat_id, number)
                if (old := await self._archiver.rewrite_turn(exchange)) is not None:
                    await working.replace_turn(chat_id, exchange.timestamp, old, list(turn.messages))
                    replaced += [text for text in archived_texts(old) if text and text not in exchange.content]
            await self._journal.record_imported(chat_id, {turn.digest: number for number, turn in turns})
        await self._erase_replaced(chat_id, replaced)

    async def link(self, chat_id: str, message_ref: str, turn: Mapping[str, Any]) -> None:
        link = MessageLink(turn["turn"], turn["now"], len(turn["message"]), turn["user_id"])
        await (await self._backends.working()).link(chat_id, message_ref, link)

    async def edit(self, chat_id: str, message_ref: str, user_id: str, text: str) -> bool:
        backends = self._backends
        working = await backends.working()
        async with (await backends.chat_locks()).hold(chat_id):
            link = await working.linked(chat_id, message_ref)
            if link is None or link.user_id != user_id:
                return False
            # L3 first: it may be down.
            archived = await self._archiver.replace_user_text(chat_id, link.turn, link.chars, text)
            saved = await working.replace_user_text(chat_id, link, text)
            await working.link(chat_id, message_ref, link._replace(chars=len(text)))
        # The text it replaced is erased from the files as a forget erases (the new one may hold it).
        await self._erase_replaced(chat_id, [old for old in {*archived, saved} if old and old not in text])
        return True

    async def _erase_replaced(self, chat_id: str, replaced: list[str]) -> None:
        """Cut texts an edit replaced out of the chat's copies and erase them from the files
        (when that fails, the edit is kept all the same)."""
        if not replaced:
            return
        await self._copies.cut([chat_id], replaced)
        try:
            await self._backends.erase_deleted(l3=True)
        except NotErased as exc:
            log.warning("%s", exc)

    async def page(self, chat_id: str, limit: int, cursor: str | None) -> tuple[list[Hit], str | None]:
        backends = self._backends
        # Ordered by the entry index's times (Chroma cannot order), caught up with L3 first.
        await self._archiver.indexer.sync_index([chat_id])
        index = await backends.entry_index()
        numbers, following = await index.newest(chat_id, limit, cursor)
        ids = [entry_id for entry_id in await index.ids(chat_id, numbers) if entry_id]
        store = await backends.episodic()
        by_id = {hit["id"]: hit for hit in await backends.l3(store.get_by_ids, [chat_id], ids)}
        return [by_id[entry_id] for entry_id in ids if entry_id in by_id], following

    async def of_ids(self, chat_id: str, ids: list[str]) -> list[Hit]:
        await self._archiver.flush()
        store = await self._backends.episodic()
        return await self._backends.l3(store.get_by_ids, [chat_id], ids)

    async def delete(self, chat_id: str, entry_id: str) -> bool:
        backends = self._backends
        async with self._hold(chat_id):
            if await self._archiver.flush():
                problem = backends.l3_problem or "unreachable"
                raise BackendUnavailable("chroma", f"the archive cannot be written ({problem})")
            store = await backends.episodic()
            found = await backends.l3(store.get_with_vectors, [chat_id], [entry_id])
            if not found:
                return False
            [(entry, vector)] = found
            await backends.l3(store.delete_entries, chat_id, [entry_id])
            await (await backends.lexical_index()).remove(chat_id, entry_id, entry["content"], vector)
            if "turn" in entry["metadata"]:
                await (await backends.working()).remove_turn(chat_id, entry["timestamp"], entry["content"])
                await self._journal.forget_imported(chat_id, entry["metadata"]["turn"])
            await backends.invalidate_searches_of(chat_id, await users_of_chat(backends, chat_id), delete=True)
        # Once the chat is free: inside, the cut would wait for the hold to end and erase once more.
        await self._copies.cut([chat_id], archived_texts(entry["content"]))
        await backends.erase_deleted(l3=True)
        return True
