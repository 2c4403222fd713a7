"""Memory's doors, by who calls them. :class:`Memory`: a turn's verbs (what the graph's nodes,
the runner and the faces call every turn) and the lifecycle; :class:`MemoryScope` (``Memory.scope``):
one user's memory in one chat, the verbs behind every user command; ``Memory.admin``
(``memory/admin.py``): the operator's jobs and a person's data; ``Memory.entries``
(``memory/entries.py``): a chat's records reached by id, imported or edited; ``Memory.heard``
(``memory/heard.py``): a group's own conversation, heard where the group asked for it.

The verbs map the logical layers (L1 facts, L2 working, L2.5 cache, L3 episodic) onto the
backends (``memory/stores/backends.py``: Redis, Chroma, the encoder, each handed to the stores
that use it); behind them, retrieval (``memory/retrieval/``), L3 writes
(``memory/stores/archive.py``) and the turn journal (``memory/stores/journal.py``).
Whoever keeps keys of their own on memory's Redis (the checkpointer, the webhook's inbox)
connects with the same clients (``memory/redis_clients.py``) to ``Connected.redis_url``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from memory.admin import MemoryAdmin
from memory.copies import CopiesRedactor, TurnCopies
from memory.entries import ChatEntries
from memory.errors import BackendUnavailable, SearchFailed
from memory.health import BackendHealth, Health
from memory.heard import HeardConversation, HeardLine, Listening
from memory.measurement_hooks import MeasurementHooks
from memory.prompt.tokens import count_tokens
from memory.redis_clients import async_client, glob_escaped, sync_client
from memory.retrieval.explicit_search import SearchResult, explicit_search, result_line
from memory.retrieval.finding.question import QuestionServices
from memory.retrieval.finding.recall import Recalled, RecallQuery, recall
from memory.retrieval.selection import Selection, select
from memory.settings import MemorySettings
from memory.stores.archive import Archive
from memory.stores.archive_vector_store import ArchiveVectorStore
from memory.stores.backends import Backends
from memory.stores.chat_owners import ChatOwners
from memory.stores.redis_backend import RedisBackend
from memory.stores.chat_users import chats_of_user
from memory.stores.erasure import DataFolderErasure
from memory.stores.facts import clean_fact_text, upsert_within
from memory.stores.journal import TurnJournal
from memory.stores.privacy import Forgotten
from memory.turns import Archived, Exchange, Hit, Message, Standing, Working, Writers

# The doors, the public types that go through them, and the Redis clients everyone on memory's Redis uses.
__all__ = ["ArchiveVectorStore", "Archived", "BackendHealth", "ChatEntries", "Connected", "Forgotten", "Health",
           "HeardConversation", "HeardLine", "Listening", "MeasurementHooks", "Memory", "MemoryAdmin", "MemoryScope",
           "RecallQuery", "Recalled", "SearchResult", "Selection", "async_client", "glob_escaped",
           "measurement_hooks", "sync_client"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Connected:
    redis_url: str  # the Redis L2 lives on, where who keeps keys beside memory's connects (the checkpointer)
    unfinished_chats: list[str]  # chats whose last turn died before it finished


class Memory:
    def __init__(self, settings: MemorySettings, **ready: Any) -> None:
        """``ready``: backends already open, used instead of opening them (``episodic``,
        ``facts``, ``embeddings``: see :class:`Backends`)."""
        self.settings = settings
        self._backends = backends = Backends(settings, **ready)
        redis, l3, encoder, erasure = backends.redis, backends.l3, backends.encoder, backends.erasure
        self._redis, self._chroma, self._erasure = redis, l3, erasure
        self._finding = QuestionServices.over(redis, l3, encoder)
        self._archiver = Archive(redis, l3, encoder, erasure)
        self._journal = TurnJournal(redis)
        self._copies = TurnCopies(redis, erasure, self._archiver, settings.redis.chat_lock_seconds)
        self._owners = ChatOwners(redis, l3, self._archiver)  # who may write into a chat
        # The doors of a chat's records and of the operator's jobs (memory/entries.py, memory/admin.py).
        self.entries = ChatEntries(redis, l3, erasure, self._archiver, self._journal, self._copies, self._owners,
                                   self.turn)
        self.heard = HeardConversation(redis, l3, erasure, self._archiver, self.entries, self._owners, self._copies,
                                       self._held)
        self.admin = MemoryAdmin(settings, redis, l3, encoder, erasure, self._archiver, self._journal, self._copies,
                                 self.turn, self.heard)
        # The tests' and benchmarks' own hooks, no verb of the product: reached by measurement_hooks(memory).
        self._measurement_hooks = MeasurementHooks(redis, l3, encoder, self._finding, self._archiver,
                                                   settings.memory.scope)

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
        await self._redis.client()
        if warm:
            from memory.retrieval.message.dates import warm_up as warm_up_dates  # dateparser's first parse is slow

            try:
                await self._chroma.episodic()
            except BackendUnavailable as exc:  # costs only L3, turn by turn, until it is back
                log.warning("%s", exc)
            run_blocking = self._chroma.run_blocking
            await asyncio.gather(run_blocking(warm_up_dates), run_blocking(count_tokens, "warm-up"))
            await self._finding.ahead.warm_up()
        await self._archiver.migration.bring_index_current()  # L3 down: logged, tried again at the next write
        self._archiver.wake()
        return Connected(self._redis.url or "", await self._journal.unfinished())

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
        """Write the lines heard waiting, and what this process queued to L3 (what L3 cannot take
        stays in the outbox), then close every backend."""
        await self.heard.aclose()
        await self._archiver.aclose()
        await self._backends.aclose()

    # ---- a turn ---------------------------------------------------------------------------

    @asynccontextmanager
    async def turn(self, chat_id: str, message: str | None = None, user_id: str | None = None) -> AsyncIterator[bool]:
        """Hold the chat for one turn: its turns run one at a time, in arrival order, also
        across processes. Starts embedding ``message`` while the turn waits for the chat, and
        searching it by words once the chat is held; the lines a listening group said before the
        turn are written first (``memory/heard.py``); the user who speaks is one of the chat's
        owners from then on, vouched for by the face (a chat only strangers' claims were in is
        emptied first: ``memory/stores/chat_owners.py``).

        Yields:
            True if an earlier turn of the chat never finished (it is completed first). The
            chat is marked in flight until the block ends without an exception.
        """
        if message is not None:
            self._finding.ahead.embed_ahead(message, chat_id)
        edited: list[str] = []
        async with (await self._redis.chat_locks()).hold(chat_id), self._archiver.turn_running():
            self._copies.turn_started(chat_id)
            if user_id is not None:  # before anything of the chat is read
                await self._owners.enter(chat_id, Writers(frozenset({user_id}), Standing.VOUCHED))
            edited = await self.heard.write_held(chat_id)  # the turn reads what the group said before it
            if message is not None and self.settings.memory.scope == "chat":
                self._finding.ahead.read_ahead(chat_id, message, self.settings.prefetch.search_k,
                                                 self.settings.retrieval.lexical_max_df_share)
            try:
                yield await self._journal.begin(chat_id)
                await self._journal.end(chat_id)
            finally:
                self._finding.ahead.drop_ahead(chat_id)
                await self._redis.searches_cached()
                await self._copies.turn_ended(chat_id)
        await self.entries.erase_replaced(chat_id, edited)  # what an edit heard replaced, once the chat is free

    @asynccontextmanager
    async def _held(self, chat_id: str, *, wait: bool = True) -> AsyncIterator[bool]:
        """The chat held as a turn holds it, for writes that are no turn (``wait=False``: only if free)."""
        async with (await self._redis.chat_locks()).hold(chat_id, wait=wait) as held:
            yield held

    async def recall(self, query: RecallQuery, settings: MemorySettings | None = None) -> Recalled:
        """What L3 holds for the query: the ranked lists of every mechanism that fired, the
        background, and the outcome (fired, succeeded, failed, timed out, found, cache).

        Args:
            query: the text, whose memory (chat and user), when, which lists, the deadline.
            settings: this run's settings (with its overrides); the process's by default.
        Returns:
            A :class:`Recalled`; a mechanism that fails or misses the deadline is reported in
            its outcome, never raised.
        """
        return await recall(self._finding, query, settings or self.settings)

    async def select(self, recalled: Recalled, message: str, now: float,
                     settings: MemorySettings | None = None) -> Selection:
        """What a turn injects of what its recall found (:mod:`memory.retrieval.selection`): the
        entries that stand out, fused and scored, the turns beside the best (or, for a statement,
        the next nearest by meaning), a long turn cut to its excerpts; and why each candidate was
        kept or not.

        Args:
            recalled: the turn's recall (:meth:`recall`).
            message: the turn's message, which the excerpts bear on.
            now: when it is asked (unix seconds): the scores' recency.
            settings: this run's settings; the process's by default.
        Returns:
            A :class:`Selection`; the turns beside that could not be read within
            ``prefetch.timeout`` are left out, and its ``problem`` says why.
        """
        return await select(recalled, message, now, settings or self.settings, self._read_turns)

    async def _read_turns(self, chats: list[str], ids: list[str]) -> list[Hit]:
        store = await self._chroma.episodic()
        return await self._chroma.call(store.get_by_ids, chats, ids)

    def scope(self, chat_id: str, user_id: str, *, now: float | None = None,
              settings: MemorySettings | None = None) -> MemoryScope:
        """The verbs of the user commands (facts, search, a fresh start, export…) for one user
        in one chat, at ``now`` (the current time by default), with a run's ``settings``."""
        return MemoryScope(self, settings or self.settings, chat_id, user_id, time.time() if now is None else now,
                           self._redis, self._owners, self._archiver, self._finding, self._copies, self._erasure)

    # ---- L2 -------------------------------------------------------------------------------

    async def working(self, chat_id: str, max_messages: int, max_tokens: int | None = None) -> Working:
        """The chat's L2 as far back as ``max_messages`` and ``max_tokens`` reach.

        Returns:
            The completed turns, the pinned first message + the most recent messages, and the
            chat's people by name.
        """
        return await (await self._redis.working()).load(chat_id, max_messages, max_tokens)

    async def save_turn(self, chat_id: str, turn: int, messages: list[Message]) -> bool:
        """Append a turn's messages to L2 (O(1), idempotent by turn number), each with its token
        count (``tokens``): counted once here rather than by every later turn that trims L2.

        Returns:
            False if another turn of the chat already took this number (nothing written).
        """
        counted = [{**message, "tokens": count_tokens(message["content"])} for message in messages]
        return await (await self._redis.working()).append_turn(chat_id, turn, counted)

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
        return Archived(waiting, self._chroma.problem)

    async def start_afresh(self, chat_id: str) -> None:
        """Start the chat's L2 afresh (``/reset``): L3 keeps every turn and turn numbers go on,
        so archive ids never repeat. The archive written behind the replies is flushed first,
        so no turn leaves L2 before it is in L3; L2's copy is erased from Redis's files."""
        await self._archiver.flush()
        await (await self._redis.working()).clear_messages(chat_id)
        await self._erasure.erase_deleted(l3=False)

    async def __aenter__(self) -> "Memory":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def measurement_hooks(memory: Memory) -> MeasurementHooks:
    """What the tests and the benchmarks measure ``memory`` with (the plain vector search, the
    archive settled, the caches forgotten: memory/measurement_hooks.py): not one of its verbs, and
    no code of the product's calls it (``tests/test_layers.py``)."""
    return memory._measurement_hooks


