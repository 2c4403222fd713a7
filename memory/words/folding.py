"""How texts become the word index's terms, and which language their words are in.

Words are folded by script and language (:class:`Words`), so that a question finds the entries
holding another form of its words in any language. Scripts written without spaces (Chinese,
Japanese, Thai…; Korean, whose words carry their particles) give overlapping character pairs,
and single characters too for Han and Hangul: a word found inside a sentence matches, and the
sentence holding the pair outranks those holding its characters apart. Other words are stemmed
by Snowball in their language, told per text and script from its commonest words and letters
(:mod:`memory.words.stopwords`), or kept whole in a language Snowball has no stemmer for. An entry is
indexed under its likeliest language; a query too short to tell its own (a word or three, no
stopword) is folded in each language of its script, and the search takes, per script, the
folding of which the chat's index holds the most words (English first on a tie, so English
chats search as before). Each query word stays one term: none is counted twice.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections.abc import Collection

import Stemmer

from memory.words.scripts import KIND_OF, OWN_STEMMER, RUN_KINDS, SINGLES, foreign, grams, held_parts, words_of
from memory.words.stopwords import CUES, GREETINGS, LANGUAGES

_WORD = re.compile(r"\w+")
NO_STEMMER = "none"
AUTO = "auto"
SCHEME = 1  # how words become terms: the index records "<stemmer>-<SCHEME>" (raise it when terms change)


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
                looked.update(dict.fromkeys(grams(word, kind in SINGLES)))
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
                chosen.update(dict.fromkeys(grams(word, kind in SINGLES)))
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
      words and letters (:mod:`memory.words.stopwords`); a language Snowball has no stemmer for keeps its
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
        if len(present) == 1 and not present & RUN_KINDS:
            return self._stem(self._reading(kinds[0], found, cased), found)
        held = list(found)
        for kind in present - RUN_KINDS:  # each script's words stemmed together, put back in place
            places = [i for i, of in enumerate(kinds) if of == kind]
            words = [found[i] for i in places]
            for i, stem in zip(places, self._stem(self._reading(kind, words, cased), words)):
                held[i] = stem
        if present & RUN_KINDS:
            return [term for kind, word in zip(kinds, held)
                    for term in (grams(word, kind in SINGLES) if kind in RUN_KINDS else (word,))]
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
            if kind in RUN_KINDS:
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
                found.update(dict.fromkeys(held_parts(word, held)))
        return list(found)

    def _reading(self, kind: str, found: list[str], cased: str) -> str:
        """The stemmer the words of a kind (``found``) are folded with in this text."""
        if self.language != AUTO:
            return self.language
        chooser = _choosers().get(kind)
        return chooser.best(found, cased) if chooser else OWN_STEMMER.get(kind, NO_STEMMER)

    def _readings(self, kind: str, found: list[str], cased: str) -> list[str]:
        """The stemmers the words of a kind may have been folded with, likeliest (:meth:`_reading`'s)
        first; that one only when the text tells its language."""
        if self.language != AUTO:
            return [self.language]
        chooser = _choosers().get(kind)
        return chooser.readings(found, cased) if chooser else [OWN_STEMMER.get(kind, NO_STEMMER)]

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


_ASCII = frozenset(map(chr, range(128)))
_NON_ASCII_LETTER = re.compile(r"[^\W\x00-\x7f]")


def _split(folded: str) -> tuple[list[str], list[str]]:
    """A folded text's words, in order, and the kind of each: one of :mod:`memory.words.scripts`'s
    kinds."""
    first = _NON_ASCII_LETTER.search(folded)
    if first is None:
        found = _WORD.findall(folded)
        return found, ["latin"] * len(found)
    kind = KIND_OF[first.group()]
    if kind != "other" and not foreign(kind).search(folded, first.end()):  # one script, and ASCII
        if kind == "latin":
            found = words_of(frozenset({kind})).findall(folded)
            return found, ["latin"] * len(found)
        pairs = words_of(frozenset({"latin", kind})).findall(folded)  # groups: latin, then the other
        return [latin or word for latin, word in pairs], ["latin" if latin else kind for latin, _ in pairs]
    kinds = frozenset(map(KIND_OF.__getitem__, set(folded).difference(_ASCII))) - {""} | {"latin"}
    matches = list(words_of(kinds).finditer(folded))
    return [match.group() for match in matches], [match.lastgroup for match in matches]  # type: ignore[misc]


# ---- which language a text's words are in ------------------------------------------------

# The score a script's first language starts with: it wins when nothing tells. English's is
# higher: the commonest, and the one every text was folded in before, so a few words of another
# language in an English text (names, code: "bin", "see") do not fold it otherwise.
_PRIOR = {"latin": 1.0}
_SURE = 2.5  # a text tells its language when it scores this much, twice any other stemmer's
_FEW = 8  # a query of this many words at most that does not tell: folded in every language of its script


class _Chooser:
    """Tells the language of a script's words in a text from its languages' commonest words and
    letters (:mod:`memory.words.stopwords`): each such word or letter found counts 1, shared among the
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


def names_nothing(text: str) -> bool:
    """Whether ``text`` names no topic: each script's words in it are all among the commonest of
    the language they read as (function words, greetings: "hi, how are you?", "thanks, that's all
    for now"), or it has no word at all. A contraction's letter ("that's") is no word of a topic."""
    folded, cased = (text.lower(), "") if text.isascii() else _fold(text)
    found, kinds = _split(folded)
    by_script: dict[str, list[str]] = {}
    for word, kind in zip(found, kinds):
        if not (len(word) == 1 and word.isascii() and word.isalpha()):
            by_script.setdefault(kind, []).append(word)
    commonest, choosers = _commonest(), _choosers()
    for script, words in by_script.items():
        chooser = choosers.get(script)
        if chooser is None:  # a script whose words' language is not told: any of its languages'
            common = frozenset().union(*(commonest[name] for name, (_, writes, _) in LANGUAGES.items()
                                         if writes == script))
        else:
            scores = chooser.scores(words, cased)
            common = commonest[chooser.languages[scores.index(max(scores))]]
        if not common.issuperset(words):
            return False
    return True


@functools.cache
def _commonest() -> dict[str, frozenset[str]]:
    """Each language's commonest words and its greetings, folded as texts are."""
    return {name: frozenset(_fold(f"{words} {GREETINGS.get(name, '')}")[0].split())
            for name, (_, _, words) in LANGUAGES.items()}


def in_latin_script(text: str) -> bool:
    """Whether most of ``text``'s words are Latin-script words (a text without words is)."""
    if text.isascii():
        return True
    kinds = _split(_fold(text)[0])[1]
    return 2 * kinds.count("latin") >= len(kinds)
