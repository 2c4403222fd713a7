"""L3's own indexes in Redis: words (BM25), time and vectors of each chat's entries, and its centroid.

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
  handed out, ``vectors``: vectors summed, ``turns``: archived turns indexed so far,
  ``layout``: 2 once the chat's index holds times and vectors (older ones hold words only)}.
  Their ratio is the chat's centroid: a query's mean distance to the chat's entries follows
  from it exactly (``2 − 2·q·centroid`` on unit vectors), which is the background the gap
  filter measures relevance against;
- ``…:time``: entry number → the entry's timestamp (a sorted set), and ``…:vectors``: every
  entry's vector as float16 at ``number × 768`` bytes. Together they rank the entries of a
  time range exactly by meaning without Chroma's metadata filter, which scans the whole
  database (110-180 ms per query at 100 000 entries, against ~3 ms for 1 000 vectors here).

Structural keys (``ticket-000250``) are looked up through the word postings too: the entries
holding every word of the key, verified by the caller against the content (Chroma's
``$contains`` scans every document of every chat: ~90 ms at 100 000 entries).

Scoring is BM25 with k1 = 1.2 and no length normalisation (b = 0: archived turns are of
similar length, and it spares storing and reading lengths); idf = ln(1 + (N − df + ½)/(df + ½)).
A word found in more than a share of the chat's entries (``max_df_share``) is skipped: too common to
point at any entry, and its postings are the longest to read.

Words are folded by script and language (:class:`Words`), so that a question finds the entries
holding another form of its words in any language. Scripts written without spaces (Chinese,
Japanese, Thai…; Korean, whose words carry their particles) give overlapping character pairs,
and single characters too for Han and Hangul: a word found inside a sentence matches, and the
sentence holding the pair outranks those holding its characters apart. Other words are stemmed
by Snowball in their language, told per text and script from its commonest words and letters
(``memory.stores.stopwords``), or kept whole in a language Snowball has no stemmer for. An entry is
indexed under its likeliest language; a query too short to tell its own (a word or three, no
stopword) is folded in each language of its script, and the search takes, per script, the
folding of which the chat's index holds the most words (English first on a tie, so English
chats search as before). Each query word stays one term: none is counted twice. The chat's
index records how its words were folded (``meta`` ``words``, e.g. "auto-1"); one folded
otherwise is indexed afresh.
"""

from __future__ import annotations

import functools
import hashlib
import math
import operator
import re
import threading
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from itertools import chain
from typing import NamedTuple

import numpy as np
import Stemmer
from redis.asyncio import Redis

from memory.stores.stopwords import CUES, LANGUAGES

K1 = 1.2
LAYOUT = 2  # words, times and vectors (1: words only, before times and vectors were indexed)
_SCHEME_FIELDS = ["layout", "words", "allocated"]  # of a chat's index meta: is it of this scheme?
VECTOR = np.dtype("<f2")
POSTING = np.dtype([("entry", "<u4"), ("count", "u1")])
_MAX_COUNT = 255  # a term's count in one entry saturates here (one byte per posting)
_WORD = re.compile(r"\w+")
NO_STEMMER = "none"
AUTO = "auto"
SCHEME = 1  # how words become terms: the index records "<stemmer>-<SCHEME>" (raise it when terms change)

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


# The vectors of some entries, concatenated, in one round trip; with a second key, their ids
# too ({ids, vectors}). KEYS: vectors [, number → id hash]. ARGV: bytes per vector, then the
# entry numbers. (One script rather than a pipeline: redis-py checks a pipeline's scripts with
# an extra round trip every time.)
_GATHER_VECTORS = """
local size = tonumber(ARGV[1])
local parts = {}
for i = 2, #ARGV do
  local start = tonumber(ARGV[i]) * size
  parts[#parts + 1] = redis.call('GETRANGE', KEYS[1], start, start + size - 1)
end
if #KEYS == 1 then return table.concat(parts) end
return {redis.call('HMGET', KEYS[2], unpack(ARGV, 2)), table.concat(parts)}
"""


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


class IndexEntry(NamedTuple):
    id: str
    content: str
    vector: Sequence[float]
    timestamp: float = 0.0  # unix seconds


def terms(text: str) -> list[str]:
    """Words of ``text``, case-folded and without diacritics ("Când" and "cand" are one word),
    in order, repeats kept. A run of a script written without spaces (Chinese, Japanese kana,
    Thai…) is one word here; a change of script ends a word ("東京2020" → "東京", "2020")."""
    if text.isascii():
        return _WORD.findall(text.lower())
    return _split(_fold(text)[0])[0]


