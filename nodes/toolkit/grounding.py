"""The grounding check of a reply written from tool results: numbers it states that no result holds.

A *standalone* number stands between spaces or punctuation (not inside a word or a label:
"A320", "12th", "10km" are not checked) and may carry inner separators ("1,234", "3.5").
It is checked when it has at least two digits. It is grounded when it appears in the
sources as written or with its thousands commas dropped, or as a whole run of digits there
("5675" in "alpha-5675", "12" in "2026-03-12").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_STANDALONE_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*(?!\w|[.,]\d)")
_ANY_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_DIGIT_RUN = re.compile(r"\d+")


def ungrounded_numbers(reply: str, sources: Iterable[str]) -> list[str]:
    """The reply's standalone numbers of ≥ 2 digits found in none of ``sources``, in order, once each."""
    known: set[str] = set()
    for text in sources:
        for number in _ANY_NUMBER.findall(text):
            known |= _forms(number)
        known.update(_DIGIT_RUN.findall(text))
    stated = (n for n in _STANDALONE_NUMBER.findall(reply) if sum(c.isdigit() for c in n) >= 2)
    return list(dict.fromkeys(n for n in stated if not _forms(n) & known))


def _forms(number: str) -> set[str]:
    return {number, number.replace(",", "")}
