"""L3's word index in Redis (BM25): the words of each chat's entries, numbered by its entry
index (:mod:`memory.stores.entry_index`), which this index writes as it indexes entries.

Chroma in embedded mode cannot rank by words: its hybrid Search API (sparse vectors, RRF)
raises ``NotImplementedError`` locally and ``where_document`` only filters by substring. So
the words of every L3 entry are indexed here, in Redis beside L2: shared by every worker,
kept across restarts, written incrementally (never rebuilt from Chroma, which reads a
100 000-entry chat in 6-10 s), and searched in three round trips.

Per chat, under the entry index's hash tag (one cluster slot per chat):

- ``…:t:<term>``: the term's postings, fixed-size records (entry number, count in the entry)
  appended as entries are indexed;
- in the entry index's ``…:meta``: ``turns``: archived turns indexed so far, ``layout``: 2 once
  the chat's index holds times and vectors (older ones hold words only), ``words``: how its
  words were folded.

Structural keys (``ticket-000250``) are looked up through the word postings too: the entries
holding every word of the key, verified by the caller against the content (Chroma's
``$contains`` scans every document of every chat: ~90 ms at 100 000 entries).

Scoring is BM25 with k1 = 1.2 and no length normalisation (b = 0: archived turns are of
similar length, and it spares storing and reading lengths); idf = ln(1 + (N − df + ½)/(df + ½)).
A word found in more than a share of the chat's entries (``max_df_share``) is skipped: too common to
point at any entry, and its postings are the longest to read.

Words become terms by script and language (:class:`memory.words.Words`); the chat's index
records how its words were folded (``meta`` ``words``, e.g. "auto-1"); one folded otherwise is
indexed afresh.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from redis.asyncio import Redis

from memory.stores.entry_index import EntryIndex, IndexEntry
from memory.words import NO_STEMMER, Words

K1 = 1.2
LAYOUT = 2  # words, times and vectors (1: words only, before times and vectors were indexed)
_SCHEME_FIELDS = ["layout", "words", "allocated"]  # of a chat's index meta: is it of this scheme?
POSTING = np.dtype([("entry", "<u4"), ("count", "u1")])
_MAX_COUNT = 255  # a term's count in one entry saturates here (one byte per posting)

# A search's reads in one round trip. KEYS: id → number hash, meta, then one postings key per
# term. ARGV: the share of the chat's entries above which a term is too common to read.
# Returns the chat's entry count, its allocated numbers, then each term's postings (false when
# the term is absent or too common).
_READ_POSTINGS = """
local entries = redis.call('HLEN', KEYS[1])
local most = math.max(1, tonumber(ARGV[1]) * entries)
local found = {entries, redis.call('HGET', KEYS[2], 'allocated') or 0}
for i = 3, #KEYS do
  local frequency = redis.call('STRLEN', KEYS[i]) / %d
  found[#found + 1] = frequency > 0 and frequency <= most and redis.call('GET', KEYS[i])
end
return found
"""

# Moves the chat's "turns indexed" mark over the given turns (ascending) as long as they follow
# it without a gap. KEYS: meta. ARGV: turn numbers.
_ADVANCE_TURNS = """
local mark = tonumber(redis.call('HGET', KEYS[1], 'turns') or 0)
for i = 1, #ARGV do
  local turn = tonumber(ARGV[i])
  if turn == mark + 1 then mark = turn end
end
redis.call('HSET', KEYS[1], 'turns', mark)
return mark
"""

# Takes an entry's record out of term postings (a term's postings hold one record per entry).
# KEYS: the terms' postings keys. ARGV: the entry number.
_DROP_POSTINGS = """
local size, number = %d, tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  local postings = redis.call('GET', key) or ''
  for at = 1, #postings, size do
    if struct.unpack('<I4', postings, at) == number then
      local kept = string.sub(postings, 1, at - 1) .. string.sub(postings, at + size)
      if #kept == 0 then redis.call('DEL', key) else redis.call('SET', key, kept) end
      break
    end
  end
end
return 1
"""


def bm25_weights(document_frequencies: np.ndarray, entries: int) -> np.ndarray:
    """Robertson–Spärck Jones idf (smoothed to stay positive) of terms found in so many entries."""
    df = document_frequencies.astype(np.float64)
    return np.log1p((entries - df + 0.5) / (df + 0.5))


def term_saturation(counts: np.ndarray) -> np.ndarray:
    """BM25's tf part without length normalisation: tf·(k1 + 1)/(tf + k1)."""
    tf = counts.astype(np.float32)
    return tf * np.float32(K1 + 1) / (tf + np.float32(K1))


class LexicalIndex:
    def __init__(self, redis: Redis, prefix: str = "goat", words: Words | None = None, dimensions: int = 384,
                 english_block: int = 0) -> None:
        """``dimensions``: the length of the encoder's vectors, which the entry index keeps (384:
        MiniLM's or e5-small's alone); ``english_block``: the leading values only English passages
        have (the encoder's; they are counted apart)."""
        self._redis = redis
        self.words = words or Words()
        self.entries = EntryIndex(redis, prefix, dimensions, english_block)  # what the postings number
        self._read_postings = redis.register_script(_READ_POSTINGS % POSTING.itemsize)
        self._advance_turns = redis.register_script(_ADVANCE_TURNS)
        self._drop_postings = redis.register_script(_DROP_POSTINGS % POSTING.itemsize)

    # ---- writes ------------------------------------------------------------------

    async def add(self, chat_id: str, entries: Sequence[IndexEntry | tuple]) -> int:
        """Index entries of a chat (``IndexEntry`` or its tuple): their words, and their ids,
        times and vectors in the entry index; those already indexed are skipped.

        Safe against concurrent adds of the same entries (by other workers): see
        :meth:`EntryIndex.claim`. Returns how many entries were new.
        """
        mine = await self.entries.claim(chat_id, [IndexEntry(*entry) for entry in entries],
                                        {"layout": LAYOUT, "words": self.words.stemmer})
        if not mine:
            return 0
        vectors = np.array([entry.vector for entry, _ in mine], dtype=np.float64)
        async with self._redis.pipeline(transaction=False) as pipe:
            self.entries.write(pipe, chat_id, mine, vectors)
            for term, records in self._postings(mine).items():
                pipe.append(self._term_key(chat_id, term), records)
            await pipe.execute()
        await self.entries.add_to_sum(chat_id, vectors.sum(axis=0), len(mine), *self.entries.kinds(vectors))
        return len(mine)

    async def replace(self, chat_id: str, entry: IndexEntry, old_content: str, old_vector: Sequence[float]) -> bool:
        """Index an entry's new content and vector in place of its old ones (an edited turn): its
        words' postings, its vector and the chat's sum; its number and time stay. False when the
        entry is not indexed (nothing is changed here)."""
        number = await self._drop_words(chat_id, entry.id, old_content)
        if number is None:
            return False
        vector = np.asarray(entry.vector, dtype=np.float64)
        async with self._redis.pipeline(transaction=False) as pipe:
            self.entries.write_vector(pipe, chat_id, number, vector)
            self.entries.write_held(pipe, chat_id, [(entry.id, entry.content)], vector[None])
            for term, records in self._postings([(entry, number)]).items():
                pipe.append(self._term_key(chat_id, term), records)
            await pipe.execute()
        old_vector = np.asarray(old_vector, dtype=np.float64)
        kinds = np.subtract(self.entries.kinds(vector[None]), self.entries.kinds(old_vector[None])).tolist()
        await self.entries.add_to_sum(chat_id, vector - old_vector, 0, *kinds)
        return True

    async def remove(self, chat_id: str, entry_id: str, content: str, vector: Sequence[float]) -> bool:
        """Take an entry out of the chat's index (a deleted memory): its words' postings, its ids,
        its time, and its vector from the chat's sum. Its number is not handed out again. The
        caller holds the chat (a second removal of the entry meanwhile would subtract it twice).

        Args:
            content, vector: the entry's, as indexed.
        Returns:
            False when the entry is not indexed.
        """
        number = await self._drop_words(chat_id, entry_id, content)
        if number is None:
            return False
        await self.entries.remove(chat_id, entry_id, number, vector)
        return True

    async def _drop_words(self, chat_id: str, entry_id: str, content: str) -> int | None:
        """Take an entry's records out of its words' postings (``content``: the entry's, as
        indexed); returns its number, None when it is not indexed."""
        number = await self.entries.number(chat_id, entry_id)
        if number is None:
            return None
        if terms_held := list(dict.fromkeys(self.words(content))):
            await self._drop_postings(keys=[self._term_key(chat_id, term) for term in terms_held], args=[number])
        return number

    def _postings(self, numbered: Sequence[tuple[IndexEntry, int]]) -> dict[str, bytes]:
        """The postings records of these entries (each with its number), by term."""
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for entry, number in numbered:
            for term, count in Counter(self.words(entry.content)).items():
                postings[term].append((number, min(count, _MAX_COUNT)))
        return {term: np.array(records, dtype=POSTING).tobytes() for term, records in postings.items()}

    async def indexed_turns(self, chat_id: str) -> int:
        """Archived turns 1..n of the chat are indexed (as far as they were in L3 when indexed);
        0 when its words were folded otherwise (:meth:`outdated`)."""
        turns, *scheme = await self._redis.hmget(self.entries.key(chat_id, "meta"), ["turns", *_SCHEME_FIELDS])
        return 0 if _outdated(*scheme, self.words) else int(turns or 0)

    async def outdated(self, chat_id: str) -> bool:
        """Whether the chat's index is of another scheme than this one: words folded otherwise
        (another stemmer, or none: an index older than stemming), searched by words, would be
        missed; an index older than times and vectors cannot rank a time range or a word hit by
        meaning. Either is indexed afresh."""
        return _outdated(*await self._redis.hmget(self.entries.key(chat_id, "meta"), _SCHEME_FIELDS), self.words)

    @property
    def scheme(self) -> str:
        """This index's scheme (its layout and how it folds words), as a migration records it."""
        return f"{LAYOUT}/{self.words.stemmer}"

    async def advance_turns_indexed(self, chat_id: str, turns: Sequence[int]) -> int:
        """Count these just-indexed turns as indexed, as far as they continue the turns indexed
        so far without a gap (a gap is left to :meth:`IndexSync.sync_index`; a mark reset by
        :meth:`EntryIndex.drop` meanwhile is not moved past). Returns the mark."""
        return int(await self._advance_turns(keys=[self.entries.key(chat_id, "meta")], args=sorted(turns)))

    # ---- reads -------------------------------------------------------------------

    async def holding_every_word(
        self, chat_id: str, text: str, limit: int, among: np.ndarray | None = None
    ) -> np.ndarray:
        """Numbers of the chat's newest ``limit`` entries holding every word of ``text``,
        however common; with ``among``, only of those entry numbers."""
        asked = self.words.query(text)
        wanted = asked.lookups
        if not wanted or limit <= 0:
            return np.zeros(0, dtype=np.int64)
        found = dict(zip(wanted, await self._redis.mget([self._term_key(chat_id, term) for term in wanted])))
        raw_postings = [found[term] for term in asked.choose({term for term, raw in found.items() if raw})]
        if not all(raw_postings):
            return np.zeros(0, dtype=np.int64)
        common = np.frombuffer(raw_postings[0], dtype=POSTING)["entry"]
        for raw in raw_postings[1:]:
            common = np.intersect1d(common, np.frombuffer(raw, dtype=POSTING)["entry"])
        if among is not None:
            common = np.intersect1d(common, among)
        return np.sort(common.astype(np.int64))[::-1][:limit]

    async def search(
        self, chat_id: str, query: str, k: int, max_df_share: float = 0.1
    ) -> list[tuple[str, float, np.ndarray]]:
        """The chat's ``k`` best entries for ``query`` by BM25, best first, as (id, score > 0,
        vector). Words found in more than ``max_df_share`` of the chat's entries (at least one)
        are skipped. The vectors (float32) are read in the same round trip as the ids."""
        asked = self.words.query(query)
        wanted = asked.lookups
        if not wanted or k <= 0:
            return []
        entries, allocated, *raw_postings = await self._read_postings(
            keys=[self.entries.key(chat_id, "number"), self.entries.key(chat_id, "meta"),
                  *(self._term_key(chat_id, term) for term in wanted)],
            args=[max_df_share],
        )
        found = dict(zip(wanted, raw_postings))
        chosen = [found[term] for term in asked.choose({term for term, raw in found.items() if raw}) if found[term]]
        if not chosen:
            return []
        df = np.array([len(raw) // POSTING.itemsize for raw in chosen], dtype=np.int64)
        scores = np.zeros(int(allocated), dtype=np.float32)
        for raw, weight in zip(chosen, bm25_weights(df, int(entries))):
            records = np.frombuffer(raw, dtype=POSTING)
            scores[records["entry"]] += np.float32(weight) * term_saturation(records["count"])
        best = [int(n) for n in _top(scores, k)]
        if not best:
            return []
        ids, vectors = await self.entries.ids_and_vectors(chat_id, best)
        return [(entry_id, float(scores[n]), vector)
                for n, entry_id, vector in zip(best, ids, vectors) if entry_id is not None]

    # ---- keys --------------------------------------------------------------------

    def _term_key(self, chat_id: str, term: str) -> str:
        return self.entries.key(chat_id, f"t:{term}")


def _outdated(layout: bytes | None, words: bytes | None, allocated: bytes | None, current: Words) -> bool:
    return allocated is not None and (
        layout is None or int(layout) != LAYOUT or (words.decode() if words else NO_STEMMER) != current.stemmer)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the k highest positive scores, highest first (ties: lower index first)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return positive[np.lexsort((positive, -scores[positive]))]
