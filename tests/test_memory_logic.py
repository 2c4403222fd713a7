"""Unit tests of the pure memory rules: temporal ranges, keys, gap filter, merge, AITS, budgets, tokens."""

from __future__ import annotations

import copy
import re
import threading
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from dateparser.search import search_dates

from graph.settings import Settings
from memory.settings import Retrieval
from memory.prompt.aits import assess, cue_tokens
from memory.prompt.budget import (LINE_TOKENS, format_recall_line, l2_ceiling, line_tokens_stamp, newest_within,
                                  pack_recalls, split_budget, stamped_tokens, trim_working, turn_split)
from memory.retrieval.choosing.gap import background_filter, gap_filter, gap_ratio
from memory.turns import Assessment, LayerTokens, archive_id
from memory.retrieval.choosing.beside import BESIDE, beside_verdicts, placed_beside, wanted_beside
from memory.retrieval.choosing.next_nearest import NEAREST, with_next_nearest
from memory.retrieval.message.event_dates import from_event
from memory.retrieval.message.keys import structural_keys
from memory.retrieval.choosing.merge import (choose_and_explain, choose_recalls, fuse, merge_and_score,
                                             scoring_near_the_best, with_context)
from memory.retrieval.message.statements import speaks_of_oneself
from memory.retrieval.message import dates as temporal
from memory.retrieval.message.dates import completed_past_range, may_name_a_date, warm_up
from memory.prompt.tokens import count_tokens, count_tokens_each, count_unremembered

BUCHAREST = ZoneInfo("Europe/Bucharest")
UTC = ZoneInfo("UTC")
# A Saturday; Bucharest is on winter time (+02:00), October was partly summer time (+03:00).
NOW = datetime(2026, 11, 21, 15, 0, tzinfo=BUCHAREST)
NOW_UTC = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
DAY = 86_400.0


# What dateparser tries a date out of, in the messages of the tests below: a run of digits, a date word.
CUE = re.compile(r"\d+|\b(?:march|may|june|july|aug|sept|oct|nov|ago|days?|week|yesterday|last|ieri|martie|acum|zile|"
                 r"mai)\b", re.IGNORECASE)


def whole_days(first: tuple[int, int, int], last: tuple[int, int, int], tz=BUCHAREST) -> tuple[datetime, datetime]:
    return (
        datetime(*first, tzinfo=tz),
        datetime(*last, 23, 59, 59, 999_999, tzinfo=tz),
    )


# ---------------------------------------------------------------- temporal


@pytest.fixture(scope="module", autouse=False)
def warm_dateparser() -> None:
    warm_up()