@dataclass(frozen=True)
class MemoryScope:
    """The memory of one user in one chat, at one time, with one run's settings: the verbs behind
    every user command. ``goat chat``'s slash commands, the Telegram bot's commands, the MCP tools
    and the model's memory tools all call them, so a search, a fact kept or forgotten, or a fresh
    start means the same thing wherever it is asked for. Its chat, user, time and settings are
    fixed by whoever builds it (a turn, a face's session): no verb takes another chat or user."""

    memory: Memory
    settings: MemorySettings
    chat_id: str
    user_id: str
    now: float
    # What its verbs read and write with, handed over by Memory.scope (its own: no door hands them out).
    _redis: RedisBackend
    _owners: ChatOwners
    _archiver: Archive
    _finding: QuestionServices
    _copies: TurnCopies
    _erasure: DataFolderErasure

    # ---- L1 -------------------------------------------------------------------------------

    async def facts(self, deadline: float | None = None) -> dict[str, str]:
        """The user's facts, by key.

        Args:
            deadline: seconds to wait for the facts store's answer (connecting to it, which
                later turns need too, is not counted); none by default.
        Returns:
            The facts, by key.
        Raises:
            TimeoutError: the facts store did not answer within ``deadline``.
        """
        store = await self._redis.facts()
        return await asyncio.wait_for(store.get_all(self.user_id), deadline)

    async def remember(self, key: str, value: str) -> int:
        """Keep (or update) one of the user's facts, by key. L1 is in every prompt, so a fact that
        would take the block past ``budget.l1_facts_max_tokens`` is refused and nothing is written.

        Returns:
            The facts block's tokens with it.
        Raises:
            FactsFull: the facts would grow past ``budget.l1_facts_max_tokens`` (nothing written).
            ValueError: an empty or malformed key or value.
        """
        return await upsert_within(await self._redis.facts(), self.user_id, key, value,
                                   self.settings.budget.l1_facts_max_tokens)

    async def forget_fact(self, key: str) -> bool:
        """Delete one of the user's facts, cut its value out of the copies the turns of their
        chats keep (``Memory.redact_copies_with``), and erase both from Redis's files. Returns
        False when none had that key."""
        facts = await self._redis.facts()
        value = (await facts.get_all(self.user_id)).get(clean_fact_text(key, "fact key"))
        if value is None or not await facts.delete(self.user_id, key):
            return False
        await self._copies.cut(await chats_of_user(self._redis, self.user_id), [value])
        await self._erasure.erase_deleted(l3=False)
        return True

    # ---- L2 and L3 ------------------------------------------------------------------------

    async def join(self) -> None:
        """The user is one of the chat's owners from now on, vouched for by the face that fixed
        both (MCP's chat and user, set by the operator), as a live turn's user is: a chat only
        strangers' claims were in is emptied first (``memory/stores/chat_owners.py``)."""
        async with (await self._redis.chat_locks()).hold(self.chat_id):
            await self._owners.enter(self.chat_id, Writers(frozenset({self.user_id}), Standing.VOUCHED))

    async def store(self, content: str, tags: list[str] | None = None, entry_id: str | None = None,
                    name: str | None = None) -> str:
        """Keep a note in the chat's archive (L3) now, verbatim; the same content rewrites the same note.

        Args:
            content: the note's text.
            tags: its tags, if any.
            entry_id: its id, when the caller names it (a store's key); by default one made of the
                content. An id the chat already holds is not rewritten here: delete it first
                (:meth:`ChatEntries.delete`).
            name: the user's display name, kept with the note as a turn's speaker's is.
        Returns:
            The note's id.
        """
        archiver = self._archiver
        if entry_id is not None:
            await archiver.flush()  # a turn waiting to be archived is found under its id
        return await archiver.store_curated(self.chat_id, self.user_id, content, tags, self.now, entry_id, name)

    async def search(self, query: str, after: str | None = None, before: str | None = None) -> list[str]:
        """The chat's archive searched on demand (:meth:`found`), as lines.

        Args:
            query: what to look for, in words.
            after: only entries from this ISO-8601 date or time on.
            before: only entries up to this ISO-8601 date or time (a date: its whole day).
        Returns:
            One line per entry found, best first, as a prompt shows it (capped), followed by
            the searched words it holds; empty when nothing stands out.
        Raises:
            ValueError: an empty query, or dates that are not ISO-8601 or out of order.
            SearchFailed: a backend failed or missed ``tools.timeout``.
        """
        return [result_line(found.hit, found.words) for found in await self.found(query, after, before)]

    async def found(self, query: str, after: str | None = None, before: str | None = None) -> list[SearchResult]:
        """The chat's archive searched on demand: what stands out for the query by meaning,
        selected as a turn's recalls are, and every entry holding all the words searched for
        (an explicit search is a question about words as well as meaning). What it finds
        counts as used (its popularity in later turns' scores). The turns waiting to be
        archived behind their replies are written first, for up to half of ``tools.timeout``
        (the search has the rest: a tool call is given ``tools.timeout`` in all), so the turn
        just answered is found.

        Args:
            query, after, before: as :meth:`search` takes them.
        Returns:
            The entries found, best first, at most ``prefetch.max_results``: each with the
            searched words it holds and why it was kept.
        Raises:
            ValueError, SearchFailed: as :meth:`search` raises them.
        """
        found = await explicit_search(self._recall_written_through, RecallQuery(
            query, self.chat_id, self.user_id, self.now), after, before, self.settings)
        await self.memory.archive([], self.now, accessed=[each.hit for each in found])
        return found

    async def _recall_written_through(self, query: RecallQuery, settings: MemorySettings) -> Recalled:
        """The memory's recall, once the turns waiting behind their replies are written (the
        turn just answered is found), within the query's deadline all told."""
        started, deadline = time.monotonic(), settings.tools.timeout if query.deadline is None else query.deadline
        try:
            # The turns waiting behind the replies, written now (the writing goes on behind after
            # half the deadline); what L3 cannot take stays in the outbox.
            await self._archiver.write_through(deadline / 2)
        except Exception as exc:
            raise SearchFailed(f"memory search failed: the turns waiting for the archive could not be read "
                               f"({type(exc).__name__}: {exc})") from exc
        left = deadline - (time.monotonic() - started)
        return await self.memory.recall(replace(query, deadline=left), settings)

    async def vector_store(self) -> ArchiveVectorStore:
        """The chat's archive as LangChain's vector store (langchain-chroma's ``Chroma`` over the
        chat's own Chroma collection, embedded or on a Chroma server, with GOAT's encoder): its
        ``similarity_search``, ``max_marginal_relevance_search`` and ``as_retriever()`` find the
        chat's turns and notes nearest a question by meaning, as GOAT's own search by meaning
        ranks them in the question's language. Only this chat's, whoever asks: ``memory.scope``
        does not widen it. Read-only: every write raises :class:`ArchiveReadOnly`. Its searches
        are synchronous (``ainvoke`` runs them in a thread); make it again after ``goat
        reembed``, or once the chat holds a language it did not.

        Returns:
            An :class:`ArchiveVectorStore`, each document an entry (its archive id, its text,
            its metadata).
        Raises:
            LookupError: nothing of the chat is archived yet.
            EncoderMismatch: the archive holds another encoder's vectors (``goat reembed``).
            BackendUnavailable: Redis or Chroma cannot be reached.
        """
        reads = self._finding.reads  # how the chat's questions are embedded, then the store over its collection
        return await reads.l3.open_vector_store(self.chat_id, await reads.chat_embeddings(self.chat_id))
