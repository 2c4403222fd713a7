"""Find the completed past time range a message names ("yesterday", "pe 3 martie", "last week").

Detection is grammatical: ``dateparser`` finds and resolves the date phrases. On top
of it, strictness rules keep ambiguous words from firing:

- ``REQUIRE_PARTS=["day"]``: an absolute date must name its day, so a bare month
  ("may", Romanian "mai" = "still"), a bare year ("2024"), a bare weekday
  ("we" read as Wednesday, "sun", Romanian "vin" = "I come") or a plain number
  ("1234") is not a date to dateparser. Relative phrases ("last week", "two days ago")
  pass. A month, a year, a season or a weekday named with a preposition or a part ("during
  March", "in 2022", "early June", "last spring", "on Monday") is a period all the same:
  :mod:`memory.retrieval.message.named_periods` finds those (English).
- A date written only in digits must be complete (day, month and a four-digit
  year, "12.03.2025"): "2+2", "1/2", "10-12", "3/12" are not dates.
- A date needs a digit or a date word: a month, a weekday, a unit of time, "ago",
  "yesterday", "ieri"… (dateparser's own names for the configured languages, of three
  letters or more). dateparser reads articles and number words as numbers ("they offer
  a a bunch" → 1 January, "one one"); without either, nothing fires. Checking this first
  also spares most messages the parse (~3 ms of pure Python).
- A structural key (``ticket-000250``, ``goat:l2:chat.42``) is an identifier, not a date:
  it is blanked out before anything else, so a message naming only a key is not parsed,
  and a key's digits are not read into a phrase beside it ("chat.42 on 3 March" is not 1942).
- A bare quantity of time is a duration, not a date: "I worked 3 days on it",
  Romanian "mai am 3 zile" ("I have 3 days left") do not fire; "3 days ago",
  "acum 3 zile" do. (Judged on dateparser's own translation of the phrase.)
- Only completed past ranges count: each phrase's range must end before ``now``,
  so "today", "now", "a second", "tomorrow", "next week" never fire. Phrases that
  are not completed past are dropped, not allowed to veto the others ("now tell me
  what we said yesterday" is about yesterday).
- Whatever a message holds, what it costs is bounded: its words within the first 500
  characters are read, up to its 8th number or date word (dateparser spends milliseconds on
  each); a phrase the limit falls in is left out whole.

Ranges are whole days in ``now``'s time zone. A phrase dateparser resolves to a
week, month or year ("last week", "luna trecută", "last year") covers that whole
calendar period (weeks run Monday–Sunday). Several phrases → from the earliest
start to the latest end.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from dateparser.conf import Settings
from dateparser.languages.loader import default_loader
from dateparser.search import search_dates

from memory.retrieval.message.keys import without_keys
from memory.retrieval.message.named_periods import (
    PERIOD_WORDS, SINCE, before_today, bounding_phrases, named_periods, periods_before_parsing)
from memory.words import terms

# Constant for every call; only RELATIVE_BASE changes, so it is swapped into a
# copy of this (a cheap attribute copy) instead of re-validating a settings dict.
_BASE_SETTINGS = Settings().replace(
    PREFER_DATES_FROM="past",
    REQUIRE_PARTS=["day"],
    # No unix timestamps from plain numbers.
    PARSERS=["relative-time", "absolute-time"],
    # RELATIVE_BASE is `now`'s naive wall-clock time; keep the host's zone out of it.
    TIMEZONE="UTC",
    RETURN_AS_TIMEZONE_AWARE=False,
)

# A message names the moment it takes stock at once or twice; each bound read costs a parse, and a
# message of nothing but bounds ("by 1, by 1, …") would cost hundreds.
_BOUNDS_READ = 3

# What a message costs the reader is bounded, whatever it holds. dateparser tries each number and date
# word (a cue) with its neighbours, 1-4 ms a cue: 2 000 characters of numbers took it 0.9-1.8 s. The reader
# reads a message's words within its first 500 characters (its patterns cost ~2 ms a thousand), up to its
# 8th cue, and hands dateparser each cue once. A question naming a date holds fewer ("last Friday on 23
# January, 2022 at 10:30": 7); of 9 197 LoCoMo, LoCoMo-Plus and REALTALK messages, one is read otherwise
# (its date is past its 500th character).
_CHARS_READ = 500
_CUES_READ = 8
_WORD_RUN = re.compile(r"\S+")
_DIGIT_RUN = re.compile(r"\d+")

# Where a range bounded only by its end starts: before any chat's first entry (a day after the
# epoch, so that its timestamp is positive in every time zone).
EVER = date(1970, 1, 2)

# Phrases dateparser's locales miss or misread, rewritten to one it parses: a Romanian word, and
# English phrases it reads as yesterday ("the day before yesterday") or not at all ("3 weeks back").
_MISSING_WORDS = (
    (re.compile(r"\balalt[ăa]ieri\b", re.IGNORECASE), "acum 2 zile"),
    (re.compile(r"\bthe\s+(?:day|night)\s+before\s+(?:yesterday|last)\b", re.IGNORECASE), "2 days ago"),
    (re.compile(r"\b(\w+\s+(?:day|week|month|year)s?)\s+back\b", re.IGNORECASE), r"\1 ago"),
)

# Runs of numbers joined by date separators: "12.03.2025", "2+2", "10-12".
_NUMBER_RUN = re.compile(r"\d+(?:[-/.+]\d+)*")
_DATE_SEPARATOR = re.compile(r"[-/.+]")
_JOINING_WORDS = re.compile(r"\b(?:and|or|to|of|the|through|till|until)\b", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")
# In dateparser's English translation of a phrase: "3 zile" -> "3 day", "acum 3 zile" -> "3 day ago".
_TIME_QUANTITY = re.compile(r"\b\d+(?:[.,]\d+)? (?:decade|year|month|week|day|hour|minute|second)\b")
_DIRECTION = re.compile(r"\b(?:ago|in)\b")

# dateparser's locale entries naming dates: months, weekdays, units of time, "ago", "in".
_DATE_NAME_ENTRIES = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "century", "decade", "fortnight", "year", "month", "week", "day", "hour", "minute", "second",
    "ago", "in",
)
# Shorter names ("we" Wednesday, "mo" month, Romanian "an" year) are common words, and
# name a date only beside a digit or a longer date word.
_DATE_WORD_MIN_LETTERS = 3


def completed_past_range(
    text: str, now: datetime, languages: Sequence[str] = ("en", "ro")
) -> tuple[datetime, datetime] | None:
    """The completed past range ``text`` names, as aware datetimes in ``now``'s zone, or None.

    Args:
        text: a message; its start only is read (see ``_CHARS_READ``, ``_CUES_READ``).
        now: the moment the message is read at, timezone-aware (a ``zoneinfo`` zone or a fixed offset).
        languages: the languages dateparser reads ``text`` in; the named periods are English.

    Returns:
        From 00:00 of the first day to 23:59:59.999999 of the last day; None when ``text`` names
        no period that ended before ``now`` (or one that ends before it starts).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    text = _part_read(text, languages)
    if not may_name_a_date(text, languages):
        return None
    text = without_keys(text)
    if "en" in languages:
        bounded, text = _bounded_range(text, now, languages)
        if bounded:  # none if it would end before it starts ("as of March 1950": before any chat's first entry)
            return _hull([bounded], now)
    return _period_range(text, now, languages)