@pytest.mark.usefixtures("warm_dateparser")
class TestCompletedPastRange:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("What did we talk about yesterday?", whole_days((2026, 11, 20), (2026, 11, 20))),
            ("on 3 March we met", whole_days((2026, 3, 3), (2026, 3, 3))),
            ("Do you remember what I said on March 3?", whole_days((2026, 3, 3), (2026, 3, 3))),
            ("two days ago I saw a fox", whole_days((2026, 11, 19), (2026, 11, 19))),
            ("3 days ago", whole_days((2026, 11, 18), (2026, 11, 18))),
            ("at 5pm yesterday", whole_days((2026, 11, 20), (2026, 11, 20))),
            ("on 2026-11-03", whole_days((2026, 11, 3), (2026, 11, 3))),
            ("I was born on 5 June 1990", whole_days((1990, 6, 5), (1990, 6, 5))),
            # Romanian
            ("ieri am vorbit", whole_days((2026, 11, 20), (2026, 11, 20))),
            ("Ce am discutat ieri?", whole_days((2026, 11, 20), (2026, 11, 20))),
            ("alaltăieri", whole_days((2026, 11, 19), (2026, 11, 19))),
            ("Alaltaieri am vorbit despre mașini", whole_days((2026, 11, 19), (2026, 11, 19))),
            ("acum 3 zile", whole_days((2026, 11, 18), (2026, 11, 18))),
            ("pe 3 martie", whole_days((2026, 3, 3), (2026, 3, 3))),
            # Week / month / year phrases cover the whole calendar period (weeks Mon–Sun).
            ("What did we do last week?", whole_days((2026, 11, 9), (2026, 11, 15))),
            ("săptămâna trecută", whole_days((2026, 11, 9), (2026, 11, 15))),
            ("2 weeks ago", whole_days((2026, 11, 2), (2026, 11, 8))),
            ("last month", whole_days((2026, 10, 1), (2026, 10, 31))),
            ("luna trecută", whole_days((2026, 10, 1), (2026, 10, 31))),
            ("last year", whole_days((2025, 1, 1), (2025, 12, 31))),
            # Two or more dates: earliest start to latest end.
            ("between 3 March and 5 March", whole_days((2026, 3, 3), (2026, 3, 5))),
            ("what did we discuss 3 days ago and on 5 November?", whole_days((2026, 11, 5), (2026, 11, 18))),
            # A present-time word does not veto the past one.
            ("now tell me what we said yesterday", whole_days((2026, 11, 20), (2026, 11, 20))),
            # A structural key beside a date is an identifier: its digits are not read into it.
            ("task_1203 from yesterday", whole_days((2026, 11, 20), (2026, 11, 20))),
            ("goat:l2:chat.42 on 3 March", whole_days((2026, 3, 3), (2026, 3, 3))),
        ],
    )
    def test_fires_with_exact_bounds(self, text: str, expected: tuple[datetime, datetime]) -> None:
        found = completed_past_range(text, NOW)
        assert found == expected
        start, end = found
        assert start.tzinfo is NOW.tzinfo and end.tzinfo is NOW.tzinfo
        assert end < NOW

    @pytest.mark.parametrize(
        "text",
        [
            "today", "What did we do today?", "azi", "astăzi", "tomorrow", "mâine", "next week",
            "săptămâna viitoare", "this week", "this month", "now", "1 hour ago",
            "hello there", "Salut!", "", "I may come", "may I ask something?", "mai",
            "Mai vreau o cafea", "încă mai vreau cafea", "Ce mai faci?", "Ai mai vorbit cu el?",
            "second", "wait a second", "the second option", "I have 2 cats", "page 3", "page 2024",
            "my code is 1234", "March", "what is 2+2", "1/2 cup of sugar", "room 3-4", "in 2027", "next summer",
            "on 3/12", "python 3.11.4", "I worked 3 days on it", "mai am 3 zile",
            "I was there for 2 weeks", "we went there", "ticket-1234",
            # dateparser reads articles and number words as numbers: "a a" would be 1 January.
            "they offer a a bunch, like yoga", "one one", "an two",
            "what should I get her for Christmas?", "the difference between a latte and a flat white",
            # A bound ("as of", "by", "since") without a completed past period after it.
            "stand by me", "as of now, what do I owe", "since you asked, I went by bus", "until tomorrow then",
            "by 2 people",
            # How long something lasted is not a period asked about.
            "I lived there for the last two years", "for the past week I was sick",
            "I need between 3 and 5 people", "we were 2 and 4",
        ],
    )
    def test_does_not_fire(self, text: str) -> None:
        assert completed_past_range(text, NOW) is None

    @pytest.mark.parametrize(("text", "first", "last"), [
        ("What did I buy during March?", (2026, 3, 1), (2026, 3, 31)),
        ("in May", (2026, 5, 1), (2026, 5, 31)),
        ("What was I up to in 2024?", (2024, 1, 1), (2024, 12, 31)),
        ("What did we do the first weekend of August?", (2026, 8, 1), (2026, 8, 2)),  # 1 August 2026: a Saturday
        ("the last weekend of July", (2026, 7, 25), (2026, 7, 26)),
        ("Where did I go in early June?", (2026, 6, 1), (2026, 6, 10)),
        ("what did I tell you in mid-August?", (2026, 8, 11), (2026, 8, 20)),
        ("what did I do at the end of May?", (2026, 5, 21), (2026, 5, 31)),
        ("in the first week of July 2025", (2025, 7, 1), (2025, 7, 7)),
        ("What did I do last spring?", (2026, 3, 1), (2026, 5, 31)),
        ("what did I do over the summer?", (2026, 6, 1), (2026, 8, 31)),
        ("in the fall of 2025", (2025, 9, 1), (2025, 11, 30)),
        ("last winter", (2025, 12, 1), (2026, 2, 28)),
        ("what happened last weekend?", (2026, 11, 14), (2026, 11, 15)),  # NOW is a Saturday: not today's
        ("What did I cook on Monday?", (2026, 11, 16), (2026, 11, 16)),
        ("what did I do the week before last?", (2026, 11, 2), (2026, 11, 8)),
        ("What did I do in early 2025?", (2025, 1, 1), (2025, 4, 30)),
        ("What happened in November?", (2026, 11, 1), (2026, 11, 20)),  # under way: its days before today
        ("In March 2025, on the 3rd", (2025, 3, 3), (2025, 3, 3)),  # a day named wins over its month
        ("and the weekend before last?", (2026, 11, 7), (2026, 11, 8)),
        ("what did we talk about around Christmas?", (2025, 12, 21), (2025, 12, 29)),
        ("What did I cook on New Year’s Eve", (2025, 12, 31), (2025, 12, 31)),
        ("and on new years eve?", (2025, 12, 31), (2025, 12, 31)),
        ("at Halloween", (2026, 10, 31), (2026, 10, 31)),
        # A span of months wins over the month a parser reads in it ("July 2025" alone).
        ("What did I read between May and July 2025?", (2025, 5, 1), (2025, 7, 31)),
        ("from March to June, what did I paint", (2026, 3, 1), (2026, 6, 30)),
        ("between November and February", (2025, 11, 1), (2026, 2, 28)),
        ("between March 2024 and May 2025", (2024, 3, 1), (2025, 5, 31)),
        # Read before dateparser, which reads them in part or not at all.
        ("what did we talk about in the past two weeks?", (2026, 11, 7), (2026, 11, 20)),
        ("the last few days", (2026, 11, 18), (2026, 11, 20)),
        ("over the last three months", (2026, 8, 21), (2026, 11, 20)),
        ("the past week", (2026, 11, 14), (2026, 11, 20)),
        ("in the last two years, how many trips", (2024, 11, 21), (2026, 11, 20)),
        ("what did I do earlier this month?", (2026, 11, 1), (2026, 11, 20)),
        ("so far this year", (2026, 1, 1), (2026, 11, 20)),
        ("what did I cook late last year", (2025, 9, 1), (2025, 12, 31)),
        ("towards the end of last year", (2025, 9, 1), (2025, 12, 31)),
        ("what happened at the start of the year?", (2026, 1, 1), (2026, 4, 30)),
        ("the end of 2023", (2023, 9, 1), (2023, 12, 31)),
        ("at the beginning of last month", (2026, 10, 1), (2026, 10, 10)),
        ("in the first half of 2025", (2025, 1, 1), (2025, 6, 30)),
        ("in the second half of September", (2026, 9, 16), (2026, 9, 30)),
        ("in Q3 2025", (2025, 7, 1), (2025, 9, 30)),
        ("the first quarter of last year", (2025, 1, 1), (2025, 3, 31)),
        ("in the spring of last year", (2025, 3, 1), (2025, 5, 31)),
        ("the summer before last", (2025, 6, 1), (2025, 8, 31)),
        ("two winters ago", (2024, 12, 1), (2025, 2, 28)),
        ("this past January", (2026, 1, 1), (2026, 1, 31)),
        ("what did I plant last November", (2025, 11, 1), (2025, 11, 30)),  # November is under way
        ("last Christmas", (2025, 12, 24), (2025, 12, 26)),
        ("a few days ago", (2026, 11, 17), (2026, 11, 19)),
        ("a couple of weeks ago", (2026, 10, 31), (2026, 11, 14)),
        ("3 weeks back", (2026, 10, 26), (2026, 11, 1)),
        ("the day before yesterday", (2026, 11, 19), (2026, 11, 19)),  # dateparser: yesterday
        ("the night before last", (2026, 11, 19), (2026, 11, 19)),
        ("what did I cook the week of March 6?", (2026, 3, 2), (2026, 3, 8)),
        ("the week of March 31", (2026, 3, 30), (2026, 4, 5)),
        ("the week of February 29 2024", (2024, 2, 26), (2024, 3, 3)),  # a leap year's
        ("in January or February", (2026, 1, 1), (2026, 2, 28)),
        ("Where was I between August 11 and August 15 2023?", (2023, 8, 11), (2023, 8, 15)),
        ("from 3 to 5 March", (2026, 3, 3), (2026, 3, 5)),
        ("between the 28th of December and the 2nd of January", (2025, 12, 28), (2026, 1, 2)),
        ("from May 5, 2024 to June 1", (2024, 5, 5), (2024, 6, 1)),
        # "as of", "by", "until", "up to" a period: every day up to its end.
        ("How many pets did I have, as of September 2025?", (1970, 1, 2), (2025, 9, 30)),
        ("as of December, how many books had I read", (1970, 1, 2), (2025, 12, 31)),
        ("What had I finished by the end of May?", (1970, 1, 2), (2026, 5, 31)),
        ("up to the 3rd of March what did we say", (1970, 1, 2), (2026, 3, 3)),
        ("what did I cook until last week", (1970, 1, 2), (2026, 11, 15)),
        ("as of 2024 how many trips", (1970, 1, 2), (2024, 12, 31)),
        # "since" a period: from its first day to yesterday.
        ("What have I read since March?", (2026, 3, 1), (2026, 11, 20)),
        ("since 2025, how many concerts", (2025, 1, 1), (2026, 11, 20)),
        ("anything new since last Monday", (2026, 11, 16), (2026, 11, 20)),
        ("since the start of the month", (2026, 11, 1), (2026, 11, 20)),
        ("since 1950, how many moves", (1950, 1, 1), (2026, 11, 20)),
        # A bound needs its period at once: "by the way" bounds nothing, the month stays a month.
        ("by the way, in March I went hiking", (2026, 3, 1), (2026, 3, 31)),
    ])
    def test_a_period_named_with_a_preposition_or_a_part_is_its_days(self, text: str, first: tuple, last: tuple) -> None:
        assert completed_past_range(text, NOW) == (whole_days(first, first)[0], whole_days(last, last)[1])

    def test_a_message_without_digits_or_date_words_is_not_parsed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def parse(*args: object, **kwargs: object) -> None:
            raise AssertionError("parsed")

        monkeypatch.setattr(temporal, "search_dates", parse)
        assert completed_past_range("What did Caroline say about the adoption agency?", NOW) is None
        assert completed_past_range("Ce faci? Am vorbit cu el despre mașini.", NOW) is None
        with pytest.raises(AssertionError, match="parsed"):
            completed_past_range("What did we say yesterday?", NOW)

    def test_a_message_of_bounds_costs_a_few_parses_not_one_per_bound(self, monkeypatch: pytest.MonkeyPatch) -> None:
        parses = []

        def counted(*args: object, **kwargs: object) -> object:
            parses.append(args[0])
            return search_dates(*args, **kwargs)

        monkeypatch.setattr(temporal, "search_dates", counted)
        assert completed_past_range("by 1, " * 330, NOW) is None
        assert len(parses) <= 4, len(parses)  # three bounds read (a parse each), then the message
        parses.clear()
        assert completed_past_range("up to 3 people, as of September 2025 how many", NOW) is not None

    @pytest.mark.parametrize("text", [
        "what did I do the week of March 0?", "the week of the 0th of May", "the week of March 32",
        "the week of April 31", "the week of February 29 2025", "what did I do the 0th of May?",
        "up to the 31st of April, how many", "since the 0th of May", "from 0 to 5 March",
        "between February 28 and February 30 2024",
    ])
    def test_a_day_its_month_does_not_have_names_no_period(self, text: str) -> None:
        assert completed_past_range(text, NOW) is None

    @pytest.mark.parametrize("text", ["How many pets did I have as of March 1950?", "by 1969, how many moves"])
    def test_a_range_ending_before_it_starts_is_no_range(self, text: str) -> None:
        # "As of" runs from before any chat's first entry (1970): up to 1950 there is no day.
        assert completed_past_range(text, NOW) is None

    @pytest.mark.parametrize("repeated", [
        "2023 2024 1999 ", "2023 2024 1999 2000 2001 2002 2003 2004 x y ", "12.03.2025 14.03.2025 1.1 x y ",
        "March May June 2023 ", "March May June July Aug Sept Oct Nov x y ", "between May and July 2023 ",
        "between 3 and 5 March ", "the 3rd of May, the 1st ", "3rd 1st 2nd 4th 5th 6th 7th 8th x y ",
        "10:30 11:45 12:15 13:00 x y ", "ago ago ago ago ago ago ago ago x y ", "mai mai mai mai mai mai mai mai x y ",
        "ieri 3 martie yesterday on 5 June 1990 acum 3 zile last week ", "as of 2023 2024 1999 2000 2001 2002 2003, ",
        "by 12 13 14 15 16 17 18 19, ", "since 12 13 14 15, by 16 17 18 19, ", "what did we do 3 days ago? ",
    ])
    def test_a_message_costs_dateparser_a_few_cues_whatever_it_holds(self, monkeypatch: pytest.MonkeyPatch,
                                                                     repeated: str) -> None:
        """dateparser tries each number and date word with its neighbours, milliseconds each: 2 000
        characters of numbers took it 0.9-1.8 s. However long the message, it is handed a few."""
        handed = []

        def counted(text: str, *args: object, **kwargs: object) -> object:
            handed.append(text)
            return search_dates(text, *args, **kwargs)

        monkeypatch.setattr(temporal, "search_dates", counted)
        completed_past_range((repeated * 1_000)[:10_000], NOW)
        assert len(handed) <= 4, len(handed)  # three bounds, then the message
        assert sum(len(CUE.findall(text)) for text in handed) <= 8, handed

    def test_a_message_read_in_part_leaves_out_a_date_cut_short(self) -> None:
        # "5 June" of "5 June 1990", past the cues read, would be this year's.
        assert completed_past_range("2023 2024 1999 2000 2001 2002, then on 5 June 1990", NOW) is None

    def test_a_date_named_late_in_a_long_message_is_read(self) -> None:
        text = ("This is the last time I tell you this: the day was long and now I may need a break. My sister "
                "called and we talked about the car, the garage, the dog and her plans for ages, and then about "
                "the neighbours and their noisy, endless renovation. Anyway, what did we talk about on 5 November?")
        assert len(text) > 280
        assert completed_past_range(text, NOW) == whole_days((2026, 11, 5), (2026, 11, 5))

    def test_a_message_whose_only_digits_are_a_keys_is_not_parsed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def parse(*args: object, **kwargs: object) -> None:
            raise AssertionError("parsed")

        monkeypatch.setattr(temporal, "search_dates", parse)
        for text in ("What was ticket-000250 about again?", "invoice 03122025?", f"agent-{UUID} said what?"):
            assert not may_name_a_date(text)
            assert completed_past_range(text, NOW) is None
        with pytest.raises(AssertionError, match="parsed"):
            completed_past_range("What was ticket-000250 about on 3 March?", NOW)

    def test_every_phrase_the_parser_dates_holds_a_digit_or_a_date_word(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The check before parsing loses nothing: phrases built from dateparser's own names (all
        forms, the one- and two-letter ones too) are parsed with the check off; each one dated
        passes the check, unless it is only number words and short names ("an two": an artefact)."""
        from dateparser.languages.loader import default_loader

        units = ("year", "month", "week", "day", "hour")
        names = ("march", "june", "monday", "friday")
        forms = {entry: {form for language in ("en", "ro") for form in default_loader.get_locale(language).info[entry]}
                 for entry in (*units, *names)}
        numbers = ("a", "an", "one", "two", "o", "un", "două")
        phrases = {phrase for unit in units for form in forms[unit] for number in numbers
                   for phrase in (f"{number} {form} ago", f"acum {number} {form}", f"{number} {form} în urmă",
                                  f"last {form}", f"{form} trecută", f"{number} {form}")}
        phrases |= {phrase for name in names for form in forms[name] for number in (*numbers, "first", "")
                    for phrase in (f"on {form}", f"last {form}", f"{number} {form}", f"{form} {number}")}
        phrases |= {"one one", "a a", "the day before yesterday", "last night", "anul trecut", "alaltăieri"}
        with monkeypatch.context() as unchecked:
            unchecked.setattr(temporal, "may_name_a_date", lambda text, languages: True)
            dated = [phrase for phrase in sorted(phrases) if completed_past_range(phrase, NOW) is not None]
        assert len(dated) > 100
        missed = [phrase for phrase in dated if completed_past_range(phrase, NOW) is None]
        number_words = {"a", "an", "one", "two", "o", "un", "două", "first"}
        assert "one one" in missed and "a a" in missed
        assert all(len(word) <= 2 or word in number_words for phrase in missed for word in phrase.split()), missed
        assert not may_name_a_date("ieri", languages=("en",)) and may_name_a_date("ieri", languages=("ro",))

    def test_utc_now(self) -> None:
        assert completed_past_range("yesterday", NOW_UTC) == whole_days((2026, 11, 20), (2026, 11, 20), UTC)
        assert completed_past_range("today", NOW_UTC) is None

    def test_days_are_those_of_nows_timezone(self) -> None:
        # 00:30 in Bucharest is still 22:30 of the previous day in UTC.
        just_after_midnight = datetime(2026, 11, 21, 0, 30, tzinfo=BUCHAREST)
        assert completed_past_range("yesterday", just_after_midnight) == whole_days((2026, 11, 20), (2026, 11, 20))
        same_instant_utc = just_after_midnight.astimezone(UTC)
        assert completed_past_range("yesterday", same_instant_utc) == whole_days((2026, 11, 19), (2026, 11, 19), UTC)

    def test_fixed_offset_timezone(self) -> None:
        plus_two = timezone(timedelta(hours=2))
        found = completed_past_range("ieri", NOW.astimezone(plus_two))
        assert found == whole_days((2026, 11, 20), (2026, 11, 20), plus_two)

    def test_date_later_this_year_is_read_as_last_year(self) -> None:
        assert completed_past_range("on 5 December", NOW) == whole_days((2025, 12, 5), (2025, 12, 5))

    def test_languages_are_respected(self) -> None:
        assert completed_past_range("ieri", NOW, languages=("en",)) is None
        assert completed_past_range("ieri", NOW, languages=("ro",)) == whole_days((2026, 11, 20), (2026, 11, 20))

    def test_naive_now_is_rejected(self) -> None:
        with pytest.raises(ValueError):
            completed_past_range("yesterday", datetime(2026, 11, 21, 15, 0))


# ---------------------------------------------------------------- keys

UUID = "550e8400-e29b-41d4-a716-446655440000"


class TestFromEvent:
    @pytest.mark.parametrize(("text", "event", "first", "last"), [
        ("What did I do two weeks after the wedding?", "the wedding", 11, 17),
        ("the day before her exam", "her exam", -1, -1),
        ("What happened the week after we moved in?", "we moved in", 1, 7),
        ("a couple of days after the party, what did Jo say", "the party", 2, 2),
        ("3 months before the trip to Peru", "the trip to Peru", -105, -75),
        ("A month after I started the job", "I started the job", 15, 45),
    ])
    def test_a_period_counted_from_an_event(self, text: str, event: str, first: int, last: int) -> None:
        named = from_event(text)
        assert named is not None and (named.event, named.first_offset, named.last_offset) == (event, first, last)
        assert named.days(date(2026, 6, 10)) == (date(2026, 6, 10) + timedelta(days=first),
                                                  date(2026, 6, 10) + timedelta(days=last))

    @pytest.mark.parametrize("text", ["the day after tomorrow", "the week before last", "two weeks ago",
                                      "I waited two weeks for the parcel", "the day before yesterday"])
    def test_dates_of_their_own_and_durations_are_not(self, text: str) -> None:
        assert from_event(text) is None


class TestStructuralKeys:
    @pytest.mark.parametrize(
        ("text", "keys"),
        [
            (f"what is {UUID}?", [UUID]),
            (f"id {UUID.upper()}.", [UUID.upper()]),
            (f"agent agent-{UUID} again", [f"agent-{UUID}"]),
            ("look up ticket-1234, please", ["ticket-1234"]),
            ("see turn_0001", ["turn_0001"]),
            ("task_042 is done", ["task_042"]),
            ("the value of goat:some_key", ["goat:some_key"]),
            ("goat:l2:chat.42, ok", ["goat:l2:chat.42"]),
            ("ticket 1234 and Ticket 5678", ["ticket 1234", "Ticket 5678"]),
            ("room 10000", ["room 10000"]),
            ("sarcina-123 și sarcină_0042", ["sarcina-123", "sarcină_0042"]),
            ("issue-123.", ["issue-123"]),
        ],
    )
    def test_finds_keys_as_written(self, text: str, keys: list[str]) -> None:
        assert structural_keys(text) == keys

    @pytest.mark.parametrize(
        "text",
        [
            "I have 2 cats", "page 3", "page 123", "in 2024", "the year 2024", "since 1999",
            "COVID-19", "x-123", "about 1000.5 euro", "version 1.2.3", "v2", "state-of-the-art-2000",
            "abc-12345-def", f"{UUID}x", "mygoat:key", "hello there", "",
        ],
    )
    def test_prose_has_no_keys(self, text: str) -> None:
        assert structural_keys(text) == []

    def test_distinct_in_order_of_appearance(self) -> None:
        text = f"turn_0002 then goat:k then {UUID} then turn_0002 and goat:k and ticket-999"
        assert structural_keys(text) == ["turn_0002", "goat:k", UUID, "ticket-999"]

    def test_agent_uuid_is_one_key_but_a_bare_uuid_elsewhere_is_another(self) -> None:
        assert structural_keys(f"agent-{UUID} / {UUID}") == [f"agent-{UUID}", UUID]


# ---------------------------------------------------------------- gap filter


def recall(
    entry_id: str,
    distance: float,
    mechanism: str = "thematic",
    timestamp: float = 0.0,
    access_count: int | None = None,
    content: str = "",
) -> dict:
    metadata = {} if access_count is None else {"access_count": access_count, "last_accessed": timestamp}
    return {
        "id": entry_id,
        "content": content or f"content of {entry_id}",
        "distance": distance,
        "timestamp": timestamp,
        "mechanism": mechanism,
        "metadata": metadata,
    }


def ids(recalls: list[dict]) -> list[str]:
    return [r["id"] for r in recalls]


# The gap test's knobs these lists are built around (the shipped ones).
SIGNIFICANCE, CEILING = 3.0, 1.5
GAP = {"significance": SIGNIFICANCE, "ceiling": CEILING}
CLUSTER = [0.20, 0.25, 0.30, 1.20, 1.25, 1.30, 1.32]  # gaps .05 .05 .90 .05 .05 .02: ratio ≈ 4.8
FLAT = [0.50, 0.60, 0.70, 0.80, 0.90]  # equal gaps: ratio 1


class TestGapFilter:
    def test_clear_cluster_is_kept(self) -> None:
        recalls = [recall(f"r{i}", d) for i, d in enumerate(CLUSTER)]
        assert ids(gap_filter(recalls, **GAP)) == ["r0", "r1", "r2"]
        assert gap_ratio(CLUSTER) == pytest.approx(0.90 / (1.12 / 6))

    def test_flat_list_is_rejected(self) -> None:
        assert gap_filter([recall(f"r{i}", d) for i, d in enumerate(FLAT)], **GAP) == []
        assert gap_ratio(FLAT) == pytest.approx(1.0)

    def test_min_keep_keeps_the_closest_whatever_the_test_says(self) -> None:
        flat = [recall(f"r{i}", d) for i, d in enumerate(FLAT)]
        assert ids(gap_filter(flat, **GAP, min_keep=2)) == ["r0", "r1"]
        cluster = [recall(f"r{i}", d) for i, d in enumerate(CLUSTER)]
        assert ids(gap_filter(cluster, **GAP, min_keep=2)) == ["r0", "r1", "r2"]  # the cluster is larger
        assert ids(gap_filter([recall("far", 1.9)], **GAP, min_keep=5)) == ["far"]  # above the ceiling, kept

    def test_input_is_sorted_defensively(self) -> None:
        recalls = [recall(f"r{i}", d) for i, d in enumerate(CLUSTER)]
        shuffled = [recalls[i] for i in (5, 2, 0, 6, 3, 1, 4)]
        assert ids(gap_filter(shuffled, **GAP)) == ["r0", "r1", "r2"]

    @pytest.mark.parametrize("factor", [0.001, 0.5, 2.0, 1000.0])
    @pytest.mark.parametrize("distances", [CLUSTER, FLAT, [0.1, 0.2, 0.26, 0.3], [0.3, 0.31, 0.9, 1.0, 1.05, 1.06]])
    def test_scale_invariance(self, distances: list[float], factor: float) -> None:
        base = gap_filter([recall(f"r{i}", d) for i, d in enumerate(distances)], **GAP)
        scaled = gap_filter([recall(f"r{i}", d * factor) for i, d in enumerate(distances)], **GAP)
        assert ids(scaled) == ids(base)
        assert gap_ratio([d * factor for d in distances]) == pytest.approx(gap_ratio(distances))

    def test_significance_is_inclusive(self) -> None:
        # Gaps .125 .125 .125 1.125: mean .375, ratio exactly 3.0 (binary-exact values).
        distances = [1.0, 1.125, 1.25, 1.375, 2.5]
        assert gap_ratio(distances) == 3.0
        recalls = [recall(f"r{i}", d) for i, d in enumerate(distances)]
        assert ids(gap_filter(recalls, significance=3.0, ceiling=CEILING)) == ["r0", "r1", "r2", "r3"]
        assert gap_filter(recalls, significance=3.01, ceiling=CEILING) == []
        assert ids(gap_filter(recalls, significance=2.0, ceiling=CEILING)) == ["r0", "r1", "r2", "r3"]

    def test_first_of_equal_largest_gaps_is_the_cut(self) -> None:
        distances = [0.0, 1.0, 1.125, 1.25, 2.25]  # gaps 1, .125, .125, 1: ratio ≈ 1.78
        recalls = [recall(f"r{i}", d) for i, d in enumerate(distances)]
        assert ids(gap_filter(recalls, significance=1.5, ceiling=CEILING)) == ["r0"]

    def test_fewer_than_three_use_the_ceiling(self) -> None:
        assert ids(gap_filter([recall("a", 0.4), recall("b", 1.6)], **GAP)) == ["a"]
        assert ids(gap_filter([recall("a", 1.5)], **GAP)) == ["a"]  # inclusive
        assert gap_filter([recall("a", 1.51)], **GAP) == []
        assert ids(gap_filter([recall("a", 0.5), recall("b", 0.7)], SIGNIFICANCE, ceiling=0.6)) == ["a"]
        assert gap_ratio([0.1, 0.9]) is None

    def test_all_equal_distances_keep_none(self) -> None:
        assert gap_ratio([0.7, 0.7, 0.7, 0.7]) is None
        assert gap_filter([recall(f"r{i}", 0.7) for i in range(4)], **GAP) == []

    def test_exact_hits_always_pass(self) -> None:
        flat = [recall(f"r{i}", d) for i, d in enumerate(FLAT)]
        exact = recall("key", 0.0, mechanism="specific_key")
        assert ids(gap_filter([*flat, exact], **GAP)) == ["key"]
        assert ids(gap_filter([exact, recall("far", 1.9)], **GAP)) == ["key"]
        cluster = [recall(f"r{i}", d) for i, d in enumerate(CLUSTER)]
        assert ids(gap_filter([*cluster, exact], **GAP)) == ["key", "r0", "r1", "r2"]

    def test_exact_hits_do_not_fake_a_gap(self) -> None:
        # Without the exemption, 0 → .5 would be the largest gap and keep only the exact hit.
        exact = [recall(f"k{i}", 0.0, mechanism="specific_key") for i in range(2)]
        cluster = [recall(f"r{i}", d) for i, d in enumerate(CLUSTER)]
        assert ids(gap_filter(exact + cluster, **GAP)) == ["k0", "k1", "r0", "r1", "r2"]

    def test_distance_zero_from_a_semantic_search_is_not_exempt(self) -> None:
        recalls = [recall("zero", 0.0), *(recall(f"r{i}", d) for i, d in enumerate([0.1, 0.2, 0.3, 0.4]))]
        assert gap_filter(recalls, **GAP) == []

    def test_input_is_not_mutated(self) -> None:
        recalls = [recall(f"r{i}", d) for i, d in enumerate(reversed(CLUSTER))]
        before = copy.deepcopy(recalls)
        gap_filter(recalls, **GAP)
        assert recalls == before

    def test_empty(self) -> None:
        assert gap_filter([], **GAP) == []
        assert gap_ratio([]) is None


class TestBackgroundFilter:
    def test_keeps_what_is_well_below_the_background(self) -> None:
        recalls = [recall(f"r{i}", d) for i, d in enumerate([1.25, 0.5, 1.5, 0.875, 1.75])]
        assert ids(background_filter(recalls, background=2.0, ratio=0.75)) == ["r1", "r3", "r0", "r2"]  # ≤ 1.5
        assert ids(background_filter(recalls, background=2.0, ratio=0.5)) == ["r1", "r3"]

    def test_a_plateau_passes_where_the_largest_gap_test_rejects_it(self) -> None:
        plateau = [recall(f"r{i}", d) for i, d in enumerate([0.80, 0.85, 0.90, 0.95, 1.00, 1.05])]
        assert gap_filter(plateau, **GAP) == []  # equal gaps: nothing stands out from its neighbours
        assert len(background_filter(plateau, background=1.8, ratio=0.75)) == 6  # all well below the rest of the chat

    def test_an_unrelated_message_keeps_nothing(self) -> None:
        # Everything about as far as the chat's average entry: the closest is only 10 % closer.
        far = [recall(f"r{i}", d) for i, d in enumerate([1.75, 1.8, 1.85, 1.9])]
        assert background_filter(far, background=1.95, ratio=0.75) == []

    @pytest.mark.parametrize("factor", [0.001, 0.5, 2.0, 1000.0])
    def test_scale_invariance(self, factor: float) -> None:
        distances, background = [0.3, 0.8, 1.19, 1.2, 1.21, 1.7], 1.6
        base = background_filter([recall(f"r{i}", d) for i, d in enumerate(distances)], background, 0.75)
        scaled = background_filter(
            [recall(f"r{i}", d * factor) for i, d in enumerate(distances)], background * factor, 0.75)
        assert ids(scaled) == ids(base) == ["r0", "r1", "r2", "r3"]

    def test_exact_hits_and_min_keep_pass(self) -> None:
        recalls = [recall("far", 1.9), recall("key", 0.0, mechanism="specific_key"), recall("farther", 2.0)]
        assert ids(background_filter(recalls, 1.6, 0.75)) == ["key"]
        assert ids(background_filter(recalls, 1.6, 0.75, min_keep=2)) == ["key", "far"]

    def test_closest_first_and_input_not_mutated(self) -> None:
        recalls = [recall("b", 0.5), recall("a", 0.4)]
        before = copy.deepcopy(recalls)
        assert ids(background_filter(recalls, 1.6, 0.75)) == ["a", "b"]
        assert recalls == before


# ---------------------------------------------------------------- merge

NOW_TS = 1_800_000_000.0


def blend(**changed: float) -> dict[str, float]:
    """merge_and_score's knobs: the spec's blend, which these cases are worked out with (the
    shipped recency weight is lower), with these changed."""
    return {"weight_similarity": 0.6, "weight_recency": 0.3, "weight_popularity": 0.1, "recency_window_days": 30.0,
            "popularity_norm": 10.0, "max_results": 15, **changed}


def closeness(*lists: list[dict]) -> dict[str, float]:
    """A relevance map for merge_and_score in which closer entries are more relevant."""
    return {r["id"]: 1 / (1 + r["distance"]) for recalls in lists for r in recalls}


class TestMergeAndScore:
    def test_dedupe_keeps_smallest_distance_and_all_mechanisms(self) -> None:
        thematic = [recall("a", 0.8, "thematic", content="thematic copy"), recall("b", 0.9, "thematic")]
        temporal = [recall("a", 0.5, "temporal", content="temporal copy")]
        merged = merge_and_score([thematic, temporal], NOW_TS, {}, **blend())
        a = next(r for r in merged if r["id"] == "a")
        assert len(merged) == 2
        assert a["distance"] == 0.5 and a["content"] == "temporal copy"
        assert a["mechanisms"] == ["temporal", "thematic"]
        assert a["mechanism"] == "temporal"

    def test_mechanism_priority(self) -> None:
        merged = merge_and_score(
            [[recall("a", 0.3, "thematic")], [recall("a", 0.4, "temporal")], [recall("a", 0.0, "specific_key")]],
            NOW_TS,
            {},
            **blend(),
        )
        assert merged[0]["mechanism"] == "specific_key"
        assert merged[0]["mechanisms"] == ["specific_key", "temporal", "thematic"]
        assert merged[0]["distance"] == 0.0

    def test_blended_score_formula(self) -> None:
        entry = recall("a", 1.0, timestamp=NOW_TS - 15 * DAY, access_count=5)
        best = recall("b", 0.2, timestamp=NOW_TS - 60 * DAY)
        scored = {r["id"]: r for r in merge_and_score([[entry, best]], NOW_TS, {"a": 0.02, "b": 0.08}, **blend())}
        # a: 0.6·(0.02/0.08) + 0.3·(1 − 15/30) + 0.1·(5/10); b: 0.6·1 + 0 + 0
        assert scored["a"]["blended_score"] == pytest.approx(0.15 + 0.15 + 0.05)
        assert scored["b"]["blended_score"] == pytest.approx(0.6)

    def test_similarity_is_relative_so_the_relevance_scale_does_not_matter(self) -> None:
        entries = [recall("a", 0.5, timestamp=NOW_TS - 3 * DAY), recall("b", 0.9, timestamp=NOW_TS)]
        small = merge_and_score([entries], NOW_TS, {"a": 0.03, "b": 0.01}, **blend())
        large = merge_and_score([entries], NOW_TS, {"a": 300.0, "b": 100.0}, **blend())
        assert ids(small) == ids(large) == ["a", "b"]
        assert [r["blended_score"] for r in small] == pytest.approx([r["blended_score"] for r in large])

    def test_exact_hits_count_as_most_similar(self) -> None:
        exact = recall("key", 0.0, mechanism="specific_key", timestamp=NOW_TS - 60 * DAY)
        fused_best = recall("a", 0.4, timestamp=NOW_TS - 60 * DAY)
        merged = merge_and_score([[fused_best], [exact]], NOW_TS, {"a": 0.2}, **blend())
        assert ids(merged) == ["key", "a"]  # equal similarity 1: the distance breaks the tie
        assert [r["blended_score"] for r in merged] == pytest.approx([0.6, 0.6])

    def test_without_relevance_similarity_comes_from_the_distance(self) -> None:
        entry = recall("a", 1.0, timestamp=NOW_TS - 15 * DAY, access_count=5)
        [scored] = merge_and_score([[entry]], NOW_TS, **blend())
        # 0.6·1/(1+1) + 0.3·(1 − 15/30) + 0.1·(5/10)
        assert scored["blended_score"] == pytest.approx(0.3 + 0.15 + 0.05)

    def test_entries_without_relevance_count_zero(self) -> None:
        entries = [recall("known", 0.9), recall("unknown", 0.1)]
        assert ids(merge_and_score([entries], NOW_TS, {"known": 0.5}, **blend())) == ["known", "unknown"]

    def test_weights_and_normalisers_are_parameters(self) -> None:
        entry = recall("a", 0.25, timestamp=NOW_TS - 5 * DAY, access_count=2)
        [similarity_only] = merge_and_score(
            [[entry]], NOW_TS, {"a": 0.1}, **blend(weight_similarity=1, weight_recency=0, weight_popularity=0))
        assert similarity_only["blended_score"] == pytest.approx(1.0)
        [recency_only] = merge_and_score(
            [[entry]], NOW_TS, {}, **blend(weight_similarity=0, weight_recency=1, weight_popularity=0,
                                           recency_window_days=10)
        )
        assert recency_only["blended_score"] == pytest.approx(0.5)
        [popularity_only] = merge_and_score(
            [[entry]], NOW_TS, {}, **blend(weight_similarity=0, weight_recency=0, weight_popularity=1,
                                           popularity_norm=4)
        )
        assert popularity_only["blended_score"] == pytest.approx(0.5)

    @pytest.mark.parametrize(("age_days", "recency"), [(0, 1.0), (7.5, 0.75), (30, 0.0), (400, 0.0), (-3, 1.0)])
    def test_recency_window(self, age_days: float, recency: float) -> None:
        entry = recall("a", 0.0, timestamp=NOW_TS - age_days * DAY)
        [scored] = merge_and_score(
            [[entry]], NOW_TS, {}, **blend(weight_similarity=0, weight_recency=1, weight_popularity=0))
        assert scored["blended_score"] == pytest.approx(recency)

    @pytest.mark.parametrize(("count", "popularity"), [(None, 0.0), (0, 0.0), (3, 0.3), (10, 1.0), (500, 1.0)])
    def test_popularity_is_capped(self, count: int | None, popularity: float) -> None:
        entry = recall("a", 0.0, access_count=count)
        [scored] = merge_and_score(
            [[entry]], NOW_TS, {}, **blend(weight_similarity=0, weight_recency=0, weight_popularity=1))
        assert scored["blended_score"] == pytest.approx(popularity)

    def test_sorted_best_first(self) -> None:
        entries = [
            recall("far_old", 1.5, timestamp=NOW_TS - 60 * DAY),
            recall("close_new", 0.1, timestamp=NOW_TS - 1 * DAY),
            recall("close_old", 0.1, timestamp=NOW_TS - 40 * DAY),
            recall("far_new_popular", 1.5, timestamp=NOW_TS, access_count=10),
        ]
        merged = merge_and_score([entries], NOW_TS, closeness(entries), **blend())
        assert ids(merged) == ["close_new", "far_new_popular", "close_old", "far_old"]
        scores = [r["blended_score"] for r in merged]
        assert scores == sorted(scores, reverse=True)

    def test_recency_can_outrank_similarity(self) -> None:
        # 0.6·1 + 0 = 0.6 vs 0.6·0.6 + 0.3 = 0.66
        merged = merge_and_score(
            [[recall("similar_old", 0.2, timestamp=NOW_TS - 90 * DAY), recall("recent", 0.5, timestamp=NOW_TS)]],
            NOW_TS,
            {"similar_old": 1.0, "recent": 0.6},
            **blend(),
        )
        assert ids(merged) == ["recent", "similar_old"]

    def test_max_results(self) -> None:
        entries = [recall(f"r{i:02}", i / 10, timestamp=NOW_TS) for i in range(20)]
        assert ids(merge_and_score([entries], NOW_TS, closeness(entries), **blend())) == [f"r{i:02}" for i in range(15)]
        assert ids(merge_and_score([entries], NOW_TS, closeness(entries), **blend(max_results=3))) == [
            "r00", "r01", "r02"]

    def test_inputs_are_not_mutated(self) -> None:
        lists = [[recall("a", 0.8, access_count=1)], [recall("a", 0.5, "temporal", access_count=1)]]
        before = copy.deepcopy(lists)
        [merged] = merge_and_score(lists, NOW_TS, {"a": 1.0}, **blend())
        assert lists == before
        merged["metadata"]["access_count"] = 99
        assert lists == before

    def test_empty(self) -> None:
        assert merge_and_score([], NOW_TS, {}, **blend()) == []
        assert merge_and_score([[], []], NOW_TS, {"a": 1.0}, **blend()) == []


def turn(entry_id: str, turn_number: int | None, chat: str = "c", distance: float = 0.5) -> dict:
    entry = recall(entry_id, distance)
    entry["metadata"] = {"chat_id": chat, **({} if turn_number is None else {"turn": turn_number})}
    return entry


class TestFuse:
    def test_reciprocal_ranks_add_up_across_lists(self) -> None:
        semantic = [turn("a", None), turn("b", None)]
        words = [turn("b", None), turn("c", None)]
        fused = fuse([semantic, words], rrf_k=10, beside_weight=0)
        assert fused == pytest.approx({"a": 1 / 11, "b": 1 / 12 + 1 / 11, "c": 1 / 12})
        assert max(fused, key=fused.get) == "b"  # second in both beats first in one

    def test_ranks_not_scores_are_fused(self) -> None:
        near = [turn("a", None, distance=0.1), turn("b", None, distance=0.2)]
        far = [turn("a", None, distance=1.1), turn("b", None, distance=1.9)]
        assert fuse([near], rrf_k=10, beside_weight=0) == fuse([far], rrf_k=10, beside_weight=0)

    def test_turns_beside_each_other_lend_each_other_a_share(self) -> None:
        ranked = [turn("t5", 5), turn("t6", 6), turn("t9", 9)]
        plain = fuse([ranked], rrf_k=10, beside_weight=0)
        smoothed = fuse([ranked], rrf_k=10, beside_weight=0.5)
        assert smoothed["t5"] == pytest.approx(plain["t5"] + 0.5 * plain["t6"])
        assert smoothed["t6"] == pytest.approx(plain["t6"] + 0.5 * plain["t5"])
        assert smoothed["t9"] == pytest.approx(plain["t9"])  # turns 8 and 10 are not candidates

    def test_turns_beside_are_of_the_same_chat(self) -> None:
        ranked = [turn("x5", 5, chat="x"), turn("y6", 6, chat="y"), turn("memory", None)]
        assert fuse([ranked], rrf_k=10, beside_weight=1.0) == fuse([ranked], rrf_k=10, beside_weight=0)

    def test_empty(self) -> None:
        assert fuse([], rrf_k=10, beside_weight=0.25) == {} and fuse([[], []], rrf_k=10, beside_weight=0.25) == {}


class TestTurnsBeside:
    @staticmethod
    def chosen(*numbers: int | None, chat: str = "c", lines: bool = False) -> list[dict]:
        """Exchanges (a message and its reply), or with ``lines`` lone messages."""
        content = "user: and the boat?" if lines else "user: and the boat?\nassistant: Slip 43C."
        return [turn(archive_id(chat, n) if n is not None else f"memory{i}", n, chat=chat)
                | {"blended_score": 1.0 - i / 10, "content": content} for i, n in enumerate(numbers)]

    def test_a_lone_message_counts_as_half_an_exchange(self) -> None:
        chosen = self.chosen(7, 12, 20, 30, 40, lines=True)  # lines of a chat between people
        assert set(wanted_beside(chosen, 2, 600).values()) == {"c:turn_0007", "c:turn_0012", "c:turn_0020",
                                                               "c:turn_0030"}

    def test_the_turns_either_side_of_the_best_are_wanted_once(self) -> None:
        chosen = self.chosen(7, 8, 20)
        # Turn 8 is chosen already; 6 is beside 7, 9 beside 8; 20 is not among the best two.
        assert wanted_beside(chosen, 2, 600) == {"c:turn_0006": "c:turn_0007", "c:turn_0009": "c:turn_0008"}
        assert wanted_beside(chosen, 0, 600) == {}

    def test_a_best_turn_holding_a_long_message_has_none_beside_it(self) -> None:
        chosen = self.chosen(7, 20)
        chosen[0]["content"] = "user: what wood?\nassistant: " + "Oak burns slowly and evenly. " * 30
        assert wanted_beside(chosen, 2, 600) == {"c:turn_0019": "c:turn_0020", "c:turn_0021": "c:turn_0020"}

    def test_an_entry_that_is_not_a_turn_has_none_beside_it(self) -> None:
        assert wanted_beside(self.chosen(None, 4), 1, 600) == {}

    def test_the_turns_read_come_after_the_chosen_scored_as_the_last(self) -> None:
        chosen = self.chosen(7, 20, 30)
        wanted = wanted_beside(chosen, 2, 600)
        found = [turn(archive_id("c", n), n) | {"content": "user: and then?"} for n in (6, 21)]  # 8, 19: none
        placed = placed_beside(chosen, found, wanted)
        assert ids(placed) == ["c:turn_0007", "c:turn_0020", "c:turn_0030", "c:turn_0006", "c:turn_0021"]
        assert [hit["mechanism"] == BESIDE for hit in placed] == [False, False, False, True, True]
        assert [hit["blended_score"] for hit in placed[3:]] == [chosen[-1]["blended_score"]] * 2
        assert [(v["id"], v["why"]) for v in beside_verdicts(placed)] == [
            ("c:turn_0006", "the turn just before c:turn_0007, one of the best"),
            ("c:turn_0021", "the turn just after c:turn_0020, one of the best")]

    def test_a_turn_in_another_language_is_not_placed_beside(self) -> None:
        chosen = [hit | {"content": "user: We adopted a puppy today!"} for hit in self.chosen(7)]
        found = [turn(archive_id("c", 6), 6) | {"content": "user: Напомни, что мне сделали у зубного врача"},
                 turn(archive_id("c", 8), 8) | {"content": "user: His name is Pickles."}]
        assert ids(placed_beside(chosen, found, wanted_beside(chosen, 1, 600))) == ["c:turn_0007", "c:turn_0008"]

    def test_a_turn_not_wanted_is_not_placed(self) -> None:
        chosen = self.chosen(7)
        assert placed_beside(chosen, [turn(archive_id("c", 30), 30)], wanted_beside(chosen, 1, 600)) == chosen


class TestNextNearest:
    def test_the_nearest_not_chosen_come_after_the_chosen_scored_as_the_last(self) -> None:
        chosen = [turn("a", 3, distance=1.1) | {"blended_score": 0.9}, turn("b", 9, distance=1.4) | {"blended_score": 0.5}]
        by_meaning = [turn(name, n, distance=d) for name, n, d in
                      [("far", 1, 1.9), ("b", 9, 1.4), ("next", 4, 1.45), ("a", 3, 1.1), ("then", 6, 1.5)]]
        words = [turn("word", 2, distance=0.5)]  # another list's hit is not one of the nearest by meaning
        placed, verdicts = with_next_nearest(chosen, {"thematic": by_meaning, "lexical": words}, 2)
        assert ids(placed) == ["a", "b", "next", "then"]
        assert [hit["mechanism"] for hit in placed[2:]] == [NEAREST, NEAREST]
        assert [hit["blended_score"] for hit in placed[2:]] == [0.5, 0.5]
        assert [(v["id"], v["kept"], v["why"]) for v in verdicts] == [
            ("next", True, "among the next nearest by meaning, for a statement"),
            ("then", True, "among the next nearest by meaning, for a statement")]
        assert ids(with_next_nearest(chosen, {"thematic": by_meaning}, 0)[0]) == ["a", "b"]
        assert ids(with_next_nearest(chosen, {}, 2)[0]) == ["a", "b"]  # no list by meaning: nothing to add

    def test_a_statement_that_bears_on_nothing_gets_nothing(self) -> None:
        assert with_next_nearest([], {"thematic": [turn("near", 2, distance=1.2)]}, 4) == ([], [])


def hits(prefix: str, distances: list[float], mechanism: str = "thematic") -> list[dict]:
    return [turn(f"{prefix}{i}", None, distance=d) | {"mechanism": mechanism} for i, d in enumerate(distances)]


class TestChooseRecalls:
    RETRIEVAL = Retrieval(context_ratio=0, beside_weight=0)

    def choose(self, lists: dict[str, list[dict]], background: float | None, **knobs) -> list[str]:
        retrieval = self.RETRIEVAL.model_copy(update=knobs)
        return ids(choose_recalls(lists, background, NOW_TS, retrieval, max_results=15))

    def test_each_list_is_judged_against_the_background(self) -> None:
        lists = {"thematic": hits("s", [0.9, 1.3, 1.7]), "lexical": hits("w", [1.55, 1.9])}
        # 0.75 · 2.0 = 1.5 for semantic hits; 0.85 · 2.0 = 1.7 for word hits
        assert sorted(self.choose(lists, 2.0)) == ["s0", "s1", "w0"]
        assert sorted(self.choose(lists, 2.0, lexical_relevance_ratio=0.5)) == ["s0", "s1"]

    def test_a_word_hit_in_a_long_turn_must_stand_out_more(self) -> None:
        long = hits("w", [1.6])[0] | {"content": "user: thanks!\nassistant: " + "You are welcome, any time. " * 30}
        # 0.85 · 2.0 = 1.7 for a word hit; 0.78 · 2.0 = 1.56 for one in a turn holding a long message
        assert self.choose({"lexical": [long]}, 2.0, long_lexical_relevance_ratio=0.78) == []
        assert self.choose({"lexical": [long | {"content": "user: thanks!"}]}, 2.0, long_lexical_relevance_ratio=0.78) == ["w0"]
        chosen, [verdict] = choose_and_explain({"lexical": [long]}, 2.0, NOW_TS,
                                               self.RETRIEVAL.model_copy(update={"long_lexical_relevance_ratio": 0.78}), 15)
        assert verdict["why"] == "not relevant: distance 1.600 > 0.78 × background 2.000"

    def test_the_explained_choice_is_the_choice(self) -> None:
        lists = {"thematic": hits("s", [0.9, 1.3, 1.7]), "lexical": hits("w", [1.55, 1.9])}
        chosen, verdicts = choose_and_explain(lists, 2.0, NOW_TS, self.RETRIEVAL, max_results=15)
        assert chosen == choose_recalls(lists, 2.0, NOW_TS, self.RETRIEVAL, max_results=15)
        assert [(v["list"], v["id"], v["kept"]) for v in verdicts] == [
            ("thematic", "s0", True), ("thematic", "s1", True), ("thematic", "s2", False),
            ("lexical", "w0", True), ("lexical", "w1", False)]
        assert verdicts[2]["why"] == "not relevant: distance 1.700 > 0.75 × background 2.000"

    def test_without_a_background_the_gap_test_decides_and_words_alone_do_not(self) -> None:
        lists = {"thematic": hits("s", [0.2, 0.25, 1.2, 1.25, 1.3]), "lexical": hits("w", [0.1, 0.15])}
        assert sorted(self.choose(lists, None)) == ["s0", "s1"]

    def test_a_named_period_keeps_its_closest(self) -> None:
        lists = {"temporal": hits("t", [1.8, 1.85, 1.9], mechanism="temporal")}
        assert sorted(self.choose(lists, 2.0, temporal_min_results=2)) == ["t0", "t1"]
        assert self.choose({"thematic": lists["temporal"]}, 2.0, temporal_min_results=2) == []

    def test_context_comes_with_relevant_entries_only(self) -> None:
        lists = {"thematic": hits("s", [0.5, 0.6, 1.9, 1.95])}
        assert sorted(self.choose(lists, 2.0, context_ratio=0.5)) == ["s0", "s1", "s2"]
        assert self.choose({"thematic": hits("s", [1.9, 1.95])}, 2.0, context_ratio=5.0) == []

    def test_fused_ranks_order_what_is_kept(self) -> None:
        # w1 is second by meaning and first by words: it outranks s0, first by meaning only.
        semantic = hits("s", [0.5]) + [turn("w1", None, distance=0.6)]
        words = [turn("w1", None, distance=0.6), turn("w2", None, distance=0.7)]
        ranked = self.choose({"thematic": semantic, "lexical": words}, 2.0, weight_recency=0, weight_popularity=0)
        assert ranked == ["w1", "s0", "w2"]

    def test_a_statement_about_oneself_is_judged_by_meaning_first(self) -> None:
        # s1 at 0.8 × the background: too far for a question, near enough for a statement; w0 is
        # first by words, and the words' ranks do not lift it above the meaning's for a statement.
        lists = {"thematic": hits("s", [1.4, 1.6, 1.9]), "lexical": [turn("w0", None, distance=1.65)]
                 + hits("s", [1.4])}
        # Every entry that stands out, however low it scores (w0's words weigh nothing here).
        retrieval = self.RETRIEVAL.model_copy(update={"min_score_share": 0})
        question = ids(choose_recalls(lists, 2.0, NOW_TS, retrieval, max_results=15))
        statement = ids(choose_recalls(lists, 2.0, NOW_TS, retrieval, max_results=15, meaning_first=True))
        assert sorted(question) == ["s0", "w0"]
        assert statement == ["s0", "s1", "w0"]
        _, verdicts = choose_and_explain(lists, 2.0, NOW_TS, self.RETRIEVAL, max_results=15, meaning_first=True)
        assert verdicts[1]["why"] == "stands out: distance 1.600 ≤ 0.82 × background 2.000"

    def test_entries_scoring_far_below_the_best_are_left_out(self) -> None:
        # By meaning alone, the fifth scores 1/15 against the first's 1/11 (0.73 of it); when the
        # first two are also the word list's, the fourth and fifth score under 0.4 of the best.
        semantic = hits("s", [0.5, 0.6, 0.7, 0.8, 0.9])
        assert self.choose({"thematic": semantic}, 2.0, weight_recency=0, weight_popularity=0) == [
            "s0", "s1", "s2", "s3", "s4"]
        words = hits("s", [0.5, 0.6])
        both = self.choose({"thematic": semantic, "lexical": words}, 2.0, weight_recency=0, weight_popularity=0)
        assert both == ["s0", "s1", "s2"]
        assert self.choose({"thematic": semantic, "lexical": words}, 2.0, weight_recency=0, weight_popularity=0,
                           min_score_share=0) == ["s0", "s1", "s2", "s3", "s4"]

    def test_scoring_near_the_best_keeps_the_leading_entries(self) -> None:
        scored = [{"id": name, "blended_score": score} for name, score in [("a", 1.0), ("b", 0.5), ("c", 0.39)]]
        assert ids(scoring_near_the_best(scored, 0.4)) == ["a", "b"]
        assert ids(scoring_near_the_best(scored, 0)) == ["a", "b", "c"]
        assert scoring_near_the_best([], 0.4) == []

    def test_with_the_shipped_weights_recency_only_breaks_near_ties(self) -> None:
        def dated(entry_id: str, distance: float, days_ago: float) -> dict:
            return turn(entry_id, None, distance=distance) | {"timestamp": NOW_TS - days_ago * 86_400}

        shipped = Retrieval()
        # The best by meaning, two months old, stays ahead of today's third best.
        lists = {"thematic": [dated("old", 0.5, 60), dated("mid", 0.55, 60), dated("today", 0.6, 0)]}
        assert ids(choose_recalls(lists, 2.0, NOW_TS, shipped, max_results=15))[0] == "old"
        # Equal fused scores (each first in one list): the newer comes first, though farther.
        lists = {"thematic": [dated("older", 0.5, 20)], "lexical": [dated("newer", 0.6, 0)]}
        assert ids(choose_recalls(lists, 2.0, NOW_TS, shipped, max_results=15)) == ["newer", "older"]


class TestSpeaksOfOneself:
    @pytest.mark.parametrize("text", [
        "I ended up taking on the night shifts, and now I'm exhausted all the time.",
        "My knee finally stopped hurting after the physio",
        "When I was packing the boxes, I found our old wedding photos.",
        "Мы наконец-то переехали в новую квартиру.",
        "Mi hermana empezó a trabajar en Lisboa.",
        "J'ai perdu mes clés dans le train.",
    ])
    def test_statements_about_the_speaker(self, text: str) -> None:
        assert speaks_of_oneself(text)

    @pytest.mark.parametrize("text", [
        "When did I start the new job?", "when did I start the new job", "how many cats do I have",
        "Remind me of my sister's address", "Did my parcel arrive", "hi!", "what's the capital of Peru",
        "The weather has been awful all week.", "Когда я купил машину?", "¿Dónde vive mi hermana?",
        "You know what's funny? I've read more this year.", "Erinnere mich, was mit dem Keller war",
        "Подскажи, по каким дням у меня шахматы",
    ])
    def test_questions_requests_and_remarks_about_nobody(self, text: str) -> None:
        assert not speaks_of_oneself(text)


class TestWithContext:
    def test_adds_the_best_others_in_proportion(self) -> None:
        fused = {"r1": 0.9, "r2": 0.1, "o1": 0.8, "o2": 0.5, "o3": 0.4, "o4": 0.3}
        assert with_context({"r1", "r2"}, fused, context_ratio=0.5) == {"r1", "r2", "o1"}
        assert with_context({"r1", "r2"}, fused, context_ratio=1.0) == {"r1", "r2", "o1", "o2"}
        assert with_context({"r1", "r2"}, fused, context_ratio=0) == {"r1", "r2"}

    def test_nothing_relevant_adds_nothing(self) -> None:
        assert with_context(set(), {"o1": 0.9, "o2": 0.8}, context_ratio=3.0) == set()

    def test_ties_are_broken_by_id(self) -> None:
        assert with_context({"r"}, {"r": 1.0, "b": 0.5, "a": 0.5}, context_ratio=1.0) == {"r", "a"}


# ---------------------------------------------------------------- AITS


def aits(**changed: int) -> dict[str, int]:
    """assess's knobs: the shipped ones, which these budgets are worked out with, with these changed."""
    return {"base": 2000, "confidence_multiplier": 4000, "complexity_bonus": 2000, "hard_cap": 12000, **changed}


