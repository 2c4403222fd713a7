"""Periods named by their distance from an event (English): "two weeks after the wedding", "the
day before her exam", "a month after we moved". The phrase is read here; the event's own day is
the day of the entry that tells it (recall finds it by meaning), and the period is counted from
that day.

- "<count> <unit>s after / before <event>": the day that far from the event's, give or take
  half a unit ("two weeks after": 14 days after, ± 3); a count is a number, a number word, "a",
  "a couple of" (2) or "a few" (3); a unit is a day, a week, a month (30 days) or a year.
- "the <unit> after / before <event>": the unit's days next to the event's day ("the week after
  the wedding": the 7 days that follow it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
# How many units a phrase counts, in words (named_periods reads more of them).
COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9, "ten": 10, "a couple of": 2, "a few": 3}


def count_pattern(counts: dict[str, int]) -> str:
    """A regex group ``count``: a number of up to three digits, or one of ``counts``' words."""
    words = sorted((word.replace(" ", r"\s+") for word in counts), key=len, reverse=True)
    return r"(?P<count>\d{1,3}|" + "|".join(words) + ")"


def count_of(written: str, counts: dict[str, int]) -> int:
    """The number a count group holds ("3", "a couple of")."""
    written = re.sub(r"\s+", " ", written.lower())
    return int(written) if written.isdigit() else counts[written]


_COUNT = count_pattern(COUNTS)
_PHRASE = re.compile(
    rf"\b(?:{_COUNT}|(?P<the>the))\s+(?P<unit>day|week|month|year)s?\s+(?P<direction>after|before)\s+"
    r"(?P<event>[^?.!;,\n]{3,120})", re.IGNORECASE)
# "the day after tomorrow", "the week before last": dates of their own, not events.
_NOT_AN_EVENT = re.compile(r"(?:tomorrow|yesterday|today|tonight|last|next|this|that)\b", re.IGNORECASE)


@dataclass(frozen=True)
class FromEvent:
    """A period named by its distance from an event.

    Attributes:
        phrase: the words naming the period ("two weeks after the support group").
        event: the event's words, as the message names it ("the support group").
        first_offset, last_offset: the period's first and last day, counted in days from the event's.
    """

    phrase: str
    event: str
    first_offset: int
    last_offset: int

    def days(self, event_day: date) -> tuple[date, date]:
        """The period's first and last day, the event having happened on ``event_day``."""
        return event_day + timedelta(days=self.first_offset), event_day + timedelta(days=self.last_offset)


def from_event(text: str) -> FromEvent | None:
    """The first period ``text`` names by its distance from an event, or None.

    Args:
        text: a message (English).

    Returns:
        The event's words and the period's offsets from its day.
    """
    for match in _PHRASE.finditer(text):
        event = match["event"].strip()
        if _NOT_AN_EVENT.match(event):
            continue
        unit = _UNIT_DAYS[match["unit"].lower()]
        sign = 1 if match["direction"].lower() == "after" else -1
        if match["the"]:
            first, last = (1, unit) if sign > 0 else (-unit, -1)
        else:
            middle = sign * unit * count_of(match["count"], COUNTS)
            first, last = middle - unit // 2, middle + unit // 2
        return FromEvent(match[0], event, first, last)
    return None
