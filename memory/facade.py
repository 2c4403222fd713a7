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
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from memory.copies import CopiesRedactor, TurnCopies
from memory.errors import BackendUnavailable, FactsFull
from memory.health import BackendHealth, Health, check_health
from memory.prompt.blocks import facts_block
from memory.prompt.tokens import count_tokens
from memory.retrieval.explicit_search import Found
from memory.retrieval.recall import Recalled, RecallQuery, recall
from memory.retrieval.search import L3Search
from memory.scope import MemoryScope
from memory.settings import Settings
from memory.stores.archive import Archive
from memory.stores.backends import PREFIX, Backends
from memory.stores.chat_users import chats_of_user, users_and_chats, users_of_chat
from memory.stores.erasure import NotErased
from memory.stores.facts import clean_fact_text
from memory.stores.journal import TurnJournal
from memory.stores.privacy import Forgotten, export_user, forget_chat, forget_user
from memory.stores.reembed import Reembedded, reembed
from memory.stores.working import MessageLink
from memory.turns import Exchange, ImportedTurn, archived_texts

# The door, and the public types that go through it.
__all__ = ["BackendHealth", "Connected", "Forgotten", "Found", "Health", "Memory", "MemoryScope", "RecallQuery", "Recalled"]

log = logging.getLogger(__name__)

_IMPORT_BATCH = 256  # exchanges embedded and written to L3 per call

@dataclass(frozen=True)
class Connected:
    redis_url: str  # where the graph's checkpointer keeps its state: the same Redis as L2
    unfinished_chats: list[str]  # chats whose last turn died before it finished