class TestAssess:
    @pytest.mark.parametrize("message", ["", "   ", "?!", "… 🙂"])
    def test_empty_is_low_confidence(self, message: str) -> None:
        assert assess(message, **aits())["confidence"] == 0.2

    def test_empty_budget(self) -> None:
        assert assess("", **aits()) == Assessment(confidence=0.2, complexity=0.0, budget=2800)

    def test_greeting_is_medium(self) -> None:
        result = assess("hello", **aits())
        assert result["confidence"] == 0.5
        assert result["complexity"] == pytest.approx(5 / 200 * 0.7)
        assert result["budget"] == round(2000 + 0.5 * 4000 + 5 / 200 * 0.7 * 2000) == 4035

    def test_two_high_cues_and_a_connector(self) -> None:
        result = assess("what and why", **aits())
        assert result["confidence"] == 0.9
        assert result["complexity"] == pytest.approx(12 / 200 * 0.7 + 0.3)
        assert result["budget"] == 6284

    @pytest.mark.parametrize(
        ("message", "confidence"),
        [
            ("Why?", 0.8),
            ("Why? Why? WHY?", 0.8),  # distinct cues
            ("how and where", 0.9),
            ("what how why", 1.0),
            ("what how why when where explain describe", 1.0),  # capped
            ("Summarise the meeting", 0.8),
            ("what's up", 0.8),  # punctuation separates words
            ("Când ai fost acolo?", 0.8),
            ("Cum și unde?", 0.9),
            ("Dece?", 0.8),
            ("de ce?", 0.8),  # "ce" is a cue on its own
            ("Explică-mi asta", 0.8),
            ("Ca\u0302nd?", 0.8),  # decomposed â
            ("care este problema", 0.5),  # medium only
            ("Is it raining?", 0.5),
            ("I like trains", 0.5),
            ("Salut!", 0.5),
        ],
    )
    def test_confidence(self, message: str, confidence: float) -> None:
        assert assess(message, **aits())["confidence"] == confidence

    @pytest.mark.parametrize(
        ("message", "connector"),
        [
            ("tea or coffee", True),
            ("tea and coffee", True),
            ("two plus two", True),
            ("first; second", True),
            ("a, b", True),
            ("pâine și unt", True),
            ("pâine şi unt", True),  # cedilla spelling
            ("ceai sau cafea", True),
            ("Și?", True),
            ("orange android", False),
            ("sistem sausage", False),
            ("andrei orbits", False),
        ],
    )
    def test_connectors(self, message: str, connector: bool) -> None:
        length_part = min(len(message) / 200, 1) * 0.7
        assert assess(message, **aits())["complexity"] == pytest.approx(length_part + 0.3 * connector)

    def test_length_saturates(self) -> None:
        assert assess("x" * 200, **aits())["complexity"] == pytest.approx(0.7)
        assert assess("x" * 5000, **aits())["complexity"] == pytest.approx(0.7)
        assert assess("x" * 5000 + ", and", **aits())["complexity"] == pytest.approx(1.0)

    def test_budget_knobs_and_cap(self) -> None:
        message = "what and why"  # confidence 0.9, complexity 0.342
        assert assess(message, **aits(base=1000, confidence_multiplier=1000, complexity_bonus=1000))["budget"] == round(
            1000 + 900 + 342
        )
        assert assess(message, **aits(hard_cap=5000))["budget"] == 5000
        assert assess(message, **aits(confidence_multiplier=100_000))["budget"] == 12000
        longest = "Explain, compare and summarise what, why and how " * 10
        assert assess(longest, **aits())["budget"] == 2000 + 4000 + 2000
        assert isinstance(assess(longest, **aits())["budget"], int)

    def test_cue_tokens(self) -> None:
        assert cue_tokens("  Când?! Explică-mi, TE ROG… ") == ["când", "explică", "mi", "te", "rog"]