def _part_read(text: str, languages: Sequence[str]) -> str:
    """The words of ``text`` the reader reads: those within its first ``_CHARS_READ`` characters, up to
    its ``_CUES_READ``-th cue (a run of digits or a date word; a structural key's digits count). Where
    it stops, a phrase under way (cue words at most a word apart) is left out whole: "5 June" of
    "on 5 June 1990" would be another day."""
    date_words, cues, phrase_start, words_since_cue = _date_words(tuple(languages)), 0, 0, 2
    for word in _WORD_RUN.finditer(text[:_CHARS_READ + 1]):  # one more: a word the limit cuts is not read
        found = len(_DIGIT_RUN.findall(word[0])) + sum(term in date_words for term in terms(word[0]))
        if found and words_since_cue > 1:
            phrase_start = word.start()
        words_since_cue = 0 if found else words_since_cue + 1
        cues += found
        if cues > _CUES_READ or word.end() > _CHARS_READ:
            return text[:phrase_start if words_since_cue <= 1 else word.start()]
    return text[:_CHARS_READ]


def _period_range(text: str, now: datetime, languages: Sequence[str],
                  parse: bool = True) -> tuple[datetime, datetime] | None:
    """The completed past range the periods ``text`` (without its keys) names make, bounds aside;
    without ``parse``, only those the named periods' readers read (English)."""
    # What dateparser reads in part or not at all ("late last year", "the past two weeks") first.
    read_first, text = periods_before_parsing(text, now.date()) if "en" in languages else ([], text)
    found = search_dates(
        _rewrite_missing_words(text),
        languages=list(languages),
        settings=_BASE_SETTINGS.replace(RELATIVE_BASE=now.replace(tzinfo=None)),
        add_period=True,
        add_detected_language=True,
    ) if parse and may_name_a_date(text, languages) else None
    ranges = [
        _day_bounds(*_period_days(found_at.date(), period), now)
        for phrase, found_at, period, language in found or ()
        if _is_complete_numeric(phrase) and not _is_bare_duration(phrase, language)
    ]
    if not ranges and "en" in languages:  # the periods dateparser leaves out ("during March", "last spring")
        ranges = [_day_bounds(first, last, now) for first, last in named_periods(text, now.date())]
    return _hull([_day_bounds(first, last, now) for first, last in read_first] + ranges, now)