class Memory:
    def __init__(self, settings: Settings, **ready: Any) -> None:
        """``ready``: backends already open, used instead of opening them (``episodic``,
        ``facts``, ``embeddings``: see :class:`Backends`)."""
        self.settings = settings
        self.backends = Backends(settings, **ready)
        self.l3 = L3Search(self.backends)
        self.archiver = Archive(self.backends)
        self.journal = TurnJournal(self.backends)
        self._copies = TurnCopies(self.backends)

    @property
    def l3_problem(self) -> str:
        """L3's health as last seen by a Chroma call: "" when it worked."""
        return self.backends.l3_problem

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
        await self.backends.redis()
        if warm:
            from memory.retrieval.temporal import warm_up as warm_up_dates  # dateparser's first parse is slow

            try:
                await self.backends.episodic()
            except BackendUnavailable as exc:  # costs only L3, turn by turn, until it is back
                log.warning("%s", exc)
            await asyncio.gather(self.backends.run_blocking(warm_up_dates),
                                 self.backends.run_blocking(count_tokens, "warm-up"))
            await self.l3.warm_up()
        await self.archiver.migration.bring_index_current()  # L3 down: logged, tried again at the next write
        self.archiver.wake()
        return Connected(self.backends.redis_url or "", await self.journal.unfinished())

    async def redis(self) -> aioredis.Redis | aioredis.RedisCluster:
        """The Redis client L2 lives on (the embedded server's when none is configured), for a
        face's own keys beside memory's (the webhook's inbox)."""
        return await self.backends.redis()

    async def unfinished_forgets(self) -> list[str]:
        """The users whose forget a backend failure cut short: forgetting them again finishes it."""
        return await self.journal.unfinished_forgets()

    def redact_copies_with(self, redact: CopiesRedactor) -> None:
        """Have every forget of a text (a fact, an entry, a message's edited text) cut it out of
        the copies kept outside memory of what the chats' turns read (the graph's checkpoints):
        ``redact(chats, texts)`` is awaited before the forget erases the files; for a chat with a
        turn running in this process, once that turn ends."""
        self._copies.redact_with(redact)

    def stop_at_exit(self) -> None:
        """Synchronous last resort for processes that never close their memory (the LangGraph
        server, a notebook's kernel): stop the embedded Redis if this process started it."""
        self.backends.stop_at_exit()

    async def aclose(self) -> None:
        """Write what this process queued to L3 (what L3 cannot take stays in the outbox), then
        close every backend."""
        await self.archiver.aclose()
        await self.backends.aclose()

    # ---- a turn ---------------------------------------------------------------------------

    @asynccontextmanager
    async def turn(self, chat_id: str, message: str | None = None, user_id: str | None = None) -> AsyncIterator[bool]:
        """Hold the chat for one turn: its turns run one at a time, in arrival order, also
        across processes. Starts embedding ``message`` while the turn waits for the chat; the
        user who speaks is one of the chat's from then on.

        Yields:
            True if an earlier turn of the chat never finished (it is completed first). The
            chat is marked in flight until the block ends without an exception.
        """
        if message is not None:
            self.l3.embed_ahead(message, chat_id)
        async with (await self.backends.chat_locks()).hold(chat_id), self.archiver.turn_running():
            self._copies.turn_started(chat_id)
            if message is not None and self.settings.memory.scope == "chat":
                self.l3.read_centroid_ahead(chat_id)
            try:
                yield await self.journal.begin(chat_id, user_id)
                await self.journal.end(chat_id)
            finally:
                self.l3.drop_centroid_ahead(chat_id)
                await self.backends.searches_cached()
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
        await self.journal.forget_begins(user_id)
        async with AsyncExitStack() as stack:
            held: dict[str, bool] = {}
            # Looked up again once held: a turn that finished meanwhile may have added a chat.
            while missing := sorted(set(await chats_of_user(self.backends, user_id)) - set(held)):
                for chat_id in missing:
                    held[chat_id] = await stack.enter_async_context(self.turn(chat_id))
            yield list(held.items())
        # Erased once the chats are free, and once the record naming the user is gone too.
        await self.journal.forget_ends(user_id)
        try:
            await self.backends.erase_deleted(l3=True)
        except BaseException:
            await self.journal.forget_begins(user_id)  # the next forget of theirs erases
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
        return await recall(self.l3, query, settings or self.settings)

    async def nearest(self, chat_ids: list[str], text: str, k: int) -> list[dict]:
        """The chats' ``k`` entries nearest to ``text`` by meaning alone: the plain vector search
        of a top-k memory, which the benchmarks compare recall with (and search once per chat
        to have its vector index loaded before they time a turn).

        Returns:
            Hits (``id``, ``content``, ``distance``, ``timestamp``, ``metadata``), closest first.
        """
        return await self.l3.search(chat_ids, await self.l3.measure(text, chat_ids), k)

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
        store = await self.backends.facts()
        return await asyncio.wait_for(store.get_all(user_id), deadline)

    async def remember(self, user_id: str, key: str, value: str, max_tokens: int) -> int:
        """Upsert one of the user's L1 facts by key.

        L1 is in every prompt, so a fact that would take the block past ``max_tokens`` is
        refused with ``FactsFull`` and nothing is written.

        Returns:
            The facts block's tokens with the fact.
        """
        key, value = clean_fact_text(key, "fact key"), clean_fact_text(value, "fact value")
        store = await self.backends.facts()
        tokens = count_tokens(facts_block({**await store.get_all(user_id), key: value}))
        if tokens > max_tokens:
            raise FactsFull(
                f"refused: with this fact the known-facts block would take {tokens} tokens, over its "
                f"limit of {max_tokens}; shorten the value or forget a fact that no longer matters"
            )
        await store.upsert(user_id, key, value)
        return tokens

    # ---- L2 -------------------------------------------------------------------------------

    async def working(self, chat_id: str, max_messages: int, max_tokens: int | None = None) -> tuple[int, list[dict]]:
        """The chat's L2 as far back as ``max_messages`` and ``max_tokens`` reach.

        Returns:
            (completed turns, the pinned first message + the most recent messages).
        """
        return await (await self.backends.working()).load(chat_id, max_messages, max_tokens)

    async def save_turn(self, chat_id: str, turn: int, messages: list[dict]) -> bool:
        """Append a turn's messages to L2 (O(1), idempotent by turn number), each with its token
        count (``tokens``): counted once here rather than by every later turn that trims L2.

        Returns:
            False if another turn of the chat already took this number (nothing written).
        """
        counted = [{**message, "tokens": count_tokens(message["content"])} for message in messages]
        return await (await self.backends.working()).append_turn(chat_id, turn, counted)

    # ---- L3 writes ------------------------------------------------------------------------

    async def archive(self, exchanges: list[Exchange], now: float, *, accessed: Iterable[dict] = ()) -> int:
        """Archive turns verbatim in L3, behind the reply: durable in the Redis outbox once this
        returns, written to Chroma by the archiver between turns. ``accessed`` are L3 entries
        the turn used: their access counts are bumped there too (best effort).

        Returns:
            How many entries wait in the outbox.
        """
        self.archiver.bump_access_later(list(accessed), now)
        return await self.archiver.later(exchanges, now) if exchanges else 0

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
            await self.archiver.flush()  # a turn waiting to be archived is found under its id
        return await self.archiver.store_curated(chat_id, user_id, content, tags, now, entry_id)

    async def import_turns(self, chat_id: str, turns: list[ImportedTurn],
                           progress: Callable[[int], None] | None = None) -> list[int]:
        """Write a chat's imported exchanges to L3 and L2 as live turns are written, numbered
        once per exchange (by digest): a repeated or interrupted import never writes one twice.

        Returns:
            The turn numbers written now (an exchange already written is not among them).
        """
        numbers, completed = await self.journal.import_numbers(chat_id, [t.digest for t in turns])
        pending = [(n, t) for n, t in zip(numbers, turns) if n > completed]
        if progress and len(turns) > len(pending):
            progress(len(turns) - len(pending))
        now = time.time()
        for start in range(0, len(pending), _IMPORT_BATCH):
            batch = pending[start : start + _IMPORT_BATCH]
            await self.archiver.write([turn.exchange(chat_id, number) for number, turn in batch], now)
            for number, turn in batch:
                await self.save_turn(chat_id, number, list(turn.messages))
            if progress:
                progress(len(batch))
        return [number for number, _ in pending]

    async def forget_fact(self, user_id: str, key: str) -> bool:
        """Delete one of the user's L1 facts, cut its value out of the copies the turns of their
        chats keep (:meth:`redact_copies_with`), and erase both from Redis's files. Returns False
        when none had that key."""
        facts = await self.backends.facts()
        value = (await facts.get_all(user_id)).get(clean_fact_text(key, "fact key"))
        if value is None or not await facts.delete(user_id, key):
            return False
        await self._copies.cut(await chats_of_user(self.backends, user_id), [value])
        await self.backends.erase_deleted(l3=False)
        return True

    async def start_afresh(self, chat_id: str) -> None:
        """Start the chat's L2 afresh (``/reset``): L3 keeps every turn and turn numbers go on,
        so archive ids never repeat. The archive written behind the replies is flushed first,
        so no turn leaves L2 before it is in L3; L2's copy is erased from Redis's files."""
        await self.archiver.flush()
        await (await self.backends.working()).clear_messages(chat_id)
        await self.backends.erase_deleted(l3=False)

    async def forget_chat(self, chat_id: str) -> None:
        """Delete the chat's L2, L3, word index, import records and cached searches (its users'
        facts stay): the demo's fresh start, so not erased from the files (a person's forget is,
        :meth:`forgetting`). The graph's checkpoints are not memory's: the caller deletes the
        chat's thread."""
        await forget_chat(self.backends, self.archiver, chat_id)

    async def forget_user(self, user_id: str) -> Forgotten:
        """Delete everything of the person (``memory/stores/privacy.py``), inside :meth:`forgetting`,
        which holds their chats meanwhile.

        Returns:
            What was removed. The graph's checkpoints are not memory's: the caller deletes the
            threads of ``chats`` and ``shared``.
        """
        return await forget_user(self.backends, self.archiver, user_id)

    async def export(self, user_id: str, chat_id: str | None = None) -> dict[str, Any]:
        """Everything of the user as one JSON-able document: their facts, and per chat (theirs,
        or only ``chat_id``) their L2 messages and L3 entries, verbatim. The archive written
        behind the replies is flushed first, so their latest turns are in it."""
        await self.archiver.flush()
        return await export_user(self.backends, user_id, chat_id)

    async def settle(self) -> int:
        """Write what the outbox holds to L3 now, and give the English entries of chats of every
        language the e5 block they wait for (tests, benchmarks).

        Returns:
            How many outbox entries are left (L3 unreachable).
        """
        left = await self.archiver.flush()
        if not left:
            await self.fill_languages()
        return left

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
        filled = 0
        while not (stopped and stopped()) and (step := await self.archiver.fill_step(wait=True)) is not None:
            filled += step
            if progress and step:
                progress(step)
        return filled

    async def reembed(self, progress: Callable[[int, int], None] | None = None) -> Reembedded:
        """Re-embed the archive with this process's encoder (``embeddings.model``), in place, or
        finish a re-embedding that was interrupted. Turns waiting in the outbox hold no vectors
        yet: the next process embeds them with the new encoder.

        Args:
            progress: called with (entries done, entries in all) as chats are done.
        Returns:
            The archive's encoder before and now, and how much was re-embedded.
        """
        return await reembed(self.backends, progress)

    # ---- edited messages ------------------------------------------------------------------

    async def link_message(self, chat_id: str, message_ref: str, turn: dict[str, Any]) -> None:
        """Record that a turn (its state: ``turn``, ``now``, ``message``, ``user_id``) stored the
        client's message ``message_ref`` (a Telegram message id), so that an edit of the message can
        replace what the turn stored (:meth:`edit_message`). Kept beside the chat's L2; forgetting the
        chat, or the user, drops it."""
        link = MessageLink(turn["turn"], turn["now"], len(turn["message"]), turn["user_id"])
        await (await self.backends.working()).link(chat_id, message_ref, link)

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
        working = await self.backends.working()
        async with (await self.backends.chat_locks()).hold(chat_id):
            link = await working.linked(chat_id, message_ref)
            if link is None or link.user_id != user_id:
                return False
            # L3 first: it may be down.
            archived = await self.archiver.replace_user_text(chat_id, link.turn, link.chars, text)
            saved = await working.replace_user_text(chat_id, link, text)
            await working.link(chat_id, message_ref, link._replace(chars=len(text)))
        # The text it replaced is erased from the files as a forget erases (the new one may hold it).
        if replaced := [old for old in {*archived, saved} if old and old not in text]:
            await self._copies.cut([chat_id], replaced)
            try:
                await self.backends.erase_deleted(l3=True)
            except NotErased as exc:  # the edit is kept all the same
                log.warning("%s", exc)
        return True

    # ---- memories by id, and retried requests -------------------------------------------

    async def entries_page(self, chat_id: str, limit: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
        """A page of the chat's L3 entries (archived turns and stored notes), newest first.

        Args:
            limit: entries in the page, at most.
            cursor: where the page starts: the cursor the previous page returned (None: the newest).
        Returns:
            The entries (``id``, ``content``, ``timestamp``, ``metadata``) and the next page's
            cursor, None after the last page.
        Raises:
            ValueError: the cursor is not one a page returned.
        """
        # Ordered by the word index's times (Chroma cannot order), caught up with L3 first.
        await self.archiver.sync_index([chat_id])
        index = await self.backends.entry_index()
        numbers, following = await index.newest(chat_id, limit, cursor)
        ids = [entry_id for entry_id in await index.ids(chat_id, numbers) if entry_id]
        store = await self.backends.episodic()
        by_id = {hit["id"]: hit for hit in await self.backends.l3(store.get_by_ids, [chat_id], ids)}
        return [by_id[entry_id] for entry_id in ids if entry_id in by_id], following

    async def entries(self, chat_id: str, ids: list[str]) -> list[dict]:
        """The chat's L3 entries of these ids (the archive written behind the replies first, so a
        turn just answered is among them).

        Returns:
            The entries found (``id``, ``content``, ``timestamp``, ``metadata``), in no set order;
            an id the chat does not hold is left out.
        """
        await self.archiver.flush()
        store = await self.backends.episodic()
        return await self.backends.l3(store.get_by_ids, [chat_id], ids)

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
        async with self.turn(chat_id):
            if await self.archiver.flush():
                raise BackendUnavailable("chroma", f"the archive cannot be written ({self.l3_problem or 'unreachable'})")
            store = await self.backends.episodic()
            found = await self.backends.l3(store.get_with_vectors, [chat_id], [entry_id])
            if not found:
                return False
            [(entry, vector)] = found
            await self.backends.l3(store.delete_entries, chat_id, [entry_id])
            await (await self.backends.lexical_index()).remove(chat_id, entry_id, entry["content"], vector)
            if "turn" in entry["metadata"]:
                await (await self.backends.working()).remove_turn(chat_id, entry["timestamp"], entry["content"])
                await self.journal.forget_imported(chat_id, entry["metadata"]["turn"])
            await self.backends.invalidate_searches_of(chat_id, await users_of_chat(self.backends, chat_id),
                                                       delete=True)
        # Once the chat is free: inside, the cut would wait for the hold to end and erase once more.
        await self._copies.cut([chat_id], archived_texts(entry["content"]))
        await self.backends.erase_deleted(l3=True)
        return True

    # ---- who memory knows ---------------------------------------------------------------

    async def users_and_chats(self) -> tuple[list[str], list[str]]:
        """Every user memory knows (who wrote to a chat, or keeps facts in Redis; facts kept in
        Letta alone do not name their user) and every chat (with a user, or with L3 entries).

        Returns:
            The users and the chats, each sorted.
        """
        users, chats = await users_and_chats(self.backends)
        store = await self.backends.episodic()
        return users, sorted({*chats, *await self.backends.run_blocking(store.chat_ids)})

    async def chats_of(self, user_id: str) -> list[str]:
        """The chats the user wrote to (a turn, a note, an import), sorted."""
        return await chats_of_user(self.backends, user_id)

    async def users_of(self, chat_id: str) -> set[str]:
        """The users who wrote to the chat."""
        return await users_of_chat(self.backends, chat_id)

    async def first_seen(self, key: str, now: float, window: float) -> float:
        """When ``key`` (naming what a client sent, e.g. a digest of it) was first seen in the last
        ``window`` seconds: a request retried within the window is known by it.

        Returns:
            That time; ``now`` when it was not seen (it is seen now, from then on).
        """
        redis, name = await self.backends.redis(), f"{PREFIX}:seen:{key}"
        if await redis.set(name, repr(now), nx=True, px=max(1, round(window * 1000))):
            return now
        seen = await redis.get(name)
        return now if seen is None else float(seen)

    async def health(self, chat_id: str | None = None, user_id: str | None = None, *,
                     unchecked: Collection[str] = ()) -> Health:
        """Each backend: reachable? in which mode? With a chat and a user, also what each layer
        holds for them (``memory/health.py``).

        Args:
            chat_id: the chat whose layers to count (with ``user_id``).
            user_id: the user whose facts to count.
            unchecked: backends not to check ("redis", "chroma", "encoder", "facts"): their settings
                are invalid.
        Returns:
            The backends checked, and the layers' counts.
        """
        return await check_health(self.backends, self.archiver, chat_id, user_id, unchecked=unchecked)

    async def __aenter__(self) -> "Memory":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