def stemmers() -> list[str]:
    """What the word index can fold words with: "auto" (each script's and language's own
    stemmer), one of Snowball's languages for every word, or "none"."""
    return [AUTO, *Stemmer.algorithms(), NO_STEMMER]


class QueryTerms:
    """A query's index terms under each way its words may have been folded: ``lookups`` are all
    of them (read them all), :meth:`choose` gives the query's terms under the folding the terms
    found support best. A query that tells its language has one folding: its terms are then
    exactly :class:`Words`'s of the query."""

    __slots__ = ("_units", "_groups", "lookups")

    def __init__(self, units: list[tuple[str, str, int]], groups: dict[str, list[list[str]]]) -> None:
        self._units = units  # (word, kind, the word's place in its group's forms, or -1 for a run's grams)
        self._groups = groups  # kind → one list of terms (one per word of the kind) per folding, likeliest first
        looked: dict[str, None] = {}
        for word, kind, place in units:
            if place < 0:
                looked.update(dict.fromkeys(_grams(word, kind in _SINGLES)))
        for forms in groups.values():
            for form in forms:
                looked.update(dict.fromkeys(form))
        self.lookups = list(looked)

    def choose(self, present: Collection[str]) -> list[str]:
        """The query's terms, each once, in order, under the folding (per script) that finds the
        most of its words among ``present`` (the terms the index holds); the likeliest on a tie."""
        picks = self._picks(present)
        chosen: dict[str, None] = {}
        for word, kind, place in self._units:
            if place < 0:
                chosen.update(dict.fromkeys(_grams(word, kind in _SINGLES)))
            else:
                chosen[self._groups[kind][picks[kind]][place]] = None
        return list(chosen)

    def _picks(self, present: Collection[str]) -> dict[str, int]:
        picks = {}
        for kind, forms in self._groups.items():
            if len(forms) == 1:
                picks[kind] = 0
                continue
            found = [len({place for place, term in enumerate(form) if term in present}) for form in forms]
            picks[kind] = found.index(max(found))
        return picks


class Words:
    """What the word index keeps of a text: its words (:func:`terms`) folded so that a question
    finds the turns holding another form of its words, by script and language:

    - a script written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Myanmar), and Korean
      (whose words carry their particles): each run's overlapping character pairs ("熊猫" in
      "大熊猫" → "大熊", "熊猫"), and for Han and Hangul, whose single characters are words,
      single characters too;
    - other words: stemmed by Snowball in their language ("visited", "visits" → "visit";
      "собаку", "собаки" → "собак"), the language told per text and script from its commonest
      words and letters (``memory.stores.stopwords``); a language Snowball has no stemmer for keeps its
      words whole. Numbers and keys stay as they are.

    ``stemmer`` "auto" does that; a Snowball language's name folds every spaced word with that
    language's stemmer, "none" keeps them whole. :attr:`stemmer` names the scheme the index is
    written with (a chat's index written otherwise is indexed afresh)."""

    def __init__(self, stemmer: str = AUTO) -> None:
        if stemmer not in stemmers():
            raise ValueError(f"unknown stemmer {stemmer!r} (one of: {', '.join(stemmers())})")
        self.language = stemmer
        self.stemmer = f"{stemmer}-{SCHEME}"
        self._per_thread = threading.local()  # a PyStemmer stemmer is not thread-safe

    def __call__(self, text: str) -> list[str]:
        """The index terms of ``text``, in order, repeats kept."""
        # The words are stemmed as people often type them, without their diacritics.
        if text.isascii():  # most texts: Latin words and numbers only
            found = _WORD.findall(text.lower())
            return self._stem(self._reading("latin", found, ""), found)
        folded, cased = _fold(text)
        found, kinds = _split(folded)
        present = set(kinds)
        if len(present) == 1 and not present & _RUN_KINDS:
            return self._stem(self._reading(kinds[0], found, cased), found)
        held = list(found)
        for kind in present - _RUN_KINDS:  # each script's words stemmed together, put back in place
            places = [i for i, of in enumerate(kinds) if of == kind]
            words = [found[i] for i in places]
            for i, stem in zip(places, self._stem(self._reading(kind, words, cased), words)):
                held[i] = stem
        if present & _RUN_KINDS:
            return [term for kind, word in zip(kinds, held)
                    for term in (_grams(word, kind in _SINGLES) if kind in _RUN_KINDS else (word,))]
        return held

    def query(self, text: str) -> QueryTerms:
        """The terms of ``text`` as a query: a text too short to tell its language by (1-3 words,
        as a search names them) gets its words folded in each language of their script, and the
        index's own terms choose among them (:meth:`QueryTerms.choose`)."""
        if text.isascii():
            found = _WORD.findall(text.lower())
            units, cased = zip(["latin"] * len(found), found), ""
        else:
            folded, cased = _fold(text)
            units = zip(*_split(folded)[::-1])
        by_kind: dict[str, list[str]] = {}
        placed: list[tuple[str, str, int]] = []
        for kind, word in units:
            if kind in _RUN_KINDS:
                placed.append((word, kind, -1))
            else:
                found = by_kind.setdefault(kind, [])
                placed.append((word, kind, len(found)))
                found.append(word)
        groups = {kind: [self._stem(name, found) for name in self._readings(kind, found, cased)]
                  for kind, found in by_kind.items()}
        return QueryTerms(placed, groups)

    def found_in(self, query: str, text: str) -> list[str]:
        """The words of ``query`` (as :func:`terms` gives them) that ``text`` holds in some form,
        each once, in the query's order: what a search by these words matched. Of a run of a
        script written without spaces, the longest parts ``text`` holds (a lone character only
        when it is the whole run)."""
        held = set(self(text))
        asked = self.query(query)
        picks = asked._picks(held)
        found: dict[str, None] = {}
        for word, kind, place in asked._units:
            if place >= 0:
                if asked._groups[kind][picks[kind]][place] in held:
                    found[word] = None
            else:
                found.update(dict.fromkeys(_held_parts(word, held)))
        return list(found)

    def _reading(self, kind: str, found: list[str], cased: str) -> str:
        """The stemmer the words of a kind (``found``) are folded with in this text."""
        if self.language != AUTO:
            return self.language
        chooser = _choosers().get(kind)
        return chooser.best(found, cased) if chooser else _FIXED.get(kind, NO_STEMMER)

    def _readings(self, kind: str, found: list[str], cased: str) -> list[str]:
        """The stemmers the words of a kind may have been folded with, likeliest (:meth:`_reading`'s)
        first; that one only when the text tells its language."""
        if self.language != AUTO:
            return [self.language]
        chooser = _choosers().get(kind)
        return chooser.readings(found, cased) if chooser else [_FIXED.get(kind, NO_STEMMER)]

    def _stem(self, name: str, found: list[str]) -> list[str]:
        if name == NO_STEMMER or not found:
            return found
        stemmers_here = getattr(self._per_thread, "stemmers", None)
        if stemmers_here is None:
            stemmers_here = self._per_thread.stemmers = {}
        stemmer = stemmers_here.get(name)
        if stemmer is None:  # it caches the stems it made: a chat's vocabulary is stemmed once
            stemmer = stemmers_here[name] = Stemmer.Stemmer(name)
        return stemmer.stemWords(found)


