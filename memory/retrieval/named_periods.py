"""The periods people name in English that ``dateparser`` leaves out, as whole days.

dateparser dates a day ("on 16 March", "yesterday") and a calendar period it resolves itself
("last week", "last month"); it needs a day for an absolute date, so a bare month or year is
not one to it ("I may come", "page 2024"). Named with a preposition or a part, these are
periods all the same, and a question about them is about their days:

- a month or a year after "in", "during", "throughout", "for", "of", "over", "across", "from"
  ("during March", "in 2022", "in March 2023", "March 2023");
- a part of a month: "early", "mid", "late", "the beginning / start / middle / end of" a month;
  of a year: "early / mid / late 2023" (its first, middle or last four months);
- "the first / second / third / fourth / last week / weekend of (or in)" a month;
- a season: "last spring", "in the summer (of 2023)", "over the winter" (the northern
  hemisphere's: spring March–May, summer June–August, autumn September–November, winter
  December–February);
- a weekend: "last weekend", "this past weekend", "over the weekend";
- a weekday: "on Monday", "last Friday"; "the week before last", "the weekend before last";
- a holiday: "at Christmas", "on New Year's Eve", "on Valentine's Day", "at Halloween" (its day or
  days; "around" it: three days either side);
- a span of months: "between May and July 2023", "from March to June" (:func:`spans_of_months`,
  which win over the days a parser reads in them: "between May and July 2023" is not July).

A period can also bound what a question is about instead of being it (:func:`bounding_phrases`):
"as of", "by", "until" or "up to" a period take stock at its end ("How many pets did he have, as
of September 2023?" bears on every adoption before October), and "since" a period counts from
its start.

A period named without its year is its latest one begun before today; only days before today
count (the range is cut at yesterday's end), as a completed past range must be.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import date, timedelta

_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS |= {name[:3].lower(): number for name, number in list(_MONTHS.items())} | {"sept": 9}
_WEEKDAYS = {name.lower(): number for number, name in enumerate(calendar.day_name)}
_SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}  # first month; three months each
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3, "last": -1}
# A holiday's (month, first day, last day); fixed dates only (Easter's moves).
_HOLIDAYS = {"christmas eve": (12, 24, 24), "christmas": (12, 24, 26), "new year's eve": (12, 31, 31),
             "new year's day": (1, 1, 1), "valentine's day": (2, 14, 14), "halloween": (10, 31, 31)}
_AROUND_DAYS = 3
_PARTS = {"early": (1, 10), "beginning of": (1, 10), "start of": (1, 10), "mid": (11, 20), "middle of": (11, 20),
          "late": (21, 31), "end of": (21, 31)}

_MONTH = "(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_OF_YEAR = rf"(?:,?\s+(?:of\s+)?{_YEAR})?"
_PERIOD_PREPOSITION = r"(?:in|during|throughout|for|of|over|across|from)"
# "16 March" or "March 16" is a day, dateparser's: a month beside a day number is none of these.
_NOT_A_DAY_BEFORE = r"(?<!\d\s)(?<!\d)"
_NOT_A_DAY_AFTER = r"(?!\s*\d{1,2}(?:st|nd|rd|th)?\b(?!\d))"

# The most specific first: a phrase one of them took ("the first weekend of August") is not read
# again by a wider one ("of August").
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [(kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in [
    ("part", rf"\b(?:the\s+)?(?P<part>early|mid|late|(?:beginning|start|middle|end)\s+of)[\s-]+{_MONTH}"
             rf"{_NOT_A_DAY_AFTER}{_OF_YEAR}\b"),
    ("year_part", rf"\b(?P<part>early|mid|late)[\s-]+{_YEAR}\b"),
    ("nth", rf"\b(?:the\s+)?(?P<nth>first|1st|second|2nd|third|3rd|fourth|4th|last)\s+(?P<unit>week|weekend)\s+"
            rf"(?:of|in)\s+{_MONTH}{_OF_YEAR}\b"),
    ("season", rf"\b(?P<which>last|this\s+past|past|in\s+the|during\s+the|over\s+the|throughout\s+the|this)\s+"
               rf"(?P<season>spring|summer|autumn|fall|winter){_OF_YEAR}\b"),
    ("weekend", r"\b(?:last|this\s+past|past|over\s+the|on\s+the)\s+weekend\b"),
    ("weekday", r"\b(?:on|last|this\s+past|past)\s+(?P<weekday>monday|tuesday|wednesday|thursday|friday|saturday|"
                r"sunday)\b"),
    ("week_before_last", r"\bthe\s+week\s+before\s+last\b"),
    ("weekend_before_last", r"\bthe\s+weekend\s+before\s+last\b"),
    ("holiday", r"\b(?P<around>around|at|on|over|during)\s+(?:the\s+)?(?P<holiday>"
                + "|".join(name.replace(" ", r"\s+").replace("'", "[’']?")
                           for name in sorted(_HOLIDAYS, key=len, reverse=True)) + r")\b"),
    ("month", rf"\b{_PERIOD_PREPOSITION}\s+(?:the\s+month\s+of\s+)?{_NOT_A_DAY_BEFORE}{_MONTH}{_NOT_A_DAY_AFTER}"
              rf"{_OF_YEAR}\b"),
    ("month", rf"{_NOT_A_DAY_BEFORE}\b{_MONTH}\s+{_YEAR}\b"),
    ("year", rf"\b{_PERIOD_PREPOSITION}\s+(?:the\s+year\s+)?{_YEAR}\b"),
]]

# The words of these periods that are not dateparser's date words (months, weekdays, "week" are):
# for the check that a message may name a date at all.
PERIOD_WORDS = frozenset({*_SEASONS, "weekend", "christmas", "valentine", "halloween"})

_SPAN = re.compile(
    rf"\b(?:between|from)\s+{_MONTH.replace('month', 'first')}(?:,?\s+(?P<first_year>(?:19|20)\d\d))?\s+"
    rf"(?:and|to|until|till|through)\s+{_MONTH.replace('month', 'last')}{_NOT_A_DAY_AFTER}{_OF_YEAR}\b",
    re.IGNORECASE)


# A bound before a date phrase: the phrase must follow at once ("by the way" bounds nothing).
_DATE_START = "|".join(["end", "beginning", "start", "middle", "early", "mid", "late", "last", "this", "past",
                        "yesterday", *_MONTHS, *_WEEKDAYS, *_SEASONS, *(name.split()[0] for name in _HOLIDAYS)])
_BOUND = re.compile(rf"\b(?P<bound>as\s+of|by|until|till|up\s+(?:un)?til|up\s+to|since)\s+"
                    rf"(?P<period>(?:the\s+)?(?:\d|(?:{_DATE_START})\b)[^,;:?!\n]*)", re.IGNORECASE)
UNTIL, SINCE = "until", "since"


def bounding_phrases(text: str) -> list[tuple[str, str]]:
    """The periods ``text`` names as a bound: (UNTIL, phrase) for "as of", "by", "until", "till"
    and "up to", (SINCE, phrase) for "since"; the phrase runs from the date word to the clause's
    end ("as of December 2023, how many…" → (UNTIL, "December 2023")).

    Args:
        text: a message (English).

    Returns:
        Each bound found, in the text's order, with the words naming its period.
    """
    return [(SINCE if match["bound"].lower() == "since" else UNTIL, match["period"]) for match in _BOUND.finditer(text)]


def spans_of_months(text: str, today: date) -> list[tuple[date, date]]:
    """The spans of months ``text`` names ("between May and July 2023", "from March to June"),
    from the first month's first day to the last's last day, cut at yesterday.

    Args:
        text: a message (English).
        today: the message's day, in the users' time zone.

    Returns:
        Each span found that starts before today, as (first day, last day).
    """
    found = []
    for match in _SPAN.finditer(text):
        last_year = int(match["year"]) if match["year"] else None
        first_month, last_month = _MONTHS[match["first"].lower()], _MONTHS[match["last"].lower()]
        _, last = _month(last_month, last_year, today)
        first_year = int(match["first_year"]) if match["first_year"] else last.year - (first_month > last_month)
        first = date(first_year, first_month, 1)
        if first <= last and (days := before_today(first, last, today)):
            found.append(days)
    return found


def before_today(first: date, last: date, today: date) -> tuple[date, date] | None:
    """The days of ``first``…``last`` before ``today`` (cut at yesterday), as a completed past
    period must be; None when it starts today or later."""
    yesterday = today - timedelta(days=1)
    return (first, min(last, yesterday)) if first <= yesterday else None


def named_periods(text: str, today: date) -> list[tuple[date, date]]:
    """The periods ``text`` names that end before ``today``, as (first day, last day).

    Args:
        text: a message (English).
        today: the message's day, in the users' time zone.

    Returns:
        Each period found, cut at yesterday; none that starts today or later.
    """
    found, taken = [], []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            taken.append(match.span())
            found += filter(None, (before_today(first, last, today) for first, last in _days(kind, match, today)))
    return found


def _days(kind: str, match: re.Match[str], today: date) -> Iterator[tuple[date, date]]:
    named = match.groupdict()
    year = int(named["year"]) if named.get("year") else None
    if kind == "year":
        yield date(year, 1, 1), date(year, 12, 31)
    elif kind == "year_part":  # its first, middle or last four months
        first_month = {"early": 1, "mid": 5, "late": 9}[named["part"].lower()]
        yield date(year, first_month, 1), date(year, first_month + 3, calendar.monthrange(year, first_month + 3)[1])
    elif kind in ("month", "part", "nth"):
        first, last = _month(_MONTHS[named["month"].lower()], year, today)
        if kind == "part":
            start, end = _PARTS[re.sub(r"\s+", " ", named["part"].lower())]
            yield first.replace(day=start), last.replace(day=min(end, last.day))
        elif kind == "nth":
            yield _nth(first, last, _ORDINALS[named["nth"].lower()], named["unit"].lower())
        else:
            yield first, last
    elif kind == "season":
        yield _season(named["season"].lower(), year, today, named["which"].lower().startswith(("last", "past")))
    elif kind == "weekend":
        saturday = today - timedelta(days=(today.weekday() - 5) % 7 or 7)
        yield saturday, saturday + timedelta(days=1)
    elif kind == "weekday":
        day = today - timedelta(days=(today.weekday() - _WEEKDAYS[named["weekday"].lower()]) % 7 or 7)
        yield day, day
    elif kind == "weekend_before_last":
        saturday = today - timedelta(days=((today.weekday() - 5) % 7 or 7) + 7)
        yield saturday, saturday + timedelta(days=1)
    elif kind == "holiday":
        yield _holiday(_holiday_name(named["holiday"]), today, _AROUND_DAYS if named["around"].lower() == "around" else 0)
    else:  # the week before last: the calendar week (Monday to Sunday) two weeks back
        monday = today - timedelta(days=today.weekday() + 14)
        yield monday, monday + timedelta(days=6)


def _month(number: int, year: int | None, today: date) -> tuple[date, date]:
    """A month's first and last day: of ``year``, else its latest begun before today."""
    if year is None:
        year = today.year if (number, 1) < (today.month, today.day) else today.year - 1
    return date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1])


