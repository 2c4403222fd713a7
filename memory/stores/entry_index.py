"""L3's own index of each chat's entries in Redis: their numbers and ids, their times, their
vectors, and the chat's centroid.

Beside L2: shared by every worker, kept across restarts, written incrementally (never rebuilt
from Chroma, which reads a 100 000-entry chat in 6-10 s). The word index
(:mod:`memory.stores.lexical`) numbers its postings by these entries and keeps them under the
same hash tag. Per chat, under one hash tag (a digest of the chat id: one cluster slot per chat):

- ``…:number`` entry id → entry number, ``…:id`` entry number → entry id;
- ``…:sum``: the sum of the entries' vectors, ``…:meta`` {``allocated``: entry numbers
  handed out, ``vectors``: vectors summed, ``english``: those of English passages among them
  (a paired encoder's, which tells them apart), ``bare``: English passages without their e5
  block yet, ``every_language``: 1 once the chat holds or was asked in another language
  (its English passages then get e5's block); the word index keeps its own fields there};
  ``…:held``: the entries held as English, Latin-script lines of another language stored with
  MiniLM's block (:func:`memory.encoders.paired.of_every_language`: a second one marks the chat);
  A query's mean distance to the chat's entries (of each space it is compared in) follows
  from them exactly (``2 − 2·q·sum / count``), which is the background the gap filter
  measures relevance against;
- ``…:time``: entry number → the entry's timestamp (a sorted set), and ``…:vectors``: every
  entry's vector as float16 (:mod:`memory.stores.vector_strings`). Together they rank the
  entries of a time range exactly by meaning without Chroma's metadata filter, which scans the
  whole database (110-180 ms per query at 100 000 entries, against ~3 ms for 1 000 vectors here).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from redis.asyncio import Redis

from memory.encoders.encoder import bare_passages, english_passages
from memory.encoders.paired import latin_of_another_language
from memory.stores.entry_index_scripts import ADD_TO_SUM
from memory.stores.vector_strings import ROWS_PER_KEY, VECTOR, VectorStrings

_SCAN_ROWS = 2048  # vectors read per call looking for bare ones (4.7 MB of a paired encoder's)


class Centroid(NamedTuple):
    """What a query's mean distance to some chats' entries is computed from."""

    total: np.ndarray  # the entries' vectors summed (float64)
    count: int  # the vectors summed
    english: int  # of them, English passages (a paired encoder's)
    bare: int = 0  # of those, passages without their e5 block yet
    every_language: bool = False  # some of the chats hold, or were asked in, another language than English

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.count


class IndexEntry(NamedTuple):
    id: str
    content: str
    vector: Sequence[float]
    timestamp: float = 0.0  # unix seconds


class EntryIndex:
    def __init__(self, redis: Redis, prefix: str = "goat", dimensions: int = 384, english_block: int = 0,
                 rows_per_key: int = ROWS_PER_KEY) -> None:
        """``dimensions``: the length of the encoder's vectors, which the index keeps (384: MiniLM's
        or e5-small's alone); ``english_block``: the leading values only English passages have
        (the encoder's; they are counted apart); ``rows_per_key``: vectors a string holds."""
        self._redis = redis
        self._prefix = prefix
        self._english_block = english_block
        self._vectors = VectorStrings(redis, self.key, dimensions, rows_per_key)
        self._every_language_key = f"{prefix}:lex-every-language"  # the chats of every language
        self._to_fill_key = f"{prefix}:lex-to-fill"  # of them, those with English entries to fill
        self._fill_cursor_key = f"{prefix}:lex-fill-cursor"  # chat -> the entry number filled up to
        self._add_to_sum = redis.register_script(ADD_TO_SUM)

    # ---- writes ------------------------------------------------------------------

    async def claim(self, chat_id: str, given: Sequence[IndexEntry],
                    scheme: Mapping[str, str | int]) -> list[tuple[IndexEntry, int]]:
        """Number those of these entries not indexed yet; those already indexed are skipped.

        Safe against concurrent claims of the same entries (by other workers): an entry number
        is claimed with HSETNX before anything else of the entry is written. (A process killed
        between the claim and the writes leaves those entries out of the index; they are still
        found by meaning.)

        Args:
            scheme: fields the chat's meta takes with its first entries (the scheme its index is of).
        Returns:
            The entries this call claimed, each with its number.
        """
        missing = set(await self.missing(chat_id, [entry.id for entry in given]))
        fresh = list({entry.id: entry for entry in given if entry.id in missing}.values())
        if not fresh:
            return []
        meta = self.key(chat_id, "meta")
        end = await self._redis.hincrby(meta, "allocated", len(fresh))
        numbers = range(end - len(fresh), end)
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry, number in zip(fresh, numbers):
                pipe.hsetnx(self.key(chat_id, "number"), entry.id, number)
            if end == len(fresh):  # the chat's first entries: its index has every part
                for field, value in scheme.items():
                    pipe.hsetnx(meta, field, value)
            claimed = await pipe.execute()
        return [(entry, number) for entry, number, won in zip(fresh, numbers, claimed) if won]

    def write(self, pipe: Any, chat_id: str, numbered: Sequence[tuple[IndexEntry, int]], vectors: np.ndarray) -> None:
        """Queue on ``pipe`` (run by the caller) the ids, times and vectors of entries it claimed
        (:meth:`claim`), ``vectors`` one row per entry; the chat's sum is :meth:`add_to_sum`'s."""
        pipe.hset(self.key(chat_id, "id"), mapping={number: entry.id for entry, number in numbered})
        pipe.zadd(self.key(chat_id, "time"), {number: entry.timestamp for entry, number in numbered})
        for (_, number), vector in zip(numbered, vectors.astype(VECTOR)):
            self.write_vector(pipe, chat_id, number, vector)
        self.write_held(pipe, chat_id, [(entry.id, entry.content) for entry, _ in numbered], vectors)

    def write_held(self, pipe: Any, chat_id: str, entries: Sequence[tuple[str, str]], vectors: np.ndarray) -> None:
        """Queue on ``pipe`` (run by the caller) which of these entries (id, content), with these
        vectors, are held as English (a Latin-script line of another language with MiniLM's
        block) and which are not."""
        if not self._english_block or not len(entries):
            return
        english = english_passages(np.asarray(vectors), self._english_block)
        held = [latin_of_another_language(content) and kind for (_, content), kind in zip(entries, english)]
        if ids := [entry_id for (entry_id, _), h in zip(entries, held) if h]:
            pipe.sadd(self.key(chat_id, "held"), *ids)
        if ids := [entry_id for (entry_id, _), h in zip(entries, held) if not h]:
            pipe.srem(self.key(chat_id, "held"), *ids)

    def write_vector(self, pipe: Any, chat_id: str, number: int, vector: np.ndarray) -> None:
        """Queue on ``pipe`` (run by the caller) the entry's vector, in place of the one it had."""
        self._vectors.write(pipe, chat_id, number, vector)

    async def add_to_sum(self, chat_id: str, total: np.ndarray, count: int, english: int, bare: int) -> None:
        """Add vectors summed (``total``) to the chat's sum, and their numbers to its counts: how
        many, how many are English passages, how many of those are bare (negative: taken out)."""
        await self._add_to_sum(keys=[self.key(chat_id, "sum"), self.key(chat_id, "meta")],
                               args=[np.asarray(total).astype("<f8").tobytes(), count, english, bare])

    async def remove(self, chat_id: str, entry_id: str, number: int, vector: Sequence[float]) -> None:
        """Take the entry of this number out (its words are the word index's to take out): its
        ids, its time, and its vector (as indexed) from the chat's sum. The number is not handed
        out again."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hdel(self.key(chat_id, "number"), entry_id)
            pipe.hdel(self.key(chat_id, "id"), number)
            pipe.zrem(self.key(chat_id, "time"), number)
            pipe.srem(self.key(chat_id, "held"), entry_id)
            await pipe.execute()
        vector = np.asarray(vector, dtype=np.float64)
        await self.add_to_sum(chat_id, -vector, -1, *(-n for n in self.kinds(vector[None])))

    async def set_vectors(self, chat_id: str, entries: Sequence[tuple[str, str]], vectors: np.ndarray) -> np.ndarray:
        """Replace the vectors of these entries (id, content: a re-embedding); their words and
        times stay.
        The chat's sum is the caller's to set once all its entries are replaced (:meth:`set_sum`,
        with :meth:`kinds` of the vectors summed).

        Returns:
            Which of ``ids`` are indexed (a boolean per id): those whose vectors the sum holds.
        """
        ids = [entry_id for entry_id, _ in entries]
        numbers = await self._redis.hmget(self.key(chat_id, "number"), ids) if ids else []
        indexed = np.array([number is not None for number in numbers], dtype=bool)
        async with self._redis.pipeline(transaction=False) as pipe:
            for number, vector in zip(numbers, np.asarray(vectors).astype(VECTOR)):
                if number is not None:
                    self.write_vector(pipe, chat_id, int(number), vector)
            if indexed.any():
                self.write_held(pipe, chat_id, [entry for entry, i in zip(entries, indexed) if i],
                                np.asarray(vectors)[indexed])
            await pipe.execute()
        return indexed

    async def clear_vectors(self, chat_id: str) -> None:
        """Forget the chat's vectors and their sum (before :meth:`set_vectors` writes ones of
        another length); its words and times stay."""
        allocated = int(await self._redis.hget(self.key(chat_id, "meta"), "allocated") or 0)
        async with self._redis.pipeline(transaction=True) as pipe:  # one hash tag: one slot
            # As a command of its own: a cluster's pipeline.unlink splits keys by slot outside the pipeline.
            pipe.execute_command("UNLINK", *self._vectors.keys(chat_id, allocated), self.key(chat_id, "sum"),
                                 self.key(chat_id, "held"))
            pipe.hdel(self.key(chat_id, "meta"), "vectors", "english", "bare")
            await pipe.execute()

    async def set_sum(self, chat_id: str, total: np.ndarray, count: int, english: int, bare: int) -> None:
        """Set the chat's sum of vectors, their number, how many are English passages and how
        many of those are bare (after :meth:`set_vectors` of all its entries)."""
        async with self._redis.pipeline(transaction=True) as pipe:  # one hash tag: one slot
            pipe.set(self.key(chat_id, "sum"), np.asarray(total, dtype="<f8").tobytes())
            pipe.hset(self.key(chat_id, "meta"), mapping={"vectors": count, "english": english, "bare": bare})
            await pipe.execute()

    async def fill_vectors(self, chat_id: str, entries: Sequence[tuple[str, str]], vectors: np.ndarray,
                           old: np.ndarray) -> None:
        """Put the vectors of these entries (id, content), filled with e5's block, in place of
        their bare ones (``old``), in the index and the chat's sum. Entries not indexed are left alone."""
        indexed = await self.set_vectors(chat_id, entries, vectors)
        if not indexed.any():
            return
        vectors, old = np.asarray(vectors, dtype=np.float64)[indexed], np.asarray(old, dtype=np.float64)[indexed]
        await self.add_to_sum(chat_id, (vectors - old).sum(axis=0), 0,
                              *np.subtract(self.kinds(vectors), self.kinds(old)).tolist())

    async def languages(self, chat_id: str) -> tuple[bool, int]:
        """Whether the chat is one of every language (it holds, or was asked in, a language other
        than English), and how many of its English passages lack e5's block."""
        held, english, marked, bare = (int(n or 0) for n in await self._redis.hmget(
            self.key(chat_id, "meta"), ["vectors", "english", "every_language", "bare"]))
        return _of_every_language(marked, held, english), bare

    async def hold_every_language(self, chat_id: str) -> bool:
        """Mark the chat as one of every language: its English entries without e5's block wait
        for it (:meth:`to_fill`). True if it was not marked yet."""
        async with self._redis.pipeline(transaction=False) as pipe:  # three slots in a cluster
            pipe.hsetnx(self.key(chat_id, "meta"), "every_language", 1)
            pipe.sadd(self._every_language_key, chat_id)
            pipe.sadd(self._to_fill_key, chat_id)
            marked, *_ = await pipe.execute()
        return bool(marked)

    async def held_as_english(self, chat_id: str) -> set[str]:
        """The ids of the chat's entries held as English (:meth:`write_held`)."""
        return {entry_id.decode() for entry_id in await self._redis.smembers(self.key(chat_id, "held"))}

    async def any_every_language(self) -> bool:
        """Whether any chat is one of every language (a process then loads e5 as it starts)."""
        return bool(await self._redis.scard(self._every_language_key))

    async def to_fill(self) -> tuple[str, int] | None:
        """A chat whose English entries wait for e5's block, and the entry number its filling
        has got to; None when none waits."""
        chat = await self._redis.srandmember(self._to_fill_key)
        if chat is None:
            return None
        return chat.decode(), int(await self._redis.hget(self._fill_cursor_key, chat) or 0)

    async def filled_to(self, chat_id: str, number: int) -> None:
        """Where the chat's filling has got to (an entry number)."""
        await self._redis.hset(self._fill_cursor_key, chat_id, number)

    async def done_filling(self, chat_id: str) -> None:
        """The chat's English entries all have e5's block: it waits no more."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.srem(self._to_fill_key, chat_id)
            pipe.hdel(self._fill_cursor_key, chat_id)
            await pipe.execute()

    @property
    def tells_english_apart(self) -> bool:
        """Whether the encoder lays English passages out apart (a paired encoder)."""
        return bool(self._english_block)

    def meets_every_language(self, centroid: Centroid | None) -> bool:
        """Whether questions to the chats of ``centroid`` meet lines in other languages than English
        (the encoder tells English apart, and the chats hold or were asked in another language)."""
        return self.tells_english_apart and centroid is not None and centroid.every_language

    def kinds(self, vectors: np.ndarray) -> tuple[int, int]:
        """How many of these vectors are English passages, and how many of those are bare (both
        0 for an encoder that tells none apart)."""
        return (int(english_passages(vectors, self._english_block).sum()),
                int(bare_passages(vectors, self._english_block).sum()))

    async def drop(self, chat_id: str) -> None:
        """Forget the chat's index (all its keys, its words' postings with them)."""
        keys = [key async for key in self._redis.scan_iter(match=self.key(chat_id, "*"), count=1000)]
        for start in range(0, len(keys), 1000):
            await self._redis.unlink(*keys[start : start + 1000])
        await self._redis.srem(self._every_language_key, chat_id)
        await self.done_filling(chat_id)

    # ---- reads -------------------------------------------------------------------

    async def missing(self, chat_id: str, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` not indexed yet, in order, without repeats."""
        known = await self._redis.hmget(self.key(chat_id, "number"), list(ids)) if ids else []
        return list(dict.fromkeys(entry_id for entry_id, number in zip(ids, known) if number is None))

    async def number(self, chat_id: str, entry_id: str) -> int | None:
        """The entry's number; None when it is not indexed."""
        number = await self._redis.hget(self.key(chat_id, "number"), entry_id)
        return None if number is None else int(number)

    async def centroid(self, chat_ids: Sequence[str]) -> Centroid | None:
        """The chats' indexed entries' vectors summed and counted; None when none is indexed."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for chat_id in chat_ids:
                pipe.get(self.key(chat_id, "sum"))
                pipe.hmget(self.key(chat_id, "meta"), ["vectors", "english", "bare", "every_language"])
            found = await pipe.execute()
        sums = [np.frombuffer(raw, dtype="<f8") for raw in found[0::2] if raw]
        count, english, bare, marked = (sum(int(n or 0) for n in column) for column in zip(*found[1::2]))
        if not sums or count == 0:
            return None
        return Centroid(np.sum(sums, axis=0), count, english, bare, _of_every_language(marked, count, english))

    async def between(self, chat_id: str, after: float | None, before: float | None,
                      limit: int | None = None) -> np.ndarray:
        """Numbers of the chat's entries timed within [after, before] (unix seconds, inclusive):
        the first ``limit`` of them by time (None: all)."""
        found = await self._redis.zrangebyscore(
            self.key(chat_id, "time"),
            "-inf" if after is None else after,
            "+inf" if before is None else before,
            **({} if limit is None else {"start": 0, "num": limit}),
        )
        return np.array(found, dtype=np.int64)

    async def vectors(
        self, chat_id: str, numbers: Sequence[int] | np.ndarray, columns: np.ndarray | None = None
    ) -> np.ndarray:
        """The entries' vectors (float32, one row per number; zeros where none was written). With
        ``columns`` (a mask of the values wanted), only those are read out and the others are
        zeros: widening the stored half-precision values is most of a long time range's cost."""
        numbers = np.asarray(numbers, dtype=np.int64)
        if len(numbers) == 0:
            return np.zeros((0, self._vectors.dimensions), dtype=np.float32)
        low, high = int(numbers.min()), int(numbers.max())
        if high - low + 1 <= 2 * len(numbers):
            # Mostly consecutive (entries of a period were indexed together): one slice.
            stored, wanted = await self._vectors.span(chat_id, low, high), numbers - low
        else:
            (_, stored), wanted = await self._vectors.gather(chat_id, numbers), np.arange(len(numbers))
        if columns is None:
            return stored[wanted].astype(np.float32)
        read = np.zeros((len(wanted), self._vectors.dimensions), dtype=np.float32)
        for start, stop in _runs(columns):
            read[:, start:stop] = stored[wanted, start:stop]
        return read

    async def times(self, chat_id: str, ids: Sequence[str]) -> list[float | None]:
        """Each entry's timestamp, None for an entry not indexed."""
        numbers = await self._redis.hmget(self.key(chat_id, "number"), list(ids)) if ids else []
        known = [number for number in numbers if number is not None]
        found = iter(await self._redis.zmscore(self.key(chat_id, "time"), known) if known else [])
        return [None if number is None else next(found) for number in numbers]

    async def newest(self, chat_id: str, limit: int, cursor: str | None = None) -> tuple[list[int], str | None]:
        """A page of the chat's entry numbers, newest first (entries of one time in the order
        Redis keeps them: by number as text, descending), and the cursor of the next page.

        Args:
            limit: numbers in the page, at most.
            cursor: where the page starts: a cursor an earlier page returned (None: the newest).
        Returns:
            The numbers, and the next page's cursor (None when this page is the last).
        Raises:
            ValueError: the cursor is not one this method returned.
        """
        key = self.key(chat_id, "time")
        if cursor is None:
            found = await self._redis.zrevrangebyscore(key, "+inf", "-inf", start=0, num=limit + 1, withscores=True)
        else:
            moment, last = _parse_cursor(cursor)
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrangebyscore(key, moment, moment)  # the cursor's time: a few entries at most
                pipe.zrevrangebyscore(key, f"({moment!r}", "-inf", start=0, num=limit + 1, withscores=True)
                same_time, older = await pipe.execute()
            # Keyed by (time, number as text), not by position: entries written or deleted
            # meanwhile shift no page onto another.
            found = [(member, moment) for member in sorted(same_time, reverse=True) if member < last] + older
        page = found[:limit]
        following = f"{page[-1][1]!r}/{page[-1][0].decode()}" if len(found) > limit else None
        return [int(member) for member, _ in page], following

    async def bare_ids(self, chat_id: str, start: int, limit: int) -> tuple[list[str], int]:
        """Ids of the chat's entries without e5's block (:func:`bare_passages`), by entry number
        from ``start``: at most ``limit``, and the number to go on from (0 once every number was
        looked at)."""
        allocated = int(await self._redis.hget(self.key(chat_id, "meta"), "allocated") or 0)
        found: list[int] = []
        while start < allocated and len(found) < limit:
            numbers = np.arange(start, min(start + _SCAN_ROWS, allocated))
            bare = numbers[bare_passages(await self.vectors(chat_id, numbers), self._english_block)]
            found += bare[: limit - len(found)].tolist()
            start = found[-1] + 1 if len(found) == limit else int(numbers[-1]) + 1
        ids = [entry_id for entry_id in await self.ids(chat_id, found) if entry_id is not None]
        return ids, start if start < allocated else 0

    async def ids(self, chat_id: str, numbers: Sequence[int]) -> list[str | None]:
        if len(numbers) == 0:
            return []
        found = await self._redis.hmget(self.key(chat_id, "id"), [int(n) for n in numbers])
        return [entry_id.decode() if entry_id is not None else None for entry_id in found]

    async def ids_and_vectors(self, chat_id: str, numbers: Sequence[int]) -> tuple[list[str | None], np.ndarray]:
        """The entries' ids (None for a number no entry holds) and vectors (float32, one row per
        number), read in one round trip."""
        ids, vectors = await self._vectors.gather(chat_id, numbers, ids_from=self.key(chat_id, "id"))
        return [entry_id.decode() if entry_id is not None else None for entry_id in ids], vectors.astype(np.float32)

    # ---- keys --------------------------------------------------------------------

    def key(self, chat_id: str, part: str) -> str:
        """The key of a part of the chat's index: every part (the word index's too) carries the
        chat's hash tag, so that one script reads several."""
        tag = hashlib.sha256(chat_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        return f"{self._prefix}:lex:{{{tag}}}:{part}"


def _of_every_language(marked: int, held: int, english: int) -> bool:
    """Whether chats are of every language: marked so, or holding more passages than English ones."""
    return bool(marked) or held > english


def _parse_cursor(cursor: str) -> tuple[float, bytes]:
    """(time, entry number as text) of a cursor of :meth:`EntryIndex.newest`."""
    moment, _, number = cursor.partition("/")
    try:
        value = float(moment)
    except ValueError:
        value = math.nan
    if not (number.isdigit() and math.isfinite(value)):
        raise ValueError(f"cursor {cursor!r} is not one a page of memories gave")
    return value, number.encode()


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The (start, stop) of each run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], np.asarray(mask, dtype=np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))