# ---- how texts are cut into words --------------------------------------------------------

# Scripts written without spaces between words: a run of one is cut into character pairs.
_RUNS = {
    "han": "\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3038-\u303b\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
           "\U00020000-\U0003134f",
    "hangul": "\u1100-\u11ff\u3131-\u318e\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff",
    "hiragana": "\u3041-\u3096\u3099-\u309f",
    "katakana": "\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff",
    "thai": "\u0e01-\u0e3a\u0e40-\u0e4e\u0e50-\u0e59",
    "lao": "\u0e81-\u0eae\u0eb0-\u0edf",
    "khmer": "\u1780-\u17d3\u17d7\u17dc\u17dd\u17e0-\u17e9\u19e0-\u19ff",
    "myanmar": "\u1000-\u1049\u1050-\u109f\ua9e0-\ua9fe\uaa60-\uaa7f",
}
_RUN_KINDS = frozenset(_RUNS)
_SINGLES = frozenset({"han", "hangul"})  # their single characters are words too
# Spaced scripts with a choice of stemmers, or a stemmer of their own. Other words are "latin"
# (and numbers) or "other" (Georgian, Bengali…: kept whole).
_SPACED = {
    "cyrillic": "\u0400-\u0481\u0483-\u052f\u1c80-\u1c8f\u2de0-\u2dff\ua640-\ua69f",
    "greek": "\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u03ff\u1f00-\u1ffe",
    "arabic": "\u0610-\u061a\u0620-\u0669\u066e-\u06d3\u06d5-\u06dc\u06df-\u06e8\u06ea-\u06ff"
              "\u0750-\u077f\u08a0-\u08ff",
    "hebrew": "\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7\u05d0-\u05ea\u05ef-\u05f2",
    "armenian": "\u0531-\u0556\u0559\u0560-\u0588",
    "devanagari": "\u0900-\u0963\u0966-\u096f\u0971-\u097f\ua8e0-\ua8ff",
    "tamil": "\u0b82-\u0bef",
}
_GROUPED = "".join((*_RUNS.values(), *_SPACED.values()))
_FIXED = {"greek": "greek", "armenian": "armenian", "tamil": "tamil"}
_LATIN_LETTERS = "\u00aa\u00b5\u00ba\u00c0-\u02af\u1e00-\u1eff\u2c60-\u2c7f\ua720-\ua7ff\uab30-\uab6f"
_DROPPED = re.compile(  # taken out of words: diacritics, vowel points, joiners, soft hyphens
    "[\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7\u0610-\u061a"
    "\u0640\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed\u1ab0-\u1aff"
    "\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\u00ad\u200c\u200d\u2060\ufeff]")