# ---------------------------------------------------------------- budget split


SPLIT = {"l3_min_guarantee": 1200, "l2_floor": 500}  # the shipped ones, which these shares are worked out with


class TestSplitBudget:
    def test_guarantee_then_rest_to_l2(self) -> None:
        assert split_budget(6000, 800, **SPLIT) == LayerTokens(l0_l1=800, l2=4000, l3=1200)

    def test_l3_guarantee_holds_whatever_l2_needs(self) -> None:
        # The split never sees L2's length: a budget big enough for both always gives L3 its guarantee.
        for total in range(1700 + 300, 12001, 250):
            split = split_budget(total, 300, **SPLIT)
            assert split["l3"] == 1200
            assert split["l2"] == total - 300 - 1200

    def test_floor_wins_on_tiny_budgets(self) -> None:
        assert split_budget(2000, 400, **SPLIT) == LayerTokens(l0_l1=400, l2=500, l3=1100)
        assert split_budget(1000, 700, **SPLIT) == LayerTokens(l0_l1=700, l2=300, l3=0)
        assert split_budget(1700, 0, **SPLIT) == LayerTokens(l0_l1=0, l2=500, l3=1200)
        assert split_budget(1699, 0, **SPLIT) == LayerTokens(l0_l1=0, l2=500, l3=1199)

    def test_custom_guarantee_and_floor(self) -> None:
        assert split_budget(5000, 1000, l3_min_guarantee=3000, l2_floor=200) == LayerTokens(l0_l1=1000, l2=1000, l3=3000)
        assert split_budget(5000, 1000, l3_min_guarantee=3900, l2_floor=200) == LayerTokens(l0_l1=1000, l2=200, l3=3800)

    @pytest.mark.parametrize("total", [-100, 0, 1, 499, 500, 1199, 1700, 3000, 12000])
    @pytest.mark.parametrize("l0_l1", [-5, 0, 200, 2000, 20000])
    def test_never_negative_and_adds_up(self, total: int, l0_l1: int) -> None:
        split = split_budget(total, l0_l1, **SPLIT)
        assert min(split["l0_l1"], split["l2"], split["l3"]) >= 0
        assert split["l2"] + split["l3"] == max(0, total - max(0, l0_l1))


