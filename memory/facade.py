"""Memory: the one door to GOAT's memory, for the graph's nodes, the runner, the tools and the CLI.

Its verbs map the logical layers (L1 facts, L2 working, L2.5 cache, L3 episodic) onto the
backends (``memory/stores/backends.py``); behind it, retrieval (``memory/retrieval/``), L3
writes (``memory/stores/archive.py``) and the turn journal (``memory/stores/journal.py``).
:meth:`Memory.scope` opens the door of one user in one chat (``memory/scope.py``), the
verbs behind every user command.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from memory.copies import CopiesRedactor, TurnCopies
from memory.entries import ChatEntries
from memory.errors import BackendUnavailable
from memory.health import BackendHealth, Health, check_health
from memory.measuring import Measuring
from memory.prompt.tokens import count_tokens
from memory.retrieval.explicit_search import Found
from memory.retrieval.recall import Recalled, RecallQuery, recall
from memory.retrieval.search import L3Search
from memory.scope import MemoryScope
from memory.settings import Settings
from memory.stores.archive import Archive
from memory.stores.backends import Backends
from memory.stores.chat_users import chats_of_user, users_and_chats
from memory.stores.facts import clean_fact_text, upsert_within
from memory.stores.journal import TurnJournal
from memory.stores.privacy import Forgotten, export_user, forget_chat, forget_user
from memory.stores.reembed import Reembedded, reembed
from memory.turns import Archived, Exchange, Hit, ImportedTurn

# The door, and the public types that go through it.
__all__ = ["Archived", "BackendHealth", "Connected", "Forgotten", "Found", "Health", "Memory", "MemoryScope", "RecallQuery", "Recalled"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Connected:
    redis_url: str  # where the graph's checkpointer keeps its state: the same Redis as L2
    unfinished_chats: list[str]  # chats whose last turn died before it finished


class Memory:
    def __init__(self, settings: Settings, **ready: Any) -> None:
        """``ready``: backends already open, used instead of opening them (``episodic``,
        ``facts``, ``embeddings``: see :class:`Backends`)."""
        self.settings = settings
        self._backends = Backends(settings, **ready)
        self._l3 = L3Search(self._backends)
        self._archiver = Archive(self._backends)
        self._journal = TurnJournal(self._backends)
        self._copies = TurnCopies(self._backends, self._archiver)
        self._entries = ChatEntries(self._backends, self._archiver, self._journal, self._copies, self.turn,
                                    self.save_turn)
        # The tests' and benchmarks' own hooks (the plain vector search, settling the archive).
        self.measuring = Measuring(self._backends, self._l3, self._archiver)

    # ---- lifecycle ------------------------------------------------------------------------

    async def connect(self, *, warm: bool = False) -> Connected:
        """Connect Redis, the one backend a turn cannot do without (its failure raises), bring
        the word index up to this version's scheme and the archived turns (once per process;
        a long migration logs its progress), and have whatever an earlier process left in the
        L3 outbox written. With ``warm``, also open L3 and load the model now, so the first
        turn is not a cold one.

        Returns:
            The Redis URL (the embedded server's when none is configured) and the chats
            whose last turn never finished.
        """
        await self._backends.redis()
        if warm:
            from memory.retrieval.temporal import warm_up as warm_up_dates  # dateparser's first parse is slow

            try:
                await self._backends.episodic()
            except BackendUnavailable as exc:  # costs only L3, turn by turn, until it is back
                log.warning("%s", exc)
            await asyncio.gather(self._backends.run_blocking(warm_up_dates),
                                 self._backends.run_blocking(count_tokens, "warm-up"))
            await self._l3.warm_up()
        await self._archiver.migration.bring_index_current()  # L3 down: logged, tried again at the next write
        self._archiver.wake()
        return Connected(self._backends.redis_url or "", await self._journal.unfinished())

    async def redis(self) -> aioredis.Redis | aioredis.RedisCluster:
        """The Redis client L2 lives on (the embedded server's when none is configured), for a
        face's own keys beside memory's (the webhook's inbox)."""
        return await self._backends.redis()

    async def unfinished_forgets(self) -> list[str]:
        """The users whose forget a backend failure cut short: forgetting them again finishes it."""
        return await self._journal.unfinished_forgets()

    def redact_copies_with(self, redact: CopiesRedactor) -> None:
        """Have every forget of a text (a fact, an entry, a message's edited text) cut it out of
        the copies kept outside memory of what the chats' turns read (the graph's checkpoints):
        ``redact(chats, texts)`` is awaited before the forget erases the files; for a chat with a
        turn running in this process, once that turn ends."""
        self._copies.redact_with(redact)

    def stop_at_exit(self) -> None:
        """Synchronous last resort for processes that never close their memory (the LangGraph
        server, a notebook's kernel): stop the embedded Redis if this process started it."""
        self._backends.stop_at_exit()

    async def aclose(self) -> None:
        """Write what this process queued to L3 (what L3 cannot take stays in the outbox), then
        close every backend."""
        await self._archiver.aclose()
        await self._backends.aclose()

    # ---- a turn ---------------------------------------------------------------------------

    @asynccontextmanager
    async def turn(self, chat_id: str, message: str | None = None, user_id: str | None = None) -> AsyncIterator[bool]:
        """Hold the chat for one turn: its turns run one at a time, in arrival order, also
        across processes. Starts embedding ``message`` while the turn waits for the chat, and
        searching it by words once the chat is held; the user who speaks is one of the chat's
        from then on.

        Yields:
            True if an earlier turn of the chat never finished (it is completed first). The
            chat is marked in flight until the block ends without an exception.
        """
        if message is not None:
            self._l3.embed_ahead(message, chat_id)
        async with (await self._backends.chat_locks()).hold(chat_id), self._archiver.turn_running():
            self._copies.turn_started(chat_id)
            if message is not None and self.settings.memory.scope == "chat":
                self._l3.read_ahead(chat_id, message, self.settings.prefetch.search_k,
                                    self.settings.retrieval.lexical_max_df_share)
            try:
                yield await self._journal.begin(chat_id, user_id)
                await self._journal.end(chat_id)
            finally:
                self._l3.drop_ahead(chat_id)
                await self._backends.searches_cached()
                await self._copies.turn_ended(chat_id)

    @asynccontextmanager
    async def forgetting(self, user_id: str) -> AsyncIterator[list[tuple[str, bool]]]:
        """Hold every chat of the user, as a turn holds its chat, while they are forgotten: a turn
        in flight there finishes first and no other starts until the block ends, so nothing of
        theirs is written after. When the block ends, what it deleted is erased from the data
        folder's files (``memory/stores/erasure.py``). The forget is recorded
        (:meth:`TurnJournal.unfinished_forgets`) until both are done without an exception.

        Yields:
            The chats held, each with True if a turn of it died after its reply (to complete
            before forgetting, whoever wrote it).
        """
        await self._journal.forget_begins(user_id)
        async with AsyncExitStack() as stack:
            held: dict[str, bool] = {}
            # Looked up again once held: a turn that finished meanwhile may have added a chat.
            while missing := sorted(set(await chats_of_user(self._backends, user_id)) - set(held)):
                for chat_id in missing:
                    held[chat_id] = await stack.enter_async_context(self.turn(chat_id))
            yield list(held.items())
        # Erased once the chats are free, and once the record naming the user is gone too.
        await self._journal.forget_ends(user_id)
        try:
            await self._backends.erase_deleted(l3=True)
        except BaseException:
            await self._journal.forget_begins(user_id)  # the next forget of theirs erases
            raise

    async def recall(self, query: RecallQuery, settings: Settings | None = None) -> Recalled:
        """What L3 holds for the query: the ranked lists of every mechanism that fired, the
        background, and the outcome (fired, succeeded, failed, timed out, found, cache).

        Args:
            query: the text, whose memory (chat and user), when, which lists, the deadline.
            settings: this run's settings (with its overrides); the process's by default.
        Returns:
            A :class:`Recalled`; a mechanism that fails or misses the deadline is reported in
            its outcome, never raised.
        """
        return await recall(self._l3, query, settings or self.settings)

    def scope(self, chat_id: str, user_id: str, *, now: float | None = None,
              settings: Settings | None = None) -> MemoryScope:
        """The verbs of the user commands (facts, search, a fresh start, export…) for one user
        in one chat, at ``now`` (the current time by default), with a run's ``settings``."""
        return MemoryScope(self, settings or self.settings, chat_id, user_id, time.time() if now is None else now)

    # ---- L1 -------------------------------------------------------------------------------

    async def facts(self, user_id: str, deadline: float | None = None) -> dict[str, str]:
        """The user's L1 facts, by key.

        Args:
            deadline: seconds to wait for the facts store's answer (connecting to it, which
                later turns need too, is not counted); ``TimeoutError`` after that.
        """
        store = await self._backends.facts()
        return await asyncio.wait_for(store.get_all(user_id), deadline)

    async def remember(self, user_id: str, key: str, value: str, max_tokens: int) -> int:
        """Upsert one of the user's L1 facts by key.

        L1 is in every prompt, so a fact that would take the block past ``max_tokens`` is
        refused with ``FactsFull`` and nothing is written.

        Returns:
            The facts block's tokens with the fact.
        """
        return await upsert_within(await self._backends.facts(), user_id, key, value, max_tokens)

    # ---- L2 -------------------------------------------------------------------------------

    async def working(self, chat_id: str, max_messages: int, max_tokens: int | None = None) -> tuple[int, list[dict]]:
        """The chat's L2 as far back as ``max_messages`` and ``max_tokens`` reach.

        Returns:
            (completed turns, the pinned first message + the most recent messages).
        """
        return await (await self._backends.working()).load(chat_id, max_messages, max_tokens)

    async def save_turn(self, chat_id: str, turn: int, messages: list[dict]) -> bool:
        """Append a turn's messages to L2 (O(1), idempotent by turn number), each with its token
        count (``tokens``): counted once here rather than by every later turn that trims L2.

        Returns:
            False if another turn of the chat already took this number (nothing written).
        """
        counted = [{**message, "tokens": count_tokens(message["content"])} for message in messages]
        return await (await self._backends.working()).append_turn(chat_id, turn, counted)

    # ---- L3 writes ------------------------------------------------------------------------

    async def archive(self, exchanges: list[Exchange], now: float, *, accessed: Iterable[Hit] = ()) -> Archived:
        """Archive turns verbatim in L3, behind the reply: durable in the Redis outbox once this
        returns, written to Chroma by the archiver between turns. ``accessed`` are L3 entries
        the turn used: their access counts are bumped there too (best effort).

        Returns:
            How many entries wait in the outbox, and what failed in L3's latest call.
        """
        self._archiver.bump_access_later(list(accessed), now)
        waiting = await self._archiver.later(exchanges, now) if exchanges else 0
        return Archived(waiting, self._backends.l3_problem)

    async def write_archive_through(self, deadline: float) -> None:
        """Write the turns waiting behind the replies to L3 now, for up to ``deadline`` seconds
        (the writing goes on behind after that): an explicit search then finds the turn just
        answered. What L3 cannot take stays in the outbox.

        Raises:
            redis.exceptions.RedisError: Redis, where the outbox lives, failed.
        """
        await self._archiver.write_through(deadline)

    async def store_memory(self, chat_id: str, user_id: str, content: str, tags: list[str] | None,
                           now: float, entry_id: str | None = None) -> str:
        """Write a curated entry to the chat's L3 now; the same content rewrites the same entry.

        Args:
            entry_id: the entry's id, when the caller names it (a store's key); by default one
                made of the content. An id the chat already holds is not rewritten here: delete
                it first (:meth:`delete_entry`).
        Returns:
            The entry's id.
        """
        if entry_id is not None:
            await self._archiver.flush()  # a turn waiting to be archived is found under its id
        return await self._archiver.store_curated(chat_id, user_id, content, tags, now, entry_id)

    async def import_turns(self, chat_id: str, turns: list[ImportedTurn],
                           progress: Callable[[int], None] | None = None) -> list[int]:
        """Write a chat's imported exchanges to L3 and L2 as live turns are written, numbered
        once per exchange (by digest): a repeated or interrupted import never writes one twice.
        An exchange of a new digest whose ``ref`` was imported before (a message edited since)
        rewrites that turn in place, and the text it replaced is erased from the files.

        Returns:
            The turn numbers written (or rewritten) now; an exchange already written is not among them.
        """
        return await self._entries.import_turns(chat_id, turns, progress)

    async def forget_fact(self, user_id: str, key: str) -> bool:
        """Delete one of the user's L1 facts, cut its value out of the copies the turns of their
        chats keep (:meth:`redact_copies_with`), and erase both from Redis's files. Returns False
        when none had that key."""
        facts = await self._backends.facts()
        value = (await facts.get_all(user_id)).get(clean_fact_text(key, "fact key"))
        if value is None or not await facts.delete(user_id, key):
            return False
        await self._copies.cut(await chats_of_user(self._backends, user_id), [value])
        await self._backends.erase_deleted(l3=False)
        return True

    async def start_afresh(self, chat_id: str) -> None:
        """Start the chat's L2 afresh (``/reset``): L3 keeps every turn and turn numbers go on,
        so archive ids never repeat. The archive written behind the replies is flushed first,
        so no turn leaves L2 before it is in L3; L2's copy is erased from Redis's files."""
        await self._archiver.flush()
        await (await self._backends.working()).clear_messages(chat_id)
        await self._backends.erase_deleted(l3=False)

    async def forget_chat(self, chat_id: str) -> None:
        """Delete the chat's L2, L3, word index, import records and cached searches (its users'
        facts stay): the demo's fresh start, so not erased from the files (a person's forget is,
        :meth:`forgetting`). The graph's checkpoints are not memory's: the caller deletes the
        chat's thread."""
        await forget_chat(self._backends, self._archiver, chat_id)

    async def forget_user(self, user_id: str) -> Forgotten:
        """Delete everything of the person (``memory/stores/privacy.py``), inside :meth:`forgetting`,
        which holds their chats meanwhile.

        Returns:
            What was removed. The graph's checkpoints are not memory's: the caller deletes the
            threads of ``chats`` and ``shared``.
        """
        return await forget_user(self._backends, self._archiver, user_id)

    async def export(self, user_id: str, chat_id: str | None = None) -> dict[str, Any]:
        """Everything of the user as one JSON-able document: their facts, and per chat (theirs,
        or only ``chat_id``) their L2 messages and L3 entries, verbatim. The archive written
        behind the replies is flushed first, so their latest turns are in it."""
        await self._archiver.flush()
        return await export_user(self._backends, user_id, chat_id)

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
        return await reembed(self._backends, progress)

    # ---- edited messages ------------------------------------------------------------------

    async def link_message(self, chat_id: str, message_ref: str, turn: Mapping[str, Any]) -> None:
        """Record that a turn (its state: ``turn``, ``now``, ``message``, ``user_id``) stored the
        client's message ``message_ref`` (a Telegram message id), so that an edit of the message can
        replace what the turn stored (:meth:`edit_message`). Kept beside the chat's L2; forgetting the
        chat, or the user, drops it."""
        await self._entries.link(chat_id, message_ref, turn)

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
        return await self._entries.edit(chat_id, message_ref, user_id, text)

    # ---- memories by id, and retried requests -------------------------------------------

    async def entries_page(self, chat_id: str, limit: int, cursor: str | None = None) -> tuple[list[Hit], str | None]:
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
        return await self._entries.page(chat_id, limit, cursor)

    async def entries(self, chat_id: str, ids: list[str]) -> list[Hit]:
        """The chat's L3 entries of these ids (the archive written behind the replies first, so a
        turn just answered is among them).

        Returns:
            The entries found (as hits at distance 0), in no set order; an id the chat does not
            hold is left out.
        """
        return await self._entries.of_ids(chat_id, ids)

    async def delete_entry(self, chat_id: str, entry_id: str) -> bool:
        """Delete one of the chat's L3 entries by id: from Chroma, from the word index (and the
        chat's centroid) and, for an archived turn, its messages in L2; the chat's cached searches
        are dropped; an exchange deleted so can be imported or archived again. Holds the chat as
        a turn does, and writes the archive waiting behind the replies first, so a turn just
        archived can be deleted and is not written back after. Then the entry is erased from the
        data folder's files.

        Returns:
            False when the chat holds no entry of that id (another chat's id is not this chat's).
        """
        return await self._entries.delete(chat_id, entry_id)

    # ---- who memory knows ---------------------------------------------------------------

    async def users_and_chats(self) -> tuple[list[str], list[str]]:
        """Every user memory knows (who wrote to a chat, or keeps facts in Redis; facts kept in
        Letta alone do not name their user) and every chat (with a user, or with L3 entries).

        Returns:
            The users and the chats, each sorted.
        """
        users, chats = await users_and_chats(self._backends)
        store = await self._backends.episodic()
        return users, sorted({*chats, *await self._backends.run_blocking(store.chat_ids)})

    async def chats_of(self, user_id: str) -> list[str]:
        """The chats the user wrote to (a turn, a note, an import), sorted."""
        return await chats_of_user(self._backends, user_id)

    async def first_seen(self, key: str, now: float, window: float) -> float:
        """When ``key`` (naming what a client sent, e.g. a digest of it) was first seen in the last
        ``window`` seconds: a request retried within the window is known by it.

        Returns:
            That time; ``now`` when it was not seen (it is seen now, from then on).
        """
        return await self._journal.first_seen(key, now, window)

    async def health(self, chat_id: str | None = None, user_id: str | None = None, *,
                     unchecked: Collection[str] = ()) -> Health:
        """Each backend: reachable? With a chat and a user, also what each layer
        holds for them (:func:`memory.health.check_health` says how)."""
        return await check_health(self._backends, self._archiver, chat_id, user_id, unchecked=unchecked)

    async def __aenter__(self) -> "Memory":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