# Characters folding leaves as they are, most of most texts: ASCII, Cyrillic, Greek, Arabic and
# Hebrew letters, Devanagari, Thai, kana, Hangul, Han. (A text of these only is kept as it is.)
_FOLDED = re.compile(
    "[^\x00-\x7f\u0430-\u044f\u03b1-\u03c9\u0620-\u063f\u0641-\u064a\u05d0-\u05ea"
    "\u0900-\u097f\u0e00-\u0e7f\u3000-\u30ff\u4e00-\u9fff\uac00-\ud7a3]")
# Cyrillic letters of their own, not letters with a diacritic: kept through the folding.
_KEPT = (("й", "\ue000"), ("ў", "\ue001"))


def _fold(text: str) -> tuple[str, str]:
    """``text`` case-folded and without diacritics (and vowel points, joiners), and ``text``
    case-folded only."""
    cased = unicodedata.normalize("NFKC", text).casefold()
    if not _FOLDED.search(cased):
        return cased, cased
    folded = cased
    for letter, stand_in in _KEPT:
        folded = folded.replace(letter, stand_in)
    folded = unicodedata.normalize("NFC", _DROPPED.sub("", unicodedata.normalize("NFKD", folded)))
    for letter, stand_in in _KEPT:
        folded = folded.replace(stand_in, letter)
    return folded, cased


@functools.cache
def _marks() -> str:
    """The combining marks ``\\w`` misses (parts of words in Indic scripts and others) but those
    of the scripts in ``_RUNS`` and ``_SPACED``, as a character class's ranges."""
    inside = re.compile(f"[{_GROUPED}]")
    marks: list[list[int]] = []
    for code in range(0x300, 0x10000):
        char = chr(code)
        if (unicodedata.category(char).startswith("M") and not char.isalnum() and not inside.match(char)
                and not 0xD800 <= code < 0xE000):
            if marks and marks[-1][1] == code - 1:
                marks[-1][1] = code
            else:
                marks.append([code, code])
    return "".join(f"{chr(low)}-{chr(high)}" for low, high in marks)


def _classes() -> dict[str, str]:
    """Each kind of word: the pattern of one word of it."""
    classes = {"latin": f"[0-9_a-z{_LATIN_LETTERS}]+"}
    classes.update((kind, f"[{chars}]+") for kind, chars in (*_RUNS.items(), *_SPACED.items()))
    classes["other"] = f"(?:[^\\W{_GROUPED}{_LATIN_LETTERS}0-9_a-z]|[{_marks()}])+"
    return classes


class _Kinds(dict):
    """A character's kind of word ("" for none: a space, a stop), worked out at first sight."""

    def __missing__(self, char: str) -> str:
        kind = next((kind for kind, pattern in _kind_patterns().items() if pattern.match(char)), "")
        self[char] = kind
        return kind


@functools.cache
def _kind_patterns() -> dict[str, re.Pattern[str]]:
    return {kind: re.compile(pattern) for kind, pattern in _classes().items()}


@functools.lru_cache(maxsize=256)
def _words_of(kinds: frozenset[str]) -> re.Pattern[str]:
    """The words of a text holding characters of these kinds, each of one kind (its group)."""
    classes = _classes()
    return re.compile("|".join(f"(?P<{kind}>{classes[kind]})" for kind in classes if kind in kinds))


@functools.lru_cache(maxsize=64)
def _foreign(kind: str) -> re.Pattern[str]:
    """A word character that is neither ASCII nor of this kind (not "other")."""
    chars = _LATIN_LETTERS if kind == "latin" else _RUNS.get(kind) or _SPACED[kind]
    return re.compile(f"[^\\W\x00-\x7f{chars}]")


_KINDS = _Kinds()
_ASCII = frozenset(map(chr, range(128)))
_NON_ASCII_LETTER = re.compile(r"[^\W\x00-\x7f]")