# ---------------------------------------------------------------- L2 trim


def words(text: str) -> int:
    return len(text.split())


def each_words(texts: list[str]) -> list[int]:
    return [words(text) for text in texts]


def message(role: str, n_words: int, tag: str) -> dict:
    return {"role": role, "content": " ".join([tag] * n_words)}


class TestTrimWorking:
    def conversation(self, first_words: int) -> list[dict]:
        return [message("user", first_words, "m0")] + [
            message("user" if i % 2 == 0 else "assistant", 10, f"m{i}") for i in range(1, 10)
        ]

    def test_newest_kept_in_chronological_order(self) -> None:
        messages = self.conversation(first_words=10)  # 10 ≥ 35/4: not pinned
        assert trim_working(messages, 35, words)[0] == messages[7:]

    def test_small_first_message_is_pinned(self) -> None:
        messages = self.conversation(first_words=5)  # 5 < 35/4
        kept = trim_working(messages, 35, words)[0]
        assert kept == [messages[0], *messages[7:]]  # 5 + 30 ≤ 35
        assert sum(words(m["content"]) for m in kept) <= 35

    def test_pinned_first_message_counts_against_the_budget(self) -> None:
        messages = self.conversation(first_words=8)  # 8 < 40/4
        assert trim_working(messages, 40, words)[0] == [messages[0], *messages[7:]]  # 8 + 30; a 4th would be 48

    def test_reports_the_tokens_of_what_it_kept(self) -> None:
        assert trim_working(self.conversation(first_words=8), 40, words)[1] == 38  # pinned 8 + 3 × 10
        assert trim_working(self.conversation(first_words=10), 35, words)[1] == 30
        assert trim_working([], 35, words) == ([], 0)

    def test_first_message_of_a_quarter_or_more_is_not_pinned(self) -> None:
        messages = self.conversation(first_words=10)
        assert trim_working(messages, 40, words)[0] == messages[6:]  # 10 == 40/4

    def test_everything_fits(self) -> None:
        messages = self.conversation(first_words=5)
        assert trim_working(messages, 1000, words)[0] == messages
        big_first = self.conversation(first_words=400)
        assert trim_working(big_first, 1000, words)[0] == big_first

    def test_window_stays_contiguous(self) -> None:
        # "x" would fit after "b" is dropped, but the history would then have a hole.
        messages = [message("user", 2, "a"), message("user", 3, "x"), message("user", 50, "b")]
        messages += [message("user", 3, "c"), message("user", 3, "d")]
        assert trim_working(messages, 40, words)[0] == [messages[0], messages[3], messages[4]]

    def test_nothing_fits(self) -> None:
        messages = [message("user", 50, "a"), message("user", 60, "b")]
        assert trim_working(messages, 40, words)[0] == []
        assert trim_working(messages, 0, words)[0] == []
        assert trim_working([], 100, words)[0] == []

    def test_input_is_not_mutated(self) -> None:
        messages = self.conversation(first_words=5)
        before = copy.deepcopy(messages)
        trim_working(messages, 35, words)[0]
        assert messages == before


