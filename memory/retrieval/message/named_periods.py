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
- a holiday: "at Christmas", "last Christmas", "on New Year's Eve", "on Valentine's Day", "at Halloween"
  (its day or days; "around" it: three days either side);
Some phrases a parser reads only in part ("late last year" is not the whole of last year) or not
at all are read before it (:func:`periods_before_parsing`), which then reads the rest:

- a span of days, its year written once: "between August 11 and August 15 2023", "from 3 to 5 March";
- a span of months: "between May and July 2023", "from March to June", "in March or April";
- the days up to yesterday: "the past few days", "the last two weeks", "over the past 3 months",
  "the past year"; "earlier this week / month / year", "so far this year";
- a part of a year named from this one: "late last year", "the start of the year", "towards the
  end of last year"; a half: "the first half of 2025", "the second half of March"; a quarter:
  "Q3 2025", "the first quarter of last year";
- a season named from this year: "the spring of last year", "the summer before last", "two
  winters ago"; a month: "last March", "this past January" (a month under way is not its last);
- "a few / a couple of / several days (weeks…) ago": the unit before and after that many;
- "the week of March 6" (its Monday to Sunday).

A period can also bound what a question is about instead of being it (:func:`bounding_phrases`):
"as of", "by", "until" or "up to" a period take stock at its end ("How many pets did he have, as
of September 2023?" bears on every adoption before October), and "since" a period counts from
its start.

A period named without its year is its latest one begun before today; only days before today
count (the range is cut at yesterday's end), as a completed past range must be. A day its month
does not have ("the week of March 0", "the 31st of April", 29 February 2025) names no period.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import date, timedelta

from memory.retrieval.message.event_dates import COUNTS, count_of, count_pattern

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
# "16 March", "the 16th of March" or "March 16" is a day, dateparser's: a month beside a day number is none of
# these (nor, when the day is not in the month, "the 31st of April", any period).
_NOT_A_DAY_BEFORE = r"(?<!\d\s)(?<!\d)(?<!\d(?:st|nd|rd|th)\s)(?<!\d\sof\s)(?<!\d(?:st|nd|rd|th)\sof\s)"
_NOT_A_DAY_AFTER = r"(?!\s*\d{1,2}(?:st|nd|rd|th)?\b(?!\d))"
_COUNTS = {**COUNTS, "twelve": 12, "couple of": 2, "few": 3, "several": 3}
_COUNT = count_pattern(_COUNTS)
_UNIT = r"(?P<unit>day|week|month|year)s?"
# "for the last two years" is how long something lasted, not a period asked about.
_NOT_A_DURATION = r"(?<!\bfor\s)(?<!\bfor\sthe\s)"
# A year named from this one ("last year", "this year", "the year") or by its number.
_WHICH_YEAR = rf"(?:(?:the\s+)?(?P<rel>last|this|past|the)\s+year|{_YEAR})"
_YEAR_PARTS = {"early": 1, "beginning of": 1, "start of": 1, "mid": 5, "middle of": 5, "late": 9, "end of": 9,
               "towards the end of": 9, "toward the end of": 9}  # first month of its four
_QUARTERS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": 4}

# Read before dateparser, which reads them in part ("late last year" as last year) or not at all.
_BEFORE_PARSING: list[tuple[str, re.Pattern[str]]] = [(kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in [
    ("span", rf"\b(?:between|from|in|during)\s+{_MONTH.replace('month', 'first')}"
             rf"(?:,?\s+(?P<first_year>(?:19|20)\d\d))?\s+(?:and|to|until|till|through|or)\s+"
             rf"{_MONTH.replace('month', 'last')}{_NOT_A_DAY_AFTER}{_OF_YEAR}\b"),
    ("day_span", rf"\b(?:between|from)\s+{_MONTH.replace('month', 'first')}\s+(?P<first_day>\d{{1,2}})(?:st|nd|rd|th)?"
                 rf"(?:,?\s+(?P<first_year>(?:19|20)\d\d))?\s+(?:and|to|until|till|through)\s+"
                 rf"(?:{_MONTH.replace('month', 'last')}\s+)?(?P<last_day>\d{{1,2}})(?:st|nd|rd|th)?\b{_OF_YEAR}"),
    ("day_span", rf"\b(?:between|from)\s+(?:the\s+)?(?P<first_day>\d{{1,2}})(?:st|nd|rd|th)?"
                 rf"(?:\s+(?:of\s+)?{_MONTH.replace('month', 'first')}(?:,?\s+(?P<first_year>(?:19|20)\d\d))?)?\s+"
                 rf"(?:and|to|until|till|through)\s+(?:the\s+)?(?P<last_day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?"
                 rf"{_MONTH.replace('month', 'last')}{_OF_YEAR}\b"),
    ("up_to_yesterday", rf"{_NOT_A_DURATION}\b(?:the\s+)?(?:past|last|previous)\s+{_COUNT}\s+{_UNIT}\b"),
    ("up_to_yesterday", rf"{_NOT_A_DURATION}\b(?:the\s+)?(?:past|previous)\s+{_UNIT}\b"),
    ("so_far", r"\b(?:earlier|so\s+far)\s+this\s+(?P<unit>week|month|year)\b"),
    ("so_far", r"\bthis\s+(?P<unit>week|month|year)\s+so\s+far\b"),
    ("year_part", rf"\b(?:the\s+)?(?P<part>early|mid|late|(?:beginning|start|middle|end)\s+of|"
                  rf"towards?\s+the\s+end\s+of)[\s-]+(?:(?:the\s+)?(?:(?P<rel>last|this|past)\s+)?year|{_YEAR})\b"),
    ("month_part", r"\b(?:the\s+)?(?P<part>early|mid|late|(?:beginning|start|middle|end)\s+of)[\s-]+"
                   r"(?:the\s+|this\s+|(?P<rel>last)\s+)?month\b"),
    ("half", rf"\b(?:the\s+)?(?P<half>first|second)\s+half\s+of\s+{_WHICH_YEAR}\b"),
    ("half_month", rf"\b(?:the\s+)?(?P<half>first|second)\s+half\s+of\s+{_MONTH}{_NOT_A_DAY_AFTER}{_OF_YEAR}\b"),
    ("quarter", rf"\b(?:q(?P<q>[1-4])|(?:the\s+)?(?P<nth>first|second|third|fourth|last)\s+quarter\s+of)\s+"
                rf"{_WHICH_YEAR}\b"),
    ("season_from_this_year", r"\b(?P<season>spring|summer|autumn|fall|winter)\s+(?:of\s+(?P<rel>last|this)\s+year|"
                              r"(?P<before_last>before\s+last))\b"),
    ("seasons_ago", r"\b(?P<count>two|three|2|3)\s+(?P<season>spring|summer|autumn|fall|winter)s\s+ago\b"),
    ("last_month_named", rf"\b(?:last|this\s+past|past)\s+{_MONTH}{_NOT_A_DAY_AFTER}\b"),
    ("about_ago", rf"\b(?P<count>a\s+few|a\s+couple\s+of|couple\s+of|few|several)\s+{_UNIT}\s+(?:ago|back)\b"),
    ("week_of", rf"\bthe\s+week\s+of\s+{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b{_OF_YEAR}"),
    ("week_of", rf"\bthe\s+week\s+of\s+(?:the\s+)?(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}{_OF_YEAR}"),
]]

# The most specific first: a phrase one of them took ("the first weekend of August") is not read
# again by a wider one ("of August").
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [(kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in [
    ("part", rf"\b(?:the\s+)?(?P<part>early|mid|late|(?:beginning|start|middle|end)\s+of)[\s-]+{_MONTH}"
             rf"{_NOT_A_DAY_AFTER}{_OF_YEAR}\b"),
    ("nth", rf"\b(?:the\s+)?(?P<nth>first|1st|second|2nd|third|3rd|fourth|4th|last)\s+(?P<unit>week|weekend)\s+"
            rf"(?:of|in)\s+{_MONTH}{_OF_YEAR}\b"),
    ("season", rf"\b(?P<which>last|this\s+past|past|in\s+the|during\s+the|over\s+the|throughout\s+the|this)\s+"
               rf"(?P<season>spring|summer|autumn|fall|winter){_OF_YEAR}\b"),
    ("weekend", r"\b(?:last|this\s+past|past|over\s+the|on\s+the)\s+weekend\b"),
    ("weekday", r"\b(?:on|last|this\s+past|past)\s+(?P<weekday>monday|tuesday|wednesday|thursday|friday|saturday|"
                r"sunday)\b"),
    ("week_before_last", r"\bthe\s+week\s+before\s+last\b"),
    ("weekend_before_last", r"\bthe\s+weekend\s+before\s+last\b"),
    ("holiday", r"\b(?P<around>around|at|on|over|during|last)\s+(?:the\s+)?(?P<holiday>"
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


# A bound before a date phrase: the phrase must follow at once ("by the way" bounds nothing), and
# is read up to the clause's end, 60 characters at most (a period's words are few).
_DATE_START = "|".join(["end", "beginning", "start", "middle", "early", "mid", "late", "last", "this", "past",
                        "yesterday", *_MONTHS, *_WEEKDAYS, *_SEASONS, *(name.split()[0] for name in _HOLIDAYS)])
_BOUND = re.compile(rf"\b(?P<bound>as\s+of|by|until|till|up\s+(?:un)?til|up\s+to|since)\s+"
                    rf"(?P<period>(?:the\s+)?(?:\d|(?:{_DATE_START})\b)[^,;:?!\n]{{0,60}})", re.IGNORECASE)
UNTIL, SINCE = "until", "since"


def bounding_phrases(text: str) -> list[tuple[str, str]]:
    """The periods ``text`` names as a bound: (UNTIL, phrase) for "as of", "by", "until", "till"
    and "up to", (SINCE, phrase) for "since"; the phrase runs from the date word to the clause's
    end, 60 characters at most ("as of December 2023, how many…" → (UNTIL, "December 2023")).

    Args:
        text: a message (English).

    Returns:
        Each bound found, in the text's order, with the words naming its period.
    """
    return [(SINCE if match["bound"].lower() == "since" else UNTIL, match["period"]) for match in _BOUND.finditer(text)]


def periods_before_parsing(text: str, today: date) -> tuple[list[tuple[date, date]], str]:
    """The periods ``text`` names that a parser would read in part or not at all (the module's
    second list), cut at yesterday, and the text left for the parser.

    Args:
        text: a message (English).
        today: the message's day, in the users' time zone.

    Returns:
        Each period found that starts before today, as (first day, last day); and ``text`` with
        the phrases naming them blanked out.
    """
    found, taken = _read(_BEFORE_PARSING, text, today)
    for start, end in sorted(taken, reverse=True):
        text = f"{text[:start]} {text[end:]}"
    return found, text


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
    return _read(_PATTERNS, text, today)[0]


def _read(patterns: list[tuple[str, re.Pattern[str]]], text: str,
          today: date) -> tuple[list[tuple[date, date]], list[tuple[int, int]]]:
    """The periods the patterns find in ``text`` (each phrase read by the first pattern taking
    it), cut at yesterday, and where the phrases stand."""
    found: list[tuple[date, date]] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in patterns:
        for match in pattern.finditer(text):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            taken.append(match.span())
            found += filter(None, (before_today(first, last, today) for first, last in _days(kind, match, today)))
    return found, taken


def _days(kind: str, match: re.Match[str], today: date) -> Iterator[tuple[date, date]]:
    named = match.groupdict()
    if kind in _DAYS_READ_FIRST:  # _BEFORE_PARSING's kinds: one period each, or None
        yield from filter(None, [_DAYS_READ_FIRST[kind](named, today)])
        return
    year = int(named["year"]) if named.get("year") else None
    if kind == "year":
        yield date(year, 1, 1), date(year, 12, 31)
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


def _calendar_day(year: int, month: int, day: int) -> date | None:
    """The date of a day number read from a message, or None when its month has no such day (the 0th, the 32nd,
    30 February, 29 February of a year not a leap year): every reader building a day from its numbers asks here."""
    return date(year, month, day) if 1 <= day <= calendar.monthrange(year, month)[1] else None


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


# ---- the periods read before dateparser (_BEFORE_PARSING), by kind --------------------------------------------

def _count(named: dict[str, str | None]) -> int:
    return count_of(named.get("count") or "1", _COUNTS)


def _units_back(today: date, unit: str, count: int) -> date:
    """The day ``count`` days, weeks, calendar months or years before ``today``."""
    if unit in ("day", "week"):
        return today - timedelta(days=count * (7 if unit == "week" else 1))
    months = today.year * 12 + today.month - 1 - count * (12 if unit == "year" else 1)
    year, month = divmod(months, 12)
    return date(year, month + 1, min(today.day, calendar.monthrange(year, month + 1)[1]))


def _span(named: dict, today: date) -> tuple[date, date] | None:
    """From the first month's first day to the last's last day ("between May and July 2023")."""
    first_month, last_month = _MONTHS[named["first"].lower()], _MONTHS[named["last"].lower()]
    _, last = _month(last_month, int(named["year"]) if named["year"] else None, today)
    first_year = int(named["first_year"]) if named["first_year"] else last.year - (first_month > last_month)
    first = date(first_year, first_month, 1)
    return (first, last) if first <= last else None


def _day_span(named: dict, today: date) -> tuple[date, date] | None:
    """From one day to another, the year written once for both ("between August 11 and August 15
    2023", "from 3 to 5 March"); None when a day is not in its month."""
    last_month = _MONTHS[(named["last"] or named["first"]).lower()]
    first_month = _MONTHS[(named["first"] or named["last"]).lower()]
    if named["year"]:
        year: int | None = int(named["year"])
    else:  # the year written once, after the first day ("from May 5, 2024 to June 1"), or none
        year = int(named["first_year"]) + (last_month < first_month) if named["first_year"] else None
    _, end_of_month = _month(last_month, year, today)
    first_year = int(named["first_year"]) if named["first_year"] else end_of_month.year - (first_month > last_month)
    first = _calendar_day(first_year, first_month, int(named["first_day"]))
    last = _calendar_day(end_of_month.year, last_month, int(named["last_day"]))
    return (first, last) if first and last and first <= last else None


def _up_to_yesterday(named: dict, today: date) -> tuple[date, date]:
    return _units_back(today, named["unit"].lower(), _count(named)), today


def _so_far(named: dict, today: date) -> tuple[date, date]:
    unit = named["unit"].lower()
    first = {"week": today - timedelta(days=today.weekday()), "month": today.replace(day=1),
             "year": date(today.year, 1, 1)}[unit]
    return first, today


def _which_year(named: dict, today: date) -> int:
    if named.get("year"):
        return int(named["year"])
    return today.year - ((named.get("rel") or "").lower() in ("last", "past"))


def _four_months(year: int, first_month: int) -> tuple[date, date]:
    return date(year, first_month, 1), date(year, first_month + 3, calendar.monthrange(year, first_month + 3)[1])


def _year_part(named: dict, today: date) -> tuple[date, date]:
    return _four_months(_which_year(named, today), _YEAR_PARTS[re.sub(r"\s+", " ", named["part"].lower())])


def _month_part(named: dict, today: date) -> tuple[date, date]:
    """A part of this month (of the last one when named so, or when the part has not begun)."""
    start, end = _PARTS[re.sub(r"\s+", " ", named["part"].lower())]
    first = today.replace(day=1)
    if named.get("rel") or first.replace(day=start) >= today:
        first = (first - timedelta(days=1)).replace(day=1)
    last_day = calendar.monthrange(first.year, first.month)[1]
    return first.replace(day=start), first.replace(day=min(end, last_day))


def _half(named: dict, today: date) -> tuple[date, date]:
    year = _which_year(named, today)
    return (date(year, 1, 1), date(year, 6, 30)) if named["half"].lower() == "first" else (date(year, 7, 1),
                                                                                          date(year, 12, 31))


def _half_month(named: dict, today: date) -> tuple[date, date]:
    first, last = _month(_MONTHS[named["month"].lower()], int(named["year"]) if named.get("year") else None, today)
    return (first, first.replace(day=15)) if named["half"].lower() == "first" else (first.replace(day=16), last)


def _quarter(named: dict, today: date) -> tuple[date, date]:
    year, quarter = _which_year(named, today), int(named["q"]) if named.get("q") else _QUARTERS[named["nth"].lower()]
    last_month = 3 * quarter
    return date(year, last_month - 2, 1), date(year, last_month, calendar.monthrange(year, last_month)[1])


def _season_from_this_year(named: dict, today: date) -> tuple[date, date]:
    season = named["season"].lower()
    if named.get("before_last"):
        return _season(season, _season(season, None, today, True)[0].year - 1, today, False)
    return _season(season, today.year - (named["rel"].lower() == "last"), today, False)


def _seasons_ago(named: dict, today: date) -> tuple[date, date]:
    season = named["season"].lower()
    return _season(season, _season(season, None, today, True)[0].year - (_count(named) - 1), today, False)


def _last_month_named(named: dict, today: date) -> tuple[date, date]:
    number = _MONTHS[named["month"].lower()]
    return _month(number, today.year - 1 if number == today.month else None, today)


def _about_ago(named: dict, today: date) -> tuple[date, date]:
    unit, count = named["unit"].lower(), _count(named)
    return _units_back(today, unit, count + 1), _units_back(today, unit, count - 1)


def _week_of(named: dict, today: date) -> tuple[date, date] | None:
    """The calendar week (Monday to Sunday) holding the day named; None when the day is not in its month."""
    month = _MONTHS[named["month"].lower()]
    year = int(named["year"]) if named.get("year") else today.year - (date(today.year, month, 1) > today)
    day = _calendar_day(year, month, int(named["day"]))
    if day is None:
        return None
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


_DAYS_READ_FIRST = {
    "span": _span, "day_span": _day_span, "up_to_yesterday": _up_to_yesterday, "so_far": _so_far,
    "year_part": _year_part, "month_part": _month_part, "half": _half, "half_month": _half_month, "quarter": _quarter,
    "season_from_this_year": _season_from_this_year, "seasons_ago": _seasons_ago,
    "last_month_named": _last_month_named, "about_ago": _about_ago, "week_of": _week_of}