def _split(folded: str) -> tuple[list[str], list[str]]:
    """A folded text's words, in order, and the kind of each: one of ``_RUNS`` or ``_SPACED``,
    "latin" (with numbers) or "other"."""
    first = _NON_ASCII_LETTER.search(folded)
    if first is None:
        found = _WORD.findall(folded)
        return found, ["latin"] * len(found)
    kind = _KINDS[first.group()]
    if kind != "other" and not _foreign(kind).search(folded, first.end()):  # one script, and ASCII
        if kind == "latin":
            found = _words_of(frozenset({kind})).findall(folded)
            return found, ["latin"] * len(found)
        pairs = _words_of(frozenset({"latin", kind})).findall(folded)  # groups: latin, then the other
        return [latin or word for latin, word in pairs], ["latin" if latin else kind for latin, _ in pairs]
    kinds = frozenset(map(_KINDS.__getitem__, set(folded).difference(_ASCII))) - {""} | {"latin"}
    matches = list(_words_of(kinds).finditer(folded))
    return [match.group() for match in matches], [match.lastgroup for match in matches]  # type: ignore[misc]


def _grams(run: str, singles: bool) -> list[str]:
    """A run's overlapping character pairs, and its characters too with ``singles``, in order;
    a lone character stands for itself."""
    if len(run) < 2:
        return [run]
    pairs = list(map(operator.add, run, run[1:]))
    if not singles:
        return pairs
    grams = list(chain.from_iterable(zip(run, pairs)))
    grams.append(run[-1])
    return grams


def _held_parts(run: str, held: Collection[str]) -> list[str]:
    """The longest parts of a run whose character pairs are all ``held``."""
    if len(run) < 2:
        return [run] if run in held else []
    parts, start = [], None
    for i in range(len(run) - 1):
        if run[i : i + 2] in held:
            start = i if start is None else start
        elif start is not None:
            parts.append(run[start : i + 1])
            start = None
    if start is not None:
        parts.append(run[start:])
    return parts


# ---- which language a text's words are in ------------------------------------------------

# The score a script's first language starts with: it wins when nothing tells. English's is
# higher: the commonest, and the one every text was folded in before, so a few words of another
# language in an English text (names, code: "bin", "see") do not fold it otherwise.
_PRIOR = {"latin": 1.0}
_SURE = 2.5  # a text tells its language when it scores this much, twice any other stemmer's
_FEW = 8  # a query of this many words at most that does not tell: folded in every language of its script


class _Chooser:
    """Tells the language of a script's words in a text from its languages' commonest words and
    letters (``memory.stores.stopwords``): each such word or letter found counts 1, shared among the
    languages that have it."""

    def __init__(self, script: str) -> None:
        self.languages = [name for name, (_, writes, _) in LANGUAGES.items() if writes == script]
        self.prior = _PRIOR.get(script, 0.5)
        self.stemmers = [LANGUAGES[name][0] for name in self.languages]
        index = {name: i for i, name in enumerate(self.languages)}
        having: dict[str, list[int]] = {}
        for name in self.languages:
            for word in dict.fromkeys(_fold(LANGUAGES[name][2])[0].split()):
                having.setdefault(word, []).append(index[name])
        self.words = {word: tuple((i, 1 / len(held)) for i in held) for word, held in having.items()}
        letters = {letter: tuple((index[name], 1 / len(names)) for name in names)
                   for group, names in CUES.get(script, {}).items() for letter in group}
        self.letters = letters
        self.cues = re.compile(f"[{''.join(letters)}]") if letters else None

    def scores(self, found: list[str], cased: str) -> list[float]:
        scores = [0.0] * len(self.languages)
        scores[0] = self.prior
        get = self.words.get
        for word in found:
            shares = get(word)
            if shares is not None:
                for i, share in shares:
                    scores[i] += share
        if cased and self.cues is not None:
            for letter in self.cues.findall(cased):
                for i, share in self.letters[letter]:
                    scores[i] += share
        return scores

    def best(self, found: list[str], cased: str) -> str:
        """The stemmer of the likeliest language (the first one's when nothing tells)."""
        scores = self.scores(found, cased)
        return self.stemmers[scores.index(max(scores))]

    def readings(self, found: list[str], cased: str) -> list[str]:
        """The stemmers of the languages the words may be in, likeliest first: the likeliest
        only when the text tells it (a clear lead over every other stemmer's language); of a
        longer text that does not (names, code), those of languages with some evidence."""
        scores = self.scores(found, cased)
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable: first languages on a tie
        first = self.stemmers[ranked[0]]
        rival = max((scores[i] for i in ranked if self.stemmers[i] != first), default=0.0)
        if scores[ranked[0]] >= _SURE and scores[ranked[0]] >= 2 * rival:
            return [first]
        few = len(found) <= _FEW
        return list(dict.fromkeys(self.stemmers[i] for i in ranked if few or scores[i] > 0))


@functools.cache
def _choosers() -> dict[str, _Chooser]:
    """The scripts whose words' language is told, each with its chooser (made at first use)."""
    return {script: _Chooser(script) for script in ("latin", "cyrillic", "arabic", "devanagari", "hebrew")}


