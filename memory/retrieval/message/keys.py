"""Structural keys in a message: the identifiers the specific-key mechanism looks up exactly."""

from __future__ import annotations

import re

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# A key starts and ends at a token edge: not inside a longer word, number or hyphenated chain.
_START = r"(?<![\w-])"
_END = r"(?![\w-]|[.,]\d)"
_WORD = r"[^\W\d_]{2,}"  # letters only, any script (Romanian ș, ț ...)

# One alternation, longest form first, so a span yields a single key:
# "agent-<uuid>" is one key, not also its uuid.
_KEY = re.compile(
    "|".join(
        (
            rf"{_START}agent-{_UUID}{_END}",
            rf"{_START}{_UUID}{_END}",
            # goat:some_key, goat:l2:chat.42 — inner ".:-" allowed, not trailing punctuation.
            rf"{_START}goat:\w+(?:[.:-]\w+)*",
            # word-123 / word_0001 (turn_0001): a separator and ≥ 3 digits ("COVID-19" is prose).
            rf"{_START}{_WORD}[-_]\d{{3,}}{_END}",
            # word 1234: one space and ≥ 4 digits that are not a year 1900–2099 ("in 2024", "page 123").
            rf"{_START}{_WORD} (?!(?:19|20)\d\d{_END})\d{{4,}}{_END}",
        )
    )
)


def structural_keys(text: str) -> list[str]:
    """Distinct structural keys of ``text`` in order of appearance, each exactly as written.

    Recognised (and nothing else, so ordinary prose yields no key):

    - a UUID, or ``agent-<uuid>`` (returned whole, without its bare uuid);
    - ``goat:some_key`` (inner ``:``, ``.``, ``-`` allowed);
    - a label of a letter word (≥ 2 letters) joined by ``-`` or ``_`` to ≥ 3 digits:
      ``ticket-1234``, ``turn_0001``, ``task_042``; not ``COVID-19``;
    - a label of a letter word, one space and ≥ 4 digits: ``ticket 1234``; not a
      year-like 1900–2099 (``in 2024``), not shorter numbers (``page 123``, ``I have 2 cats``).

    A key never starts or ends inside a longer word, number or hyphenated chain, and a
    number followed by a decimal part ("about 1000.5") is not a key.
    """
    return list(dict.fromkeys(match.group() for match in _KEY.finditer(text)))


def without_keys(text: str) -> str:
    """``text`` with its structural keys blanked out: an identifier names no date, yet its
    digits would send a message to the date parser, which reads some of them as years."""
    return _KEY.sub(" ", text)
