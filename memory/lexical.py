"""Lexical search of L3 (BM25 over each chat's entries) and the chat's centroid, kept in Redis.

Chroma in embedded mode cannot rank by words: its hybrid Search API (sparse vectors, RRF)
raises ``NotImplementedError`` locally and ``where_document`` only filters by substring. So
the words of every L3 entry are indexed here, in Redis beside L2: shared by every worker,
kept across restarts, written incrementally (never rebuilt from Chroma, which reads a
100 000-entry chat in 6-10 s), and searched in three round trips.

Per chat, under one hash tag (a digest of the chat id: one cluster slot per chat):

- ``…:t:<term>``: the term's postings, fixed-size records (entry number, count in the entry)
  appended as entries are indexed;
- ``…:number`` entry id → entry number, ``…:id`` entry number → entry id;
- ``…:sum``: the sum of the entries' vectors, ``…:meta`` {``allocated``: entry numbers
  handed out, ``vectors``: vectors summed, ``turns``: archived turns indexed so far}.
  Their ratio is the chat's centroid: a query's mean distance to the chat's entries follows
  from it exactly (``2 − 2·q·centroid`` on unit vectors), which is the background the gap
  filter measures relevance against.

Scoring is BM25 with k1 = 1.2 and no length normalisation (b = 0: archived turns are of
similar length, and it spares storing and reading lengths); idf = ln(1 + (N − df + ½)/(df + ½)).
A word found in more than a share of the chat's entries (``max_df_share``) is skipped: too common to
point at any entry, and its postings are the longest to read.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from redis.asyncio import Redis

K1 = 1.2
POSTING = np.dtype([("entry", "<u4"), ("count", "u1")])
_MAX_COUNT = 255  # a term's count in one entry saturates here (one byte per posting)
_WORD = re.compile(r"\w+")

# Adds vectors to the chat's sum and their number to its count, in one step (a reader never
# sees one without the other). KEYS: sum, meta. ARGV: the vectors' sum as packed little-endian
# doubles, how many vectors.
_ADD_TO_SUM = """
local current = redis.call('GET', KEYS[1])
if current then
  local parts = {}
  for i = 1, #ARGV[1], 8 do
    parts[#parts + 1] = struct.pack('<d', struct.unpack('<d', current, i) + struct.unpack('<d', ARGV[1], i))
  end
  redis.call('SET', KEYS[1], table.concat(parts))
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return redis.call('HINCRBY', KEYS[2], 'vectors', ARGV[2])
"""


def terms(text: str) -> list[str]:
    """Words of ``text``, case-folded and without diacritics ("Când" and "cand" are one word),
    in order, repeats kept."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    return _WORD.findall("".join(c for c in folded if not unicodedata.combining(c)))


def bm25_weights(document_frequencies: np.ndarray, entries: int) -> np.ndarray:
    """Robertson–Spärck Jones idf (smoothed to stay positive) of terms found in so many entries."""
    df = document_frequencies.astype(np.float64)
    return np.log1p((entries - df + 0.5) / (df + 0.5))


def term_saturation(counts: np.ndarray) -> np.ndarray:
    """BM25's tf part without length normalisation: tf·(k1 + 1)/(tf + k1)."""
    tf = counts.astype(np.float32)
    return tf * np.float32(K1 + 1) / (tf + np.float32(K1))


class LexicalIndex:
    def __init__(self, redis: Redis, prefix: str = "goat") -> None:
        self._redis = redis
        self._prefix = prefix
        self._add_to_sum = redis.register_script(_ADD_TO_SUM)

    # ---- writes ------------------------------------------------------------------

    async def add(self, chat_id: str, entries: Sequence[tuple[str, str, Sequence[float]]]) -> int:
        """Index (id, content, vector) entries of a chat; those already indexed are skipped.

        Safe against concurrent adds of the same entries (by other workers): an entry number
        is claimed with HSETNX before anything else of the entry is written. (A process killed
        between the claim and the writes leaves those entries out of the index; they are still
        found by meaning.) Returns how many entries were new.
        """
        missing = set(await self.missing(chat_id, [entry_id for entry_id, _, _ in entries]))
        fresh = list({e[0]: e for e in entries if e[0] in missing}.values())
        if not fresh:
            return 0
        end = await self._redis.hincrby(self._key(chat_id, "meta"), "allocated", len(fresh))
        numbers = range(end - len(fresh), end)
        async with self._redis.pipeline(transaction=False) as pipe:
            for (entry_id, _, _), number in zip(fresh, numbers):
                pipe.hsetnx(self._key(chat_id, "number"), entry_id, number)
            claimed = await pipe.execute()
        mine = [(entry, number) for entry, number, won in zip(fresh, numbers, claimed) if won]
        if not mine:
            return 0
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for (_, content, _), number in mine:
            for term, count in Counter(terms(content)).items():
                postings[term].append((number, min(count, _MAX_COUNT)))
        vector_sum = np.sum([np.asarray(vector, dtype=np.float64) for (_, _, vector), _ in mine], axis=0)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self._key(chat_id, "id"), mapping={number: entry_id for (entry_id, _, _), number in mine})
            for term, records in postings.items():
                pipe.append(self._term_key(chat_id, term), np.array(records, dtype=POSTING).tobytes())
            await pipe.execute()
        await self._add_to_sum(
            keys=[self._key(chat_id, "sum"), self._key(chat_id, "meta")],
            args=[vector_sum.astype("<f8").tobytes(), len(mine)],
        )
        return len(mine)

    async def missing(self, chat_id: str, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` not indexed yet, in order, without repeats."""
        known = await self._redis.hmget(self._key(chat_id, "number"), list(ids)) if ids else []
        return list(dict.fromkeys(entry_id for entry_id, number in zip(ids, known) if number is None))

    async def indexed_turns(self, chat_id: str) -> int:
        """Archived turns 1..n of the chat are indexed (as far as they were in L3 when indexed)."""
        return int(await self._redis.hget(self._key(chat_id, "meta"), "turns") or 0)

    async def mark_turns_indexed(self, chat_id: str, turns: int) -> None:
        await self._redis.hset(self._key(chat_id, "meta"), "turns", turns)

    async def drop(self, chat_id: str) -> None:
        """Forget the chat's index (all its keys)."""
        keys = [key async for key in self._redis.scan_iter(match=self._key(chat_id, "*"), count=1000)]
        for start in range(0, len(keys), 1000):
            await self._redis.unlink(*keys[start : start + 1000])

    # ---- reads -------------------------------------------------------------------

    async def centroid(self, chat_ids: Sequence[str]) -> np.ndarray | None:
        """The mean vector of the chats' indexed entries; None when none is indexed."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for chat_id in chat_ids:
                pipe.get(self._key(chat_id, "sum"))
                pipe.hget(self._key(chat_id, "meta"), "vectors")
            found = await pipe.execute()
        sums = [np.frombuffer(raw, dtype="<f8") for raw in found[0::2] if raw]
        count = sum(int(n or 0) for n in found[1::2])
        if not sums or count == 0:
            return None
        return np.sum(sums, axis=0) / count

    async def search(self, chat_id: str, query: str, k: int, max_df_share: float = 0.1) -> list[tuple[str, float]]:
        """The chat's ``k`` best entries for ``query`` by BM25, best first, as (id, score > 0).
        Words found in more than ``max_df_share`` of the chat's entries (at least one) are skipped."""
        wanted = list(dict.fromkeys(terms(query)))
        if not wanted or k <= 0:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hlen(self._key(chat_id, "number"))
            pipe.hget(self._key(chat_id, "meta"), "allocated")
            for term in wanted:
                pipe.strlen(self._term_key(chat_id, term))
            entries, allocated, *lengths = await pipe.execute()
        df = np.array(lengths, dtype=np.int64) // POSTING.itemsize
        usable = (df > 0) & (df <= max(1.0, max_df_share * entries))
        chosen = [term for term, ok in zip(wanted, usable) if ok]
        if not chosen:
            return []
        raw_postings = await self._redis.mget([self._term_key(chat_id, t) for t in chosen])
        scores = np.zeros(int(allocated or 0), dtype=np.float32)
        for raw, weight in zip(raw_postings, bm25_weights(df[usable], entries)):
            if raw:
                records = np.frombuffer(raw, dtype=POSTING)
                scores[records["entry"]] += np.float32(weight) * term_saturation(records["count"])
        best = _top(scores, k)
        ids = await self._redis.hmget(self._key(chat_id, "id"), [int(n) for n in best])
        return [(entry_id.decode(), float(scores[n])) for n, entry_id in zip(best, ids) if entry_id is not None]

    # ---- keys --------------------------------------------------------------------

    def _key(self, chat_id: str, part: str) -> str:
        tag = hashlib.sha256(chat_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        return f"{self._prefix}:lex:{{{tag}}}:{part}"

    def _term_key(self, chat_id: str, term: str) -> str:
        return self._key(chat_id, f"t:{term}")


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the k highest positive scores, highest first (ties: lower index first)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return positive[np.lexsort((positive, -scores[positive]))]