def bm25_weights(document_frequencies: np.ndarray, entries: int) -> np.ndarray:
    """Robertson–Spärck Jones idf (smoothed to stay positive) of terms found in so many entries."""
    df = document_frequencies.astype(np.float64)
    return np.log1p((entries - df + 0.5) / (df + 0.5))


def term_saturation(counts: np.ndarray) -> np.ndarray:
    """BM25's tf part without length normalisation: tf·(k1 + 1)/(tf + k1)."""
    tf = counts.astype(np.float32)
    return tf * np.float32(K1 + 1) / (tf + np.float32(K1))


class LexicalIndex:
    def __init__(self, redis: Redis, prefix: str = "goat", words: Words | None = None, dimensions: int = 384) -> None:
        """``dimensions``: the length of the encoder's vectors, which the index keeps (384: MiniLM's
        or e5-small's alone)."""
        self._redis = redis
        self._prefix = prefix
        self.words = words or Words()
        self._dimensions = dimensions
        self._row_bytes = dimensions * VECTOR.itemsize
        self._add_to_sum = redis.register_script(_ADD_TO_SUM)
        self._gather_vectors = redis.register_script(_GATHER_VECTORS)
        self._read_postings = redis.register_script(_READ_POSTINGS % POSTING.itemsize)
        self._advance_turns = redis.register_script(_ADVANCE_TURNS)
        self._drop_postings = redis.register_script(_DROP_POSTINGS % POSTING.itemsize)

    # ---- writes ------------------------------------------------------------------

    async def add(self, chat_id: str, entries: Sequence[IndexEntry | tuple]) -> int:
        """Index entries of a chat (``IndexEntry`` or its tuple); those already indexed are skipped.

        Safe against concurrent adds of the same entries (by other workers): an entry number
        is claimed with HSETNX before anything else of the entry is written. (A process killed
        between the claim and the writes leaves those entries out of the index; they are still
        found by meaning.) Returns how many entries were new.
        """
        given = [IndexEntry(*entry) for entry in entries]
        missing = set(await self.missing(chat_id, [entry.id for entry in given]))
        fresh = list({entry.id: entry for entry in given if entry.id in missing}.values())
        if not fresh:
            return 0
        meta = self._key(chat_id, "meta")
        end = await self._redis.hincrby(meta, "allocated", len(fresh))
        numbers = range(end - len(fresh), end)
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry, number in zip(fresh, numbers):
                pipe.hsetnx(self._key(chat_id, "number"), entry.id, number)
            if end == len(fresh):  # the chat's first entries: its index has every part
                pipe.hsetnx(meta, "layout", LAYOUT)
                pipe.hsetnx(meta, "words", self.words.stemmer)
            claimed = await pipe.execute()
        mine = [(entry, number) for entry, number, won in zip(fresh, numbers, claimed) if won]
        if not mine:
            return 0
        vectors = np.array([entry.vector for entry, _ in mine], dtype=np.float64)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self._key(chat_id, "id"), mapping={number: entry.id for entry, number in mine})
            pipe.zadd(self._key(chat_id, "time"), {number: entry.timestamp for entry, number in mine})
            for (_, number), vector in zip(mine, vectors.astype(VECTOR)):
                pipe.setrange(self._key(chat_id, "vectors"), number * self._row_bytes, vector.tobytes())
            for term, records in self._postings(mine).items():
                pipe.append(self._term_key(chat_id, term), records)
            await pipe.execute()
        await self._add_to_sum(
            keys=[self._key(chat_id, "sum"), meta],
            args=[vectors.sum(axis=0).astype("<f8").tobytes(), len(mine)],
        )
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
            pipe.setrange(self._key(chat_id, "vectors"), number * self._row_bytes, vector.astype(VECTOR).tobytes())
            for term, records in self._postings([(entry, number)]).items():
                pipe.append(self._term_key(chat_id, term), records)
            await pipe.execute()
        await self._add_to_sum(keys=[self._key(chat_id, "sum"), self._key(chat_id, "meta")],
                               args=[(vector - np.asarray(old_vector, dtype=np.float64)).astype("<f8").tobytes(), 0])
        return True

    async def _drop_words(self, chat_id: str, entry_id: str, content: str) -> int | None:
        """Take an entry's records out of its words' postings (``content``: the entry's, as
        indexed); returns its number, None when it is not indexed."""
        number = await self._redis.hget(self._key(chat_id, "number"), entry_id)
        if number is None:
            return None
        if terms_held := list(dict.fromkeys(self.words(content))):
            await self._drop_postings(keys=[self._term_key(chat_id, term) for term in terms_held], args=[int(number)])
        return int(number)

    def _postings(self, numbered: Sequence[tuple[IndexEntry, int]]) -> dict[str, bytes]:
        """The postings records of these entries (each with its number), by term."""
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for entry, number in numbered:
            for term, count in Counter(self.words(entry.content)).items():
                postings[term].append((number, min(count, _MAX_COUNT)))
        return {term: np.array(records, dtype=POSTING).tobytes() for term, records in postings.items()}

    async def missing(self, chat_id: str, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` not indexed yet, in order, without repeats."""
        known = await self._redis.hmget(self._key(chat_id, "number"), list(ids)) if ids else []
        return list(dict.fromkeys(entry_id for entry_id, number in zip(ids, known) if number is None))

    async def indexed_turns(self, chat_id: str) -> int:
        """Archived turns 1..n of the chat are indexed (as far as they were in L3 when indexed);
        0 when its words were folded otherwise (:meth:`outdated`)."""
        turns, *scheme = await self._redis.hmget(self._key(chat_id, "meta"), ["turns", *_SCHEME_FIELDS])
        return 0 if _outdated(*scheme, self.words) else int(turns or 0)

    async def outdated(self, chat_id: str) -> bool:
        """Whether the chat's index is of another scheme than this one: words folded otherwise
        (another stemmer, or none: an index older than stemming), searched by words, would be
        missed; an index older than times and vectors cannot rank a time range or a word hit by
        meaning. Either is indexed afresh."""
        return _outdated(*await self._redis.hmget(self._key(chat_id, "meta"), _SCHEME_FIELDS), self.words)

    @property
    def scheme(self) -> str:
        """This index's scheme (its layout and how it folds words), as a migration records it."""
        return f"{LAYOUT}/{self.words.stemmer}"

    async def advance_turns_indexed(self, chat_id: str, turns: Sequence[int]) -> int:
        """Count these just-indexed turns as indexed, as far as they continue the turns indexed
        so far without a gap (a gap is left to :meth:`Archive.sync_index`; a mark reset by
        :meth:`drop` meanwhile is not moved past). Returns the mark."""
        return int(await self._advance_turns(keys=[self._key(chat_id, "meta")], args=sorted(turns)))

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
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hdel(self._key(chat_id, "number"), entry_id)
            pipe.hdel(self._key(chat_id, "id"), number)
            pipe.zrem(self._key(chat_id, "time"), number)
            await pipe.execute()
        await self._add_to_sum(keys=[self._key(chat_id, "sum"), self._key(chat_id, "meta")],
                               args=[(-np.asarray(vector, dtype=np.float64)).astype("<f8").tobytes(), -1])
        return True

    async def set_vectors(self, chat_id: str, ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """Replace the vectors of these entries (a re-embedding); their words and times stay.
        The chat's sum is the caller's to set once all its entries are replaced (:meth:`set_sum`).

        Returns:
            Which of ``ids`` are indexed (a boolean per id): those whose vectors the sum holds.
        """
        numbers = await self._redis.hmget(self._key(chat_id, "number"), list(ids)) if len(ids) else []
        indexed = np.array([number is not None for number in numbers], dtype=bool)
        async with self._redis.pipeline(transaction=False) as pipe:
            for number, vector in zip(numbers, np.asarray(vectors).astype(VECTOR)):
                if number is not None:
                    pipe.setrange(self._key(chat_id, "vectors"), int(number) * self._row_bytes, vector.tobytes())
            await pipe.execute()
        return indexed

    async def clear_vectors(self, chat_id: str) -> None:
        """Forget the chat's vectors and their sum (before :meth:`set_vectors` writes ones of
        another length); its words and times stay."""
        async with self._redis.pipeline(transaction=True) as pipe:  # one hash tag: one slot
            pipe.unlink(self._key(chat_id, "vectors"), self._key(chat_id, "sum"))
            pipe.hdel(self._key(chat_id, "meta"), "vectors")
            await pipe.execute()

    async def set_sum(self, chat_id: str, total: np.ndarray, count: int) -> None:
        """Set the chat's sum of vectors and their number (after :meth:`set_vectors` of all its entries)."""
        async with self._redis.pipeline(transaction=True) as pipe:  # one hash tag: one slot
            pipe.set(self._key(chat_id, "sum"), np.asarray(total, dtype="<f8").tobytes())
            pipe.hset(self._key(chat_id, "meta"), "vectors", count)
            await pipe.execute()

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

    async def between(self, chat_id: str, after: float | None, before: float | None) -> np.ndarray:
        """Numbers of the chat's entries timed within [after, before] (unix seconds, inclusive)."""
        found = await self._redis.zrangebyscore(
            self._key(chat_id, "time"),
            "-inf" if after is None else after,
            "+inf" if before is None else before,
        )
        return np.array(found, dtype=np.int64)

    async def vectors(self, chat_id: str, numbers: Sequence[int] | np.ndarray) -> np.ndarray:
        """The entries' vectors (float32, one row per number; zeros where none was written)."""
        numbers = np.asarray(numbers, dtype=np.int64)
        if len(numbers) == 0:
            return np.zeros((0, self._dimensions), dtype=np.float32)
        key = self._key(chat_id, "vectors")
        low, high = int(numbers.min()), int(numbers.max())
        if high - low + 1 <= 2 * len(numbers):
            # Mostly consecutive (entries of a period were indexed together): one slice.
            raw = await self._redis.getrange(key, low * self._row_bytes, (high + 1) * self._row_bytes - 1)
            rows, wanted = high - low + 1, numbers - low
        else:
            raw = await self._gather_vectors(keys=[key], args=[self._row_bytes, *numbers.tolist()])
            rows, wanted = len(numbers), np.arange(len(numbers))
        return self._rows(raw, rows)[wanted].astype(np.float32)

    async def times(self, chat_id: str, ids: Sequence[str]) -> list[float | None]:
        """Each entry's timestamp, None for an entry not indexed."""
        numbers = await self._redis.hmget(self._key(chat_id, "number"), list(ids)) if ids else []
        known = [number for number in numbers if number is not None]
        found = iter(await self._redis.zmscore(self._key(chat_id, "time"), known) if known else [])
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
        key = self._key(chat_id, "time")
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

    async def ids(self, chat_id: str, numbers: Sequence[int]) -> list[str | None]:
        if len(numbers) == 0:
            return []
        found = await self._redis.hmget(self._key(chat_id, "id"), [int(n) for n in numbers])
        return [entry_id.decode() if entry_id is not None else None for entry_id in found]

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
            keys=[self._key(chat_id, "number"), self._key(chat_id, "meta"),
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
        ids, raw = await self._gather_vectors(
            keys=[self._key(chat_id, "vectors"), self._key(chat_id, "id")], args=[self._row_bytes, *best]
        )
        vectors = self._rows(raw, len(best)).astype(np.float32)
        return [(entry_id.decode(), float(scores[n]), vector)
                for n, entry_id, vector in zip(best, ids, vectors) if entry_id is not None]

    def _rows(self, raw: bytes, rows: int) -> np.ndarray:
        """``rows`` packed float16 vectors, one per row (a view: convert the rows you keep); vectors
        past the end of the stored string come back short (only the last ones can be) and read as zeros."""
        raw = raw.ljust(rows * self._row_bytes, b"\0")
        return np.frombuffer(raw, dtype=VECTOR).reshape(rows, self._dimensions)

    # ---- keys --------------------------------------------------------------------

    def _key(self, chat_id: str, part: str) -> str:
        tag = hashlib.sha256(chat_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        return f"{self._prefix}:lex:{{{tag}}}:{part}"

    def _term_key(self, chat_id: str, term: str) -> str:
        return self._key(chat_id, f"t:{term}")


def _outdated(layout: bytes | None, words: bytes | None, allocated: bytes | None, current: Words) -> bool:
    return allocated is not None and (
        layout is None or int(layout) != LAYOUT or (words.decode() if words else NO_STEMMER) != current.stemmer)


def _parse_cursor(cursor: str) -> tuple[float, bytes]:
    """(time, entry number as text) of a cursor of :meth:`LexicalIndex.newest`."""
    moment, _, number = cursor.partition("/")
    try:
        value = float(moment)
    except ValueError:
        value = math.nan
    if not (number.isdigit() and math.isfinite(value)):
        raise ValueError(f"cursor {cursor!r} is not one a page of memories gave")
    return value, number.encode()


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the k highest positive scores, highest first (ties: lower index first)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return positive[np.lexsort((positive, -scores[positive]))]


def reads_as_english(text: str) -> bool:
    """Whether ``text`` is English as far as its words tell: most of its words are Latin-script
    words, and English's common words in it weigh at least half what another language's do
    (the word index's prior for English left out: a short Spanish line is not English for
    knowing no English word; a text nothing tells, a name or a number, is English)."""
    if text.isascii():
        found, cased = _WORD.findall(text.lower()), ""
        latin = found
    else:
        folded, cased = _fold(text)
        found, kinds = _split(folded)
        latin = [word for word, kind in zip(found, kinds) if kind == "latin"]
        if 2 * len(latin) < len(found):
            return False
    chooser = _choosers()["latin"]
    scores = chooser.scores(latin, cased)
    return 2 * (scores[0] - chooser.prior) >= max(scores[1:]) - 1e-9
