"""The retrieval pipeline: what L3 holds for a message, found before the model sees it.

Prefetch runs it on every turn, with no confidence gate; the ``search_memory`` tool runs it
on the model's query. Three mechanisms run concurrently, each only when it scores above zero:
thematic (unless the message names nothing: only its language's commonest words, as "hi, how
are you?", whose closest lines are only the chat's other greetings), temporal (a
completed-past range is named, or the caller gives one) and specific-key (structural keys are
present). Thematic searches twice, by meaning (the vector
search) and by words (BM25 over the chat's word index), and the
query's background (its mean distance to the chats' entries) is read for the relevance
test. An explicit search also asks for the entries holding every word it names. The query
is embedded once, as the chats need it, with its scale (its spaces and their backgrounds),
shared: every list's distances are on it. A question the scope was asked before (the L2.5
cache holds what its thematic searches found, and its scale) is neither embedded nor
searched again, until a write or a forget in the scope. The whole search is bounded by a deadline:
whatever has not finished by then is abandoned (its worker thread may still be running;
the caller does not wait).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from datetime import datetime
from zoneinfo import ZoneInfo

from memory.retrieval.event_dates import FromEvent, from_event
from memory.retrieval.keys import structural_keys
from memory.retrieval.latest import asks_for_the_latest
from memory.retrieval.lists import EVERY_LIST, EVERY_WORD, KEYS, TEMPORAL, THEMATIC, WORDS
from memory.retrieval.statements import speaks_of_oneself
from memory.retrieval.question import Question, succeeded
from memory.retrieval.search import WORD_SCAN_CHARS, L3Search, names_something
from memory.settings import MemorySettings
from memory.retrieval.temporal import EVER, completed_past_days, completed_past_range, may_name_a_date
from memory.turns import Hit, RecallOutcome

# Why a message is judged by meaning first (merge.choose_recalls): a statement about oneself bears
# on what was said before more by meaning than by words; a question in another language than
# English, in a chat mostly of English, shares its function words with its language's few lines.
STATEMENT, ANOTHER_LANGUAGE = "a statement about its speaker", "asked in another language than English"
# What the scans read of a message: dateparser's cost grows fast with the text and a date
# phrase sits in the first lines; the key regex is cheap (~0.2 ms per 1 000 characters).
_TEMPORAL_SCAN_CHARS = 2_000
_KEY_SCAN_CHARS = 20_000


@dataclass(frozen=True)
class RecallQuery:
    """What to recall for: a message (or the model's query), whose memory, and when."""

    text: str
    chat_id: str
    user_id: str
    now: float
    # The ranked lists to build. A period given by the caller (unix seconds, inclusive;
    # either end may be None) makes the temporal list that period's, instead of one named
    # in the text.
    lists: Collection[str] = EVERY_LIST
    period: tuple[float | None, float | None] | None = None
    deadline: float | None = None  # seconds; None: prefetch.timeout


@dataclass
class Recalled:
    """Ranked lists (name -> hits, closest first; words: best first), the background, and
    how each mechanism ended (``outcome``, as the turn's observation reports it)."""

    lists: dict[str, list[Hit]]
    outcome: RecallOutcome

    @property
    def background(self) -> float | None:
        return self.outcome.get("background")

    @property
    def background_passages(self) -> int | None:
        """How many passages the background is the mean of (each entry is judged against the others')."""
        return self.outcome.get("background_passages")

    @property
    def ceiling(self) -> float | None:
        """The gap test's ceiling on the query's scale (for a chat without a background)."""
        return self.outcome.get("ceiling")

    @property
    def problems(self) -> list[str]:
        """What went wrong, one phrase each ("" list when everything answered in time)."""
        outcome = self.outcome
        words = outcome["lexical"]
        found = [f"{n} timed out" for n in outcome["timed_out"]]
        found += [f"{n} failed ({e})" for n, e in outcome["failed"].items()]
        found += ["thematic (words) timed out"] if words.get("timed_out") else []
        found += [f"thematic (words) failed ({words['failed']})"] if words.get("failed") else []
        return found


@dataclass
class _Recall:
    """One recall under way: its query, what its question's search shares, and how it went."""

    query: RecallQuery
    settings: MemorySettings
    question: Question
    outcome: RecallOutcome

    @property
    def message(self) -> str:
        return self.query.text


# ---- the mechanisms: each a list of hits, or None when it scored zero for the message -------

def _by_meaning(run: _Recall) -> asyncio.Future[list[Hit]]:
    return run.question.by_meaning  # the question's own search: the L2.5 cache's, or Chroma's


async def _by_time(run: _Recall) -> list[Hit] | None:
    settings, outcome = run.settings, run.outcome
    if run.query.period is not None:
        after, before = run.query.period
        outcome["range"] = [_iso(after, settings), _iso(before, settings)]
    else:
        scanned = run.message[:_TEMPORAL_SCAN_CHARS]
        if not may_name_a_date(scanned):
            return None  # scored zero: no digit, no date word (most messages; checked in microseconds)
        # Parsing is pure-Python CPU work: beside the embedding it slowed both through the
        # GIL (embed 8 → 19 ms); one after the other is faster, and the search needs the vector anyway.
        await run.question.scale
        when = datetime.fromtimestamp(run.query.now, ZoneInfo(settings.prefetch.timezone))
        # A period counted from an event is read first: dateparser reads "a month before the
        # trip" as last month. One counted from a date ("the week before August 3") is read as
        # before: what is told of that week is stamped on the days around the date.
        blocking = run.question.search.l3.run_blocking
        named = from_event(scanned)
        if named is not None and await blocking(completed_past_range, named.event, when) is not None:
            named = None
        found = None if named is None else await _counted_from_an_event(run, named, when)
        if found is None:
            rest = scanned if named is None else scanned.replace(named.phrase, " ")
            found = await blocking(completed_past_range, rest, when)
        if found is None:  # scored zero: a date word or a digit, but no completed past range named
            outcome["range_unread"] = "a date word or a number, but no period that ended before today"
            return None
        # A range "as of" a period has no start of its own (it starts before any entry).
        after = None if found[0].date() <= EVER else found[0].timestamp()
        before = found[1].timestamp()
        outcome["range"] = [None if after is None else found[0].isoformat(), found[1].isoformat()]
    question = run.question
    return await question.search.search(await question.chats, await question.scale, question.k, after, before)


async def _counted_from_an_event(run: _Recall, named: FromEvent, when: datetime) -> tuple[datetime, datetime] | None:
    """The completed past days of a period named by its distance from an event ("two weeks after
    the wedding"), counted from the day of the entry closest to the event's words, when that
    entry stands out (as a hit by meaning must); None otherwise."""
    search, chats = run.question.search, await run.question.chats
    scale = await search.measure(named.event, chats)
    nearest = await search.search(chats, scale, 1)
    ratio = run.settings.retrieval.relevance_ratio
    if not nearest or scale.background is None or nearest[0]["distance"] > ratio * scale.background:
        run.outcome["range_from_event"] = f"no entry stands out for {named.event!r}"
        return None
    event_day = datetime.fromtimestamp(nearest[0]["timestamp"], when.tzinfo).date()
    run.outcome["range_from_event"] = f"{nearest[0]['id']} ({event_day.isoformat()})"
    return completed_past_days(*named.days(event_day), when)


async def _by_keys(run: _Recall) -> list[Hit] | None:
    run.outcome["keys"] = structural_keys(run.message[:_KEY_SCAN_CHARS])
    if not run.outcome["keys"]:
        return None  # scored zero: no structural key
    question = run.question
    return await question.search.find_by_keys(await question.chats, run.outcome["keys"], run.settings.prefetch.max_results)


async def _holding_every_word(run: _Recall) -> list[Hit]:
    after, before = run.query.period or (None, None)
    question = run.question
    return await question.search.holding_words(await question.chats, run.message[:WORD_SCAN_CHARS],
                                               await question.scale, run.settings.prefetch.max_results, after, before)


_MECHANISMS: dict[str, Callable[[_Recall], Awaitable[list[Hit] | None]]] = {
    THEMATIC: _by_meaning, TEMPORAL: _by_time, KEYS: _by_keys, EVERY_WORD: _holding_every_word}


async def recall(search: L3Search, query: RecallQuery, settings: MemorySettings) -> Recalled:
    """Run the mechanisms for ``query`` under its deadline; never raises for a mechanism."""
    deadline = settings.prefetch.timeout if query.deadline is None else query.deadline
    outcome: RecallOutcome = {
        "fired": [], "succeeded": [], "failed": {}, "timed_out": [], "found": {}, "cache": None,
        "range": None, "keys": [], "deadline_ms": deadline * 1000, "lexical": {}, "background": None,
        "ms": {},  # per mechanism that fired and finished: when, after the start (words: "lexical")
        # Why it is judged by meaning first: a statement now; ANOTHER_LANGUAGE once its scale is known.
        "meaning_first": STATEMENT if speaks_of_oneself(query.text[:WORD_SCAN_CHARS]) else None,
        "latest_first": asks_for_the_latest(query.text),
    }
    with suppress(Exception):  # an encoder that fails to load fails the mechanisms below, reported there
        await search.load_for(query.text)
    started = time.perf_counter()  # loading an encoder is not the recall's: its deadline starts here

    def finished(name: str, task: asyncio.Future) -> None:
        """Note when a mechanism that fired finished, after the recall's start."""
        if not task.cancelled() and (task.exception() is not None or task.result() is not None):
            outcome["ms"][name] = round((time.perf_counter() - started) * 1000, 3)

    topical = names_something(query.text)
    by_meaning = THEMATIC in query.lists and topical
    words_share = settings.retrieval.lexical_max_df_share if WORDS in query.lists and topical else None
    question = Question(search, query.text, query.chat_id, query.user_id,
                        settings.memory.scope, settings.prefetch.search_k, by_meaning, words_share)
    run = _Recall(query, settings, question, outcome)
    tasks = {name: asyncio.ensure_future(mechanism(run)) for name, mechanism in _MECHANISMS.items()
             if name in query.lists and (by_meaning or name != THEMATIC)}
    # Thematic's word half, reported on its own line: a stuck vector search must not take it down.
    for name, task in [*tasks.items(), *([(WORDS, question.by_words)] if question.by_words else [])]:
        task.add_done_callback(partial(finished, name))
    await asyncio.wait([*tasks.values(), *filter(None, [question.by_words]), question.scale], timeout=deadline)

    lists: dict[str, list[Hit]] = {}
    for name, task in tasks.items():
        if not task.done():
            task.cancel()
            outcome["timed_out"].append(name)
        elif task.exception() is not None:
            outcome["failed"][name] = f"{type(task.exception()).__name__}: {task.exception()}"
        elif task.result() is not None:
            lists[name] = [{**hit, "mechanism": name} for hit in task.result()]
            outcome["succeeded"].append(name)
            outcome["found"][name] = len(lists[name])
    if (words := question.by_words) is not None:
        if not words.done():
            words.cancel()
            outcome["lexical"]["timed_out"] = True
        elif words.exception() is not None:
            outcome["lexical"]["failed"] = f"{type(words.exception()).__name__}: {words.exception()}"
        else:
            lists[WORDS] = words.result()
            outcome["lexical"]["found"] = len(lists[WORDS])
    # Fired: scored above zero (as far as it got before the deadline).
    outcome["fired"] = [THEMATIC] * (THEMATIC in tasks) + [
        name for name, scored in ((TEMPORAL, outcome["range"]), (KEYS, outcome["keys"])) if scored
    ]
    outcome["cache"] = question.cache
    if succeeded(question.scale):
        scale = question.scale.result()
        outcome["background"], outcome["backgrounds"] = scale.background, scale.backgrounds
        outcome["ceiling"] = scale.ceiling(settings.retrieval.small_result_ceiling)
        outcome["background_passages"] = scale.background_passages
        if scale.asked_in_another_language and not outcome["meaning_first"]:
            outcome["meaning_first"] = ANOTHER_LANGUAGE
    await question.finish()
    outcome["waited_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return Recalled(lists, outcome)


def _iso(moment: float | None, settings: MemorySettings) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, ZoneInfo(settings.prefetch.timezone)).isoformat()
