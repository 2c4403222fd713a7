"""MemoryAdmin: memory's door for the operator's jobs and for the people whose data it keeps
(``Memory.admin``): forgetting a person or a chat, exporting a person's data, listing
who and which chats memory knows, re-embedding the archive, filling in the languages, checking
the backends. The verbs every turn calls are :class:`memory.facade.Memory`'s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from memory.copies import TurnCopies
from memory.health import Health, check_health
from memory.heard import HeardConversation
from memory.stores.archive import Archive
from memory.settings import MemorySettings
from memory.stores.archive_encoder import ArchiveEncoder
from memory.stores.chat_users import chats_of_user, users_and_chats
from memory.stores.erasure import DataFolderErasure
from memory.stores.journal import TurnJournal
from memory.stores.l3_backend import L3Backend
from memory.stores.privacy import Forgotten, export_user, forget_chat, forget_user
from memory.stores.redis_backend import RedisBackend
from memory.stores.reembed import Reembedded, reembed


class MemoryAdmin:
    def __init__(self, settings: MemorySettings, redis: RedisBackend, l3: L3Backend, encoder: ArchiveEncoder,
                 erasure: DataFolderErasure, archiver: Archive, journal: TurnJournal, copies: TurnCopies,
                 hold: Callable[[str], AbstractAsyncContextManager[bool]], heard: HeardConversation) -> None:
        """``settings``: the process's (the backends' health reports them, a re-embedding's lease
        lasts the chats'); ``redis``, ``l3``, ``encoder``: the backends its jobs read and write;
        ``erasure``: erases what a forget deleted from the files; ``hold(chat_id)``: the chat
        held as a turn holds it (``Memory.turn``); ``heard``: the lines heard in groups, written
        before a person's data is read or forgotten."""
        self._settings, self._redis, self._l3, self._encoder, self._erasure = settings, redis, l3, encoder, erasure
        self._archiver, self._journal, self._copies = archiver, journal, copies
        self._hold, self._heard = hold, heard

    # ---- forgetting a person ----------------------------------------------------------------

    @asynccontextmanager
    async def forgetting(self, user_id: str) -> AsyncIterator[list[tuple[str, bool]]]:
        """Hold every chat of the user, as a turn holds its chat, while they are forgotten: a turn
        in flight there finishes first and no other starts until the block ends, so nothing of
        theirs is written after. When the block ends, what it deleted is erased from the data
        folder's files (``memory/stores/erasure.py``). The forget is recorded
        (:meth:`unfinished_forgets`) until both are done without an exception.

        Yields:
            The chats held, each with True if a turn of it died after its reply (to complete
            before forgetting, whoever wrote it).
        """
        await self._journal.forget_begins(user_id)
        await self._heard.write_all()  # their lines heard in groups waiting to be written: found as written ones
        async with AsyncExitStack() as stack:
            held: dict[str, bool] = {}
            # Looked up again once held: a turn that finished meanwhile may have added a chat.
            while missing := sorted(set(await chats_of_user(self._redis, user_id)) - set(held)):
                for chat_id in missing:
                    held[chat_id] = await stack.enter_async_context(self._hold(chat_id))
            yield list(held.items())
        # Erased once the chats are free, and once the record naming the user is gone too.
        await self._journal.forget_ends(user_id)
        try:
            await self._erasure.erase_deleted(l3=True)
        except BaseException:
            await self._journal.forget_begins(user_id)  # the next forget of theirs erases
            raise

    async def forget_user(self, user_id: str) -> Forgotten:
        """Delete everything of the person (``memory/stores/privacy.py``), inside :meth:`forgetting`,
        which holds their chats meanwhile.

        Returns:
            What was removed. The graph's checkpoints are not memory's: the caller deletes the
            threads of ``chats`` and ``shared``.
        """
        return await forget_user(self._redis, self._l3, self._archiver, user_id)

    async def unfinished_forgets(self) -> list[str]:
        """The users whose forget a backend failure cut short: forgetting them again finishes it."""
        return await self._journal.unfinished_forgets()

    # ---- a person's data --------------------------------------------------------------------

    async def export(self, user_id: str, chat_id: str | None = None) -> dict[str, Any]:
        """Everything of the user as one JSON-able document: their facts, and per chat (theirs,
        or only ``chat_id``) their L2 messages and L3 entries, verbatim. The archive written
        behind the replies is flushed first, so their latest turns are in it, and so are the lines
        heard in groups waiting to be written."""
        await self._heard.write_all()
        await self._archiver.flush()
        return await export_user(self._redis, self._l3, user_id, chat_id)

    async def forget_chat(self, chat_id: str) -> None:
        """Delete the chat's L2, L3, word index, import records and cached searches (its users'
        facts stay): the demo's fresh start, so not erased from the files (a person's forget is,
        :meth:`forgetting`). The graph's checkpoints are not memory's: the caller deletes the
        chat's thread."""
        await forget_chat(self._redis, self._l3, self._archiver, chat_id)

    # ---- who memory knows -------------------------------------------------------------------

    async def users_and_chats(self) -> tuple[list[str], list[str]]:
        """Every user memory knows (who wrote to a chat, or keeps facts in Redis; facts kept in
        Letta alone do not name their user) and every chat (with a user, or with L3 entries).

        Returns:
            The users and the chats, each sorted.
        """
        users, chats = await users_and_chats(self._redis)
        store = await self._l3.episodic()
        return users, sorted({*chats, *await self._l3.run_blocking(store.chat_ids)})

    async def chats_of(self, user_id: str) -> list[str]:
        """The chats the user wrote to (a turn, a note, an import), sorted."""
        return await chats_of_user(self._redis, user_id)

    # ---- the operator's jobs ----------------------------------------------------------------

    async def fill_languages(self, progress: Callable[[int], None] | None = None,
                             stopped: Callable[[], bool] | None = None) -> int:
        """Give the English entries of chats of every language e5's block now (after an import),
        rather than behind the turns of the next process that serves them. What a stop leaves is
        done by the next call, or behind the turns.

        Args:
            progress: called with how many more entries have the block.
            stopped: asked before each batch; true, the call returns.
        Returns:
            How many entries were given the block.
        """
        return await self._archiver.fill_all(progress, stopped)

    async def reembed(self, progress: Callable[[int, int], None] | None = None) -> Reembedded:
        """Re-embed the archive with this process's encoder (``embeddings.model``), in place, or
        finish a re-embedding that was interrupted. Turns waiting in the outbox hold no vectors
        yet: the next process embeds them with the new encoder.

        Args:
            progress: called with (entries done, entries in all) as chats are done.
        Returns:
            The archive's encoder before and now, and how much was re-embedded.
        """
        return await reembed(self._redis, self._l3, self._encoder, self._settings.redis.chat_lock_seconds, progress)

    async def health(self, chat_id: str | None = None, user_id: str | None = None, *,
                     unchecked: Collection[str] = ()) -> Health:
        """Each backend: reachable? With a chat and a user, also what each layer
        holds for them (:func:`memory.health.check_health` says how)."""
        return await check_health(self._settings, self._redis, self._l3, self._encoder, self._archiver,
                                  chat_id, user_id, unchecked=unchecked)