@pytest.mark.parametrize("text", ["hi", "ok thanks", "What did I say about the vet?",
                                  "Compare how, why and when we moved; list the reasons, and explain each. " * 6,
                                  "x" * 5000 + ", and"])
def test_l2_read_for_a_turn_holds_whatever_its_split_can_give_l2(text: str) -> None:
    # load_working reads L2 only up to l2_ceiling(message): no L0+L1 size may leave L2 more.
    settings = Settings()
    ceiling = l2_ceiling(text, settings)
    budget = assess(text, **settings.aits.model_dump())["budget"]
    assert max(turn_split(budget, head, settings)["l2"] for head in range(0, budget + 200, 50)) == ceiling
    conversation = [message("user" if n % 2 else "assistant", 1 + n % 17, f"m{n}") for n in range(4000)]
    latest, _ = newest_within(reversed(conversation[1:]), ceiling, words)
    read = [conversation[0], *latest]  # as WorkingMemory.load gives them: the first one pinned
    assert len(read) < len(conversation)
    for head in (0, 300, 1500):
        l2 = turn_split(budget, head, settings)["l2"]
        assert trim_working(read, l2, words) == trim_working(conversation, l2, words)


# ---------------------------------------------------------------- L3 packing


STAMP = datetime(2026, 11, 20, 13, 5, 59, tzinfo=timezone.utc).timestamp()


