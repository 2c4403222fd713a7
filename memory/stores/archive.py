"""L3 writes: turns archived verbatim behind the replies (a Redis outbox and an archiver),
curated entries, access counts, and the word index kept up with what Chroma holds.

Each entry is embedded once; its vector goes both to Chroma and to the chat's word index.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict
from collections.abc import Callable, Sequence
from typing import AsyncIterator

import numpy as np

from memory.stores.archive_encoder import ArchiveEncoder
from memory.stores.erasure import DataFolderErasure
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import PREFIX, RedisBackend, is_redis_failure
from memory.stores.chat_users import add_chat_users, users_of_chat
from memory.stores.curated import curated_entry
from memory.stores.entry_index import IndexEntry
from memory.stores.index_migration import IndexMigration
from memory.stores.index_sync import IndexSync
from memory.turns import USER_PREFIX, Exchange, Hit, archive_id, with_user_text
from memory.encoders import of_every_language, other_languages

log = logging.getLogger(__name__)

OUTBOX_KEY = f"{PREFIX}:l3_outbox"
_FILL_BATCH = 64  # entries given e5's block per step between turns (~0.5-1 s of e5 here)
# The archiver writes at most this many outbox entries per Chroma call; after a failure it
# retries with a doubling pause (and at every new turn).
_ARCHIVE_BATCH = 256
_ARCHIVE_RETRY_FIRST_S = 1.0
_ARCHIVE_RETRY_MAX_S = 30.0
_ARCHIVE_SETTLE_S = 30.0  # what closing waits for the archive at most
_ARCHIVE_MAX_DELAY_S = 2.0  # what the archiver waits at most for a moment without turns


def _logs_failure(what: str) -> Callable[[asyncio.Task], None]:
    """A done callback logging the task's failure as ``what`` (a writer no one awaits to the end)."""

    def log_failure(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: %s", what, task.exception())

    return log_failure


class Archive:
    def __init__(self, redis: RedisBackend, l3: L3Backend, encoder: ArchiveEncoder, erasure: DataFolderErasure) -> None:
        """Args:
            redis: the outbox, the word and entry index, the chats' users and leases, the cache.
            l3: Chroma, where the entries are written.
            encoder: what embeds them.
            erasure: zeroes what the index files may keep of a forgotten text, after each write.
        """
        self._redis, self._l3, self._encoder, self._erasure = redis, l3, encoder, erasure
        self.indexer = IndexSync(redis, l3)  # the word index kept up with what Chroma holds
        # Every chat's word index brought to this version's scheme.
        self.migration = IndexMigration(redis, l3, self.indexer)
        self._archiver: asyncio.Task | None = None  # writes the outbox to L3, behind the replies
        self._writing_through: asyncio.Task | None = None  # the outbox written now, for a search
        self._archive_wanted = asyncio.Event()
        self._outbox_lock = asyncio.Lock()
        self._closing = False
        self._access_bumps: list[tuple[list[Hit], float]] = []  # (hits, when), for the archiver
        # Chroma's embedded client holds the GIL through a write (50-75 ms at 100 000 entries),
        # stalling every turn of the process: the archiver waits until none is running.
        self._turns_running = 0
        self._no_turn_running = asyncio.Event()
        self._no_turn_running.set()

    # ---- writing now ----------------------------------------------------------------------

    async def write(self, exchanges: list[Exchange], now: float) -> list[str]:
        """Write turns verbatim to L3 (idempotent by id) and invalidate the affected caches."""
        if not exchanges:
            return []
        index = await self._redis.lexical_index()
        by_chat: dict[str, list[Exchange]] = {}
        for ex in exchanges:
            by_chat.setdefault(ex.chat_id, []).append(ex)
        for chat_id, chat_exchanges in by_chat.items():
            entries = [(ex.id, ex.content, ex.metadata(now)) for ex in chat_exchanges]
            await self._write_entries(chat_id, entries, [ex.timestamp for ex in chat_exchanges])
            await index.advance_turns_indexed(chat_id, [ex.turn for ex in chat_exchanges])
        for chat_id, chat_exchanges in by_chat.items():
            # Everyone who shares the chat searches it in user scope, not only this turn's user.
            users = await add_chat_users(self._redis, chat_id, {ex.user_id for ex in chat_exchanges})
            await self._redis.invalidate_searches_of(chat_id, users)
        return [ex.id for ex in exchanges]

    async def store_curated(self, chat_id: str, user_id: str, content: str, tags: list[str] | None,
                            now: float, entry_id: str | None = None, name: str | None = None) -> str:
        """Write a curated entry to the chat's L3 (see memory/stores/curated.py) and return its id
        (``entry_id`` when given). The same content again rewrites the same entry. Invalidates the
        chat's cached searches. A note kept under ``entry_id`` before is rewritten in place (its time
        kept).

        Raises:
            ValueError: empty or overlong content, or ``entry_id`` has a turn's form (archived or to come).
        """
        entry = curated_entry(chat_id, user_id, content, tags, now, entry_id, name)
        store = await self._l3.episodic()
        kept = await self._l3.call(store.get_with_vectors, [chat_id], [entry_id]) if entry_id else []
        if not kept:
            await self._write_entries(chat_id, [entry], [now])
        else:
            [(old, old_vector)] = kept
            await self._rewrite(chat_id, curated_entry(chat_id, user_id, content, tags, old["timestamp"], entry_id, name),
                                old, old_vector)
        await self._redis.invalidate_searches_of(chat_id, await add_chat_users(self._redis, chat_id, {user_id}))
        return entry[0]

    async def replace_user_text(self, chat_id: str, turn: int, user_chars: int, text: str) -> list[str]:
        """Put ``text`` in place of the user's message in an archived turn (an edit), its reply kept:
        in Chroma, embedded afresh, with the word index; in the outbox while the turn waits there
        for L3. The chat's cached searches, which may quote the turn, are deleted. A turn L3 does not
        hold (forgotten) is left alone.

        Args:
            user_chars: the length of the user's message as archived now.
        Returns:
            The texts replaced: the user's message, and the turn as L3 held it (a search result
            quotes its start); none when the turn was left alone.
        Raises:
            L3's error, when it is unreachable and holds the turn.
        """
        entry_id = archive_id(chat_id, turn)
        async with self._outbox_lock:  # the archiver neither writes nor drops the parked turn meanwhile
            if await self._write_outbox() and (replaced := await self._replace_parked(entry_id, text)) is not None:
                return [replaced]
        old = await self._rewrite_held(chat_id, entry_id, lambda held: with_user_text(held, user_chars, text))
        return [] if old is None else [old[len(USER_PREFIX):][:user_chars], old]

    async def rewrite_turn(self, exchange: Exchange) -> str | None:
        """Put ``exchange`` in place of the turn L3 archived under its id (an imported exchange
        whose message was edited since), as :meth:`replace_user_text` puts an edit. A turn L3 does
        not hold (forgotten) is left alone.

        Returns:
            The content replaced; None when the turn was left alone.
        Raises:
            L3's error, when it is unreachable.
        """
        return await self._rewrite_held(exchange.chat_id, exchange.id, lambda _: exchange.content)

    async def _rewrite_held(self, chat_id: str, entry_id: str, rewritten: Callable[[str], str]) -> str | None:
        """The entry L3 holds under ``entry_id`` given the content ``rewritten(its content)`` (its
        metadata kept) by :meth:`_rewrite`; the chat's cached searches, which may quote it, deleted.
        Returns the content replaced, None when L3 does not hold it."""
        store = await self._l3.episodic()
        found = await self._l3.call(store.get_with_vectors, [chat_id], [entry_id])
        if not found:
            return None
        [(archived, old_vector)] = found
        entry = (entry_id, rewritten(archived["content"]), archived["metadata"])
        await self._rewrite(chat_id, entry, archived, old_vector)
        await self._redis.invalidate_searches_of(chat_id, await users_of_chat(self._redis, chat_id), delete=True)
        return archived["content"]

    async def _rewrite(self, chat_id: str, entry: tuple[str, str, dict], old: dict, old_vector: Sequence[float]) -> None:
        """An entry L3 holds (``old``, with its stored vector), rewritten as ``entry`` (id, content,
        metadata): embedded afresh in Chroma, and in the word index at its old number and time."""
        entry_id, content, metadata = entry
        [vector] = await self._encoder.embed([content], await self._of_every_language(chat_id, [entry_id], [content]))
        await self._l3.call((await self._l3.episodic()).upsert, chat_id, [entry], [vector])
        await (await self._redis.lexical_index()).replace(
            chat_id, IndexEntry(entry_id, content, vector, old["timestamp"]), old["content"], old_vector)

    # ---- a chat's languages --------------------------------------------------------------

    async def _of_every_language(self, chat_id: str, ids: list[str], contents: list[str]) -> bool:
        """Whether the chat's entries (these ids, with these contents, about to be written) get
        e5's block: once it holds, or was asked in, another language than English
        (:func:`of_every_language`). The entries that make it so mark it (and its English lines
        are filled)."""
        index = await self._redis.entry_index()
        if not index.tells_english_apart:
            return True
        every, _ = await index.languages(chat_id)
        if every:
            return True
        latin, other_script = other_languages(contents)
        if not latin and not other_script:
            return False
        held = await index.held_as_english(chat_id) | {ids[place] for place in latin}  # an entry rewritten counts once
        if of_every_language(len(held), other_script):
            # The archive's encoder recorded first: a fresh archive holding a chat's mark and no
            # record would read as one of MiniLM's vectors.
            await self._encoder.embeddings()
            await index.hold_every_language(chat_id)
            return True
        return False

    async def _fill_behind(self) -> bool:
        """One :meth:`fill_step`; False also when it failed (L3 unreachable: the next wake-up tries again)."""
        try:
            return await self.fill_step() is not None
        except Exception as exc:
            if is_redis_failure(exc):
                raise
            log.warning("e5's block not added to English entries now: %s", exc)
            return False

    async def fill_all(self, progress: Callable[[int], None] | None, stopped: Callable[[], bool] | None) -> int:
        """:meth:`fill_step` until no entry waits, or ``stopped()``; ``progress(entries)`` after each
        batch. Returns how many entries were given the block."""
        filled = 0
        while not (stopped and stopped()) and (step := await self.fill_step(wait=True)) is not None:
            filled += step
            if progress and step:
                progress(step)
        return filled

    async def fill_step(self, wait: bool = False) -> int | None:
        """Give one batch of a chat's bare English entries e5's block (:meth:`memory.encoders.paired.PairedEncoder.fill`:
        a line held as English is laid out as another language's), in Chroma and in the word
        index (the chat held while it is written: a forget of one of them waits; without
        ``wait``, a chat held by a turn is left for next time).

        Returns:
            How many entries were given it; None when no chat waits for it.
        """
        index = await self._redis.entry_index()
        if (waiting := await index.to_fill()) is None:
            return None
        chat_id, start = waiting
        found_ids: list[str] = []
        async with (await self._redis.chat_locks()).hold(chat_id, wait=wait) as alone:
            if not alone:
                return 0  # a turn or a forget has the chat: next time
            ids, next_start = await index.bare_ids(chat_id, start, _FILL_BATCH)
            if ids:
                store, embeddings = await self._l3.episodic(), await self._encoder.embeddings()
                found = await self._l3.call(store.get_with_vectors, [chat_id], ids)
                found_ids = [hit["id"] for hit, _ in found]
                old = np.array([vector for _, vector in found], dtype=np.float32)
                vectors = await self._l3.run_blocking(embeddings.encoder.fill, [hit["content"] for hit, _ in found], old)
                await self._l3.call(store.set_vectors, chat_id, found_ids, vectors)
                await index.fill_vectors(chat_id, [(hit["id"], hit["content"]) for hit, _ in found], vectors, old)
            # Every entry looked at: done, unless more were written bare meanwhile (then again
            # from the start; a pass that found none ends it whatever the count says).
            if next_start == 0 and not (ids and (await index.languages(chat_id))[1]):
                await index.done_filling(chat_id)
            else:
                await index.filled_to(chat_id, next_start)
            if found_ids or next_start == 0:  # its entries' vectors changed: the searches cached read the old ones
                await self._redis.invalidate_searches_of(chat_id, await users_of_chat(self._redis, chat_id))
        return len(found_ids)

    async def _replace_parked(self, entry_id: str, text: str) -> str | None:
        """The user's text of a turn waiting in the outbox, replaced; returns the text replaced,
        None when the turn is not there."""
        redis = await self._redis.client()
        parked = await redis.hget(OUTBOX_KEY, entry_id)
        if parked is None:
            return None
        parked_turn = json.loads(parked)
        await redis.hset(OUTBOX_KEY, entry_id, json.dumps({**parked_turn, "user_text": text}))
        return parked_turn["user_text"]

    async def _write_entries(self, chat_id: str, entries: list[tuple[str, str, dict]], times: list[float]) -> None:
        """Embed the entries once; store them in Chroma, then index their words and vectors."""
        store, index = await self._l3.episodic(), await self._redis.lexical_index()
        contents = [content for _, content, _ in entries]
        every_language = await self._of_every_language(chat_id, [entry_id for entry_id, _, _ in entries], contents)
        vectors = await self._encoder.embed(contents, every_language)
        await self._l3.call(store.upsert, chat_id, entries, vectors)
        # Indexed now, after the reply, rather than caught up by a later search.
        await index.add(chat_id, [IndexEntry(entry_id, content, vector, timestamp) for (entry_id, content, _), vector,
                                  timestamp in zip(entries, vectors, times)])
        if not every_language and (await index.entries.languages(chat_id))[0]:
            # Marked meanwhile (by another writer, or a question): its filling may have passed these.
            await index.entries.hold_every_language(chat_id)

    # ---- the archive, written behind the replies ----------------------------------------

    async def later(self, exchanges: list[Exchange], now: float) -> int:
        """Park the turns in the Redis outbox and wake the archiver, which writes them to L3
        after the reply (embedding and Chroma's write cost tens of ms a turn at 100 000 entries).
        Once this returns the turns are durable; the same ids make every rewrite of them
        harmless. Returns how many entries wait in the outbox."""
        redis = await self._redis.client()
        # No MULTI: one key, and the count is only reported (redis-py's cluster client runs a
        # transaction's every command through a thread of its own).
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hset(OUTBOX_KEY, mapping={ex.id: json.dumps({**asdict(ex), "now": now}) for ex in exchanges})
            pipe.hlen(OUTBOX_KEY)
            _, waiting = await pipe.execute()
        self.wake()
        return waiting

    async def waiting(self, chat_id: str) -> int:
        """How many of the chat's turns wait in the outbox for L3."""
        parked = await (await self._redis.client()).hvals(OUTBOX_KEY)
        return sum(1 for raw in parked if json.loads(raw)["chat_id"] == chat_id)

    def bump_access_later(self, hits: list[Hit], now: float) -> None:
        """Count one more access of each hit: best effort, by the archiver between turns (an
        update is a Chroma write, which stalls the process while it runs)."""
        if hits:
            self._access_bumps.append((hits, now))
            self.wake()

    def wake(self) -> None:
        """Have the outbox written to L3 soon, by this process's archiver (started if needed)."""
        loop = asyncio.get_running_loop()
        if self._archiver is None or self._archiver.done() or self._archiver.get_loop() is not loop:
            self._archive_wanted = asyncio.Event()
            self._archiver = loop.create_task(self._archive_behind(), name="goat-archiver")
            # It stops only on a Redis failure (the outbox lives there): the next turn's wake-up
            # starts another, and the outbox still holds what was not written.
            self._archiver.add_done_callback(_logs_failure("the archiver stopped"))
        self._archive_wanted.set()

    async def _archive_behind(self) -> None:
        retry_in = _ARCHIVE_RETRY_FIRST_S
        # Closing is checked before each wait too: a flush clears the wake-up (what woke it is
        # being written), so a close asked for mid-cycle would otherwise wait out its deadline.
        while not self._closing:
            await self._archive_wanted.wait()
            self._archive_wanted.clear()
            if self._closing:
                return
            await self._between_turns()
            if await self.flush() == 0:
                retry_in = _ARCHIVE_RETRY_FIRST_S
                if await self._fill_behind():
                    self._archive_wanted.set()  # more to fill: again, between turns
                continue
            # L3 unreachable: try again after a while, or at the next turn's wake-up.
            try:
                await asyncio.wait_for(self._archive_wanted.wait(), retry_in)
            except TimeoutError:
                self._archive_wanted.set()
            retry_in = min(2 * retry_in, _ARCHIVE_RETRY_MAX_S)

    @asynccontextmanager
    async def turn_running(self) -> AsyncIterator[None]:
        """Mark a turn of this process as running (the archiver writes between turns)."""
        self._turns_running += 1
        self._no_turn_running.clear()
        try:
            yield
        finally:
            self._turns_running -= 1
            if self._turns_running == 0:
                self._no_turn_running.set()

    async def _between_turns(self) -> None:
        """Until no turn of this process runs, or ``_ARCHIVE_MAX_DELAY_S`` at most (a busy
        process writes anyway rather than let the outbox grow)."""
        try:
            await asyncio.wait_for(self._no_turn_running.wait(), _ARCHIVE_MAX_DELAY_S)
        except TimeoutError:
            pass

    async def flush(self) -> int:
        """Write what the outbox holds to L3 now, oldest first, in batches, then the access
        bumps waiting, and after a forget in this process zero the vector index files' unset
        bytes (``DataFolderErasure.clear_after_forget``); returns how many outbox entries are
        left (L3 unreachable). A process
        that never connected (the LangGraph server) brings the word index up to date after its
        first write (until then, its searches read the index as an older version left it)."""
        async with self._outbox_lock:
            # What woke the archiver is being written now: it need not run again for it.
            self._archive_wanted.clear()
            left = await self._write_outbox()
            await self._write_access_bumps()
            await self._erasure.clear_after_forget()
        await self.migration.bring_index_current()
        return left

    async def write_through(self, deadline: float) -> None:
        """Write the outbox to L3 now, for up to ``deadline`` seconds (the write goes on behind
        after that): one write at a time, which every search meanwhile waits for.

        Raises:
            redis.exceptions.RedisError: Redis, where the outbox lives, failed.
        """
        loop = asyncio.get_running_loop()
        task = self._writing_through
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._writing_through = loop.create_task(self.flush(), name="goat-write-through")
            # It goes on behind the search's deadline (a search that waited to its end raised it too).
            task.add_done_callback(_logs_failure("the archive's write for a search failed"))
        with suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), deadline)

    async def _write_access_bumps(self) -> None:
        bumps, self._access_bumps = self._access_bumps, []
        if not bumps:
            return
        try:
            store = await self._l3.episodic()
            for hits, now in bumps:  # each turn's hits once, with that turn's time
                await self._l3.call(store.bump_access, hits, now)
        except Exception as exc:  # noqa: BLE001 — popularity is a soft signal
            log.warning("access counts not updated: %s", exc)

    async def _write_outbox(self) -> int:
        redis = await self._redis.client()
        parked = await redis.hgetall(OUTBOX_KEY)
        entries = sorted((json.loads(raw) for raw in parked.values()), key=lambda e: (e["now"], e["turn"]))
        for start in range(0, len(entries), _ARCHIVE_BATCH):
            batch = entries[start : start + _ARCHIVE_BATCH]
            try:
                await self.write([Exchange(**{k: v for k, v in e.items() if k != "now"}) for e in batch],
                                 now=max(e["now"] for e in batch))
            except Exception as exc:
                if is_redis_failure(exc):
                    raise
                log.warning("the outbox keeps %d entr(ies): L3 unreachable (%s)", len(entries) - start, exc)
                return len(entries) - start
            await redis.hdel(OUTBOX_KEY, *(archive_id(e["chat_id"], e["turn"]) for e in batch))
        if entries:  # turns the index missed (written by an older version, or while it was dropped)
            await self.indexer.sync_index(sorted({e["chat_id"] for e in entries}))
        return 0

    # ---- closing ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Write what this process queued before it goes; what L3 cannot take stays in the
        outbox.

        The archiver is asked to stop rather than cancelled: a cancellation that lands as an
        awaited call completes can be swallowed (``wait_for``, redis-py), leaving it waiting."""
        archiver, self._archiver = self._archiver, None
        writing, self._writing_through = self._writing_through, None
        if archiver is not None or writing is not None:
            self._closing = True
            self._archive_wanted.set()
            if writers := {task for task in (archiver, writing) if task is not None and not task.done()}:
                _, running = await asyncio.wait(writers, timeout=_ARCHIVE_SETTLE_S)
                for task in running:  # stuck in a call to L3
                    task.cancel()
            self._closing = False  # a later turn (the services reopen on use) starts a new archiver
            try:
                await asyncio.wait_for(self.flush(), _ARCHIVE_SETTLE_S)
            except Exception as exc:  # noqa: BLE001 — the outbox keeps the turns for the next start
                log.warning("the archive did not settle before closing (%s: %s); the outbox keeps it",
                            type(exc).__name__, exc)