def _nth(first: date, last: date, ordinal: int, unit: str) -> tuple[date, date]:
    """The month's n-th (or last) week (seven days from the 1st, 8th…) or weekend (Saturday, Sunday)."""
    if unit == "week":
        start = last - timedelta(days=6) if ordinal < 0 else first + timedelta(days=7 * ordinal)
        return start, start + timedelta(days=6)
    saturdays = [day for day in (first + timedelta(days=n) for n in range(last.day)) if day.weekday() == 5]
    saturday = saturdays[ordinal]
    return saturday, saturday + timedelta(days=1)


def _season(name: str, year: int | None, today: date, before_this_one: bool) -> tuple[date, date]:
    """A season's days: of ``year`` (a winter: the one that begins in December of it), else its
    latest begun before today (with "last", the one before a season under way)."""
    start_month = _SEASONS[name]
    if year is None:
        year = today.year if date(today.year, start_month, 1) <= today else today.year - 1
        under_way = date(year, start_month, 1) <= today <= _season_end(year, start_month)
        year -= under_way and before_this_one
    return date(year, start_month, 1), _season_end(year, start_month)


def _season_end(year: int, start_month: int) -> date:
    end_year, end_month = (year + 1, 2) if start_month == 12 else (year, start_month + 2)
    return date(end_year, end_month, calendar.monthrange(end_year, end_month)[1])


def _holiday_name(written: str) -> str:
    """The holiday's key in ``_HOLIDAYS``, however its spaces and apostrophe were written ("New Years Eve")."""
    folded = re.sub(r"\s+", " ", written.lower().replace("’", "'"))
    return next(name for name in _HOLIDAYS if name.replace("'", "") == folded.replace("'", ""))


def _holiday(name: str, today: date, around: int) -> tuple[date, date]:
    """A holiday's days (widened by ``around`` days either side), its latest begun before today."""
    month, first_day, last_day = _HOLIDAYS[name]
    year = today.year if date(today.year, month, first_day) - timedelta(days=around) < today else today.year - 1
    return (date(year, month, first_day) - timedelta(days=around),
            date(year, month, last_day) + timedelta(days=around))