class TestPackRecalls:
    def test_format_recall_line(self) -> None:
        entry = recall("a", 0.1, timestamp=STAMP, content="user: hi\nassistant: hello")
        assert format_recall_line(entry) == "[2026-11-20 13:05] user: hi ⏎ assistant: hello"

    def test_format_recall_line_is_one_line_in_utc(self) -> None:
        entry = recall("a", 0.1, timestamp=0.0, content="  one\r\n\r\n  two \n\nthree\u2028four ")
        line = format_recall_line(entry)
        assert line == "[1970-01-01 00:00] one ⏎ two ⏎ three ⏎ four"
        assert "\n" not in line and "\r" not in line

    def test_best_first_and_too_big_is_skipped(self) -> None:
        entries = [
            recall("small1", 0.1, content="a b c"),  # 5 words with the 2-word stamp
            recall("huge", 0.2, content=" ".join(["x"] * 50)),
            recall("small2", 0.3, content="d e f"),
            recall("medium", 0.4, content=" ".join(["y"] * 12)),
        ]
        injected, _, used = pack_recalls(entries, 20, each_words)
        assert ids(injected) == ["small1", "small2"]
        assert used == 10

    def test_fills_exactly(self) -> None:
        entries = [recall("a", 0.1, content="a b c"), recall("b", 0.2, content="d e f")]
        full, short = pack_recalls(entries, 10, each_words), pack_recalls(entries, 9, each_words)
        assert (full.recalls, full.tokens) == (entries, 10)
        assert (short.recalls, short.tokens) == (entries[:1], 5)

    def test_tokens_used_are_those_of_the_injected_lines(self) -> None:
        entries = [
            recall(f"r{i}", i / 10, timestamp=STAMP + i, content=f"user: question {i}\nassistant: answer number {i}")
            for i in range(10)
        ]
        injected, lines, used = pack_recalls(entries, 100, count_tokens_each)
        assert lines == [format_recall_line(r) for r in injected]  # the lines to inject, as counted
        assert 0 < len(injected) < 10
        assert used == sum(count_tokens(format_recall_line(r)) for r in injected) <= 100
        assert used == count_tokens("\n".join(format_recall_line(r) for r in injected))

    def test_a_line_is_taken_at_the_tokens_its_entry_stored_unless_stored_for_another_line(self) -> None:
        """An entry counts its recall line as it is written (LINE_TOKENS): packing takes that count
        and counts only the others; a count stored for other content or another time is ignored."""
        entries = [recall(f"r{i}", i / 10, timestamp=STAMP + 3600 * i, content=f"user: question {i}") for i in range(4)]
        lines = [format_recall_line(entry) for entry in entries]
        stamped = [{**entry, "metadata": {LINE_TOKENS: line_tokens_stamp(line, 7)}} for entry, line in zip(entries, lines)]
        stale = {**stamped[2], "content": "user: question 2, edited"}
        moved = {**stamped[3], "timestamp": STAMP}
        asked: list[str] = []

        def counting(texts: list[str]) -> list[int]:
            asked.extend(texts)
            return each_words(texts)

        packed = pack_recalls([stamped[0], stamped[1], stale, moved], 100, counting)
        assert asked == [format_recall_line(stale), format_recall_line(moved)]
        assert packed.tokens == 7 + 7 + len(format_recall_line(stale).split()) + len(format_recall_line(moved).split())
        assert stamped_tokens({"metadata": {LINE_TOKENS: "x:00000000"}}, lines[0]) is None

    def test_zero_budget(self) -> None:
        assert pack_recalls([recall("a", 0.1)], 0, each_words) == ([], [], 0)
        assert pack_recalls([], 100, each_words) == ([], [], 0)


