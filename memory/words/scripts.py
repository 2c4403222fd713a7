"""Which script each character is in, and how a text is cut into words by script.

Each word is of one kind: a script written without spaces (:data:`RUN_KINDS`, whose runs are cut
into character pairs: :func:`grams`), a spaced script the word index tells apart (Cyrillic,
Greek, Arabic…), "latin" (with numbers) or "other" (the scripts named nowhere here, kept whole).
:data:`KIND_OF` tells a character's kind, :func:`words_of` matches the words of given kinds."""

from __future__ import annotations

import functools
import operator
import re
import unicodedata
from collections.abc import Collection
from itertools import chain


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
RUN_KINDS = frozenset(_RUNS)
SINGLES = frozenset({"han", "hangul"})  # their single characters are words too
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
OWN_STEMMER = {"greek": "greek", "armenian": "armenian", "tamil": "tamil"}
_LATIN_LETTERS = "\u00aa\u00b5\u00ba\u00c0-\u02af\u1e00-\u1eff\u2c60-\u2c7f\ua720-\ua7ff\uab30-\uab6f"


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
def words_of(kinds: frozenset[str]) -> re.Pattern[str]:
    """The words of a text holding characters of these kinds, each of one kind (its group)."""
    classes = _classes()
    return re.compile("|".join(f"(?P<{kind}>{classes[kind]})" for kind in classes if kind in kinds))


@functools.lru_cache(maxsize=64)
def foreign(kind: str) -> re.Pattern[str]:
    """A word character that is neither ASCII nor of this kind (not "other")."""
    chars = _LATIN_LETTERS if kind == "latin" else _RUNS.get(kind) or _SPACED[kind]
    return re.compile(f"[^\\W\x00-\x7f{chars}]")

KIND_OF = _Kinds()


def grams(run: str, singles: bool) -> list[str]:
    """A run's overlapping character pairs, and its characters too with ``singles``, in order;
    a lone character stands for itself."""
    if len(run) < 2:
        return [run]
    pairs = list(map(operator.add, run, run[1:]))
    if not singles:
        return pairs
    with_singles = list(chain.from_iterable(zip(run, pairs)))
    with_singles.append(run[-1])
    return with_singles


def held_parts(run: str, held: Collection[str]) -> list[str]:
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