def _bounded_range(text: str, now: datetime,
                   languages: Sequence[str]) -> tuple[tuple[datetime, datetime] | None, str]:
    """The range a bounded period makes in ``text`` (without its keys): "as of September 2023",
    every day up to its end; "since March", from its first day to yesterday. None when no bound
    names a completed past period; and ``text`` without the bounds' phrases that name none (read
    already: the rest of the message is read without them)."""
    unread = text
    for bound, phrase in bounding_phrases(text)[:_BOUNDS_READ]:
        # A bare month or year is a period after a bound as after "in" ("since March", "as of 2023"): the named
        # periods' readers read it so, dateparser (which has just read the phrase) does not.
        period = _period_range(phrase, now, languages) or _period_range(f"in {phrase}", now, languages, parse=False)
        if period is None:
            unread = unread.replace(phrase, " ", 1)
            continue
        first, last = (day.date() for day in period)
        bounded = completed_past_days(first, now.date(), now) if bound == SINCE else _day_bounds(EVER, last, now)
        return bounded, unread
    return None, unread


def _hull(ranges: list[tuple[datetime, datetime]], now: datetime) -> tuple[datetime, datetime] | None:
    """From the first start to the last end of the ranges that end before ``now`` and not before they
    start; None without any."""
    past = [(start, end) for start, end in ranges if start <= end < now]
    if not past:
        return None
    return min(start for start, _ in past), max(end for _, end in past)


def warm_up(languages: Sequence[str] = ("en", "ro")) -> None:
    """Load dateparser's language data now: the first call costs ~250 ms, later ones a few ms."""
    _date_words(tuple(languages))
    now = datetime.now().astimezone()
    for sample in ("3 days ago, on 3 March", "acum 3 zile, pe 3 martie"):
        completed_past_range(sample, now, languages)


def may_name_a_date(text: str, languages: Sequence[str] = ("en", "ro")) -> bool:
    """Whether ``text`` holds a digit or a date word of these languages: what every phrase
    :func:`completed_past_range` accepts holds, outside its structural keys (checked in
    microseconds, before parsing)."""
    text = _rewrite_missing_words(without_keys(text))
    if any(char.isdigit() for char in text):
        return True
    words = _date_words(tuple(languages))
    return any(word in words for word in terms(text))


@lru_cache(maxsize=8)
def _date_words(languages: tuple[str, ...]) -> frozenset[str]:
    """The words of dateparser's date names and relative phrases ("last week", "luna
    trecută") for these languages, folded as the word index folds them ("Săptămâna" →
    "saptamana"), minus the filler words dateparser skips; with English, the named periods' own
    words too ("summer", "weekend": :mod:`memory.retrieval.message.named_periods`)."""
    names: list[str] = list(PERIOD_WORDS) if "en" in languages else []
    skipped: set[str] = set()
    for language in languages:
        info = default_loader.get_locale(language).info
        names += [name for entry in _DATE_NAME_ENTRIES for name in info.get(entry, ())]
        for meaning, phrases in info.get("relative-type", {}).items():
            names += [meaning, *phrases]
        skipped |= {word for skip in info.get("skip", ()) for word in terms(skip)}
    words = {word for name in names for word in terms(name)} - skipped
    return frozenset(word for word in words if len(word) >= _DATE_WORD_MIN_LETTERS and word.isalpha())


def _rewrite_missing_words(text: str) -> str:
    for pattern, replacement in _MISSING_WORDS:
        text = pattern.sub(replacement, text)
    return text


def _is_complete_numeric(phrase: str) -> bool:
    """False for a phrase holding an incomplete all-digit date, e.g. "3/12", "2+2", or numbers
    joined by words ("between 3 and 5 people": dateparser reads 5 March)."""
    if not _LETTER.search(_JOINING_WORDS.sub(" ", phrase)):
        numbers = re.findall(r"\d+", phrase)
        return len(numbers) == 3 and any(len(number) == 4 for number in numbers)
    for run in _NUMBER_RUN.findall(phrase):
        numbers = _DATE_SEPARATOR.split(run)
        complete = len(numbers) == 3 and any(len(number) == 4 for number in numbers)
        if len(numbers) > 1 and not complete:
            return False
    return True


def _is_bare_duration(phrase: str, language: str) -> bool:
    translated = default_loader.get_locale(language).translate(phrase, settings=_BASE_SETTINGS)
    return bool(_TIME_QUANTITY.search(translated)) and not _DIRECTION.search(translated)


def _period_days(day: date, period: str | None) -> tuple[date, date]:
    """First and last day of the calendar period ``day`` stands for."""
    if period == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=6)
    if period == "month":
        return day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])
    if period == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    return day, day


def completed_past_days(first: date, last: date, now: datetime) -> tuple[datetime, datetime] | None:
    """The days ``first``…``last`` as a completed past range (as :func:`completed_past_range`
    returns one): cut at yesterday's end, in ``now``'s zone; None when they start today or later."""
    days = before_today(first, last, now.date())
    return None if days is None else _day_bounds(*days, now)


def _day_bounds(first: date, last: date, now: datetime) -> tuple[datetime, datetime]:
    return datetime.combine(first, time.min, now.tzinfo), datetime.combine(last, time.max, now.tzinfo)