# ---------------------------------------------------------------- tokens


def len_of(text: str) -> int:
    """The count straight from the tokenizer, past the remembered counts."""
    from memory.encoders.minilm_weights import load_tokenizer

    return len(load_tokenizer(truncate=False).encode(text, add_special_tokens=False).ids) if text else 0


class TestCountTokens:
    def test_empty(self) -> None:
        assert count_tokens("") == 0

    def test_wordpiece_without_special_tokens(self) -> None:
        assert count_tokens("hello world") == 2
        assert count_tokens("hello\nworld") == 2

    def test_very_long_text_is_not_truncated(self) -> None:
        text = "then " * 20_000  # 100 KB of English ("word" alone is Afrikaans, counted by e5's tokenizer)
        assert len(text) == 100_000
        assert count_tokens(text) == 20_000

    def test_a_batch_counts_like_one_by_one_and_is_remembered(self) -> None:
        texts = ["alpha beta", "", "gamma delta epsilon", "alpha beta", "naïve café ⏎ 12:30"]
        assert count_tokens_each(texts) == [len_of(text) for text in texts]
        assert count_tokens_each(texts[:1]) == [2]

    def test_counting_texts_as_they_are_stored_matches_counting_them_one_by_one(self) -> None:
        """An empty text among them counts 0 and shifts no other text's count."""
        texts = ["", "alpha beta", "Где ветеринар?", "", "gamma delta epsilon", "naïve café ⏎ 12:30"]
        assert count_unremembered(texts) == [count_tokens(text) for text in texts]

    def test_concurrent_first_use(self) -> None:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(count_tokens("a b c d"))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [4] * 8


def test_trimming_takes_a_messages_saved_token_count_instead_of_counting_again() -> None:
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return len(text.split())

    saved = [{"role": "user", "content": "one two three", "tokens": 30},
             {"role": "assistant", "content": "four", "tokens": 5},
             {"role": "user", "content": "five six"}]  # saved before counts were kept
    kept, used = trim_working(saved, 10, count)
    assert kept == saved[1:] and used == 7 and counted == ["five six"]
