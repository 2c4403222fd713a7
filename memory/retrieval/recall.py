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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from memory.stores.backends import cache_scope_key
from memory.stores.cache import SearchCache
from memory.stores.chat_users import chats_of_user, scope_chats
from memory.retrieval.keys import structural_keys
from memory.retrieval.lists import EVERY_LIST, EVERY_WORD, KEYS, TEMPORAL, THEMATIC, WORDS
from memory.retrieval.scale import Scale
from memory.retrieval.search import L3Search, Searched
from memory.settings import Settings
from memory.retrieval.temporal import completed_past_range, may_name_a_date
from memory.words import names_nothing

# What the scans read of a message: dateparser's cost grows fast with the text and a date
# phrase sits in the first lines; the key regex is cheap (~0.2 ms per 1 000 characters).
_TEMPORAL_SCAN_CHARS = 2_000
_KEY_SCAN_CHARS = 20_000
# The word search reads the first lines too: its cost grows with the distinct words asked.
_LEXICAL_SCAN_CHARS = 2_000


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

    lists: dict[str, list[dict]] = field(default_factory=dict)
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def background(self) -> float | None:
        return self.outcome.get("background")

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


class _Recall:
    """One recall under way: its query, and what its mechanisms share (the scope's chats, the
    question's earlier search looked up in the L2.5 cache, its scale), each started once."""

    def __init__(self, search: L3Search, query: RecallQuery, settings: Settings) -> None:
        backends = search.backends
        self.search, self.query, self.settings = search, query, settings
        self.message, self.k = query.text, settings.prefetch.search_k
        scope, chat_id, user_id = settings.memory.scope, query.chat_id, query.user_id
        self.outcome: dict[str, Any] = {
            "fired": [], "succeeded": [], "failed": {}, "timed_out": [], "found": {}, "cache": None,
            "range": None, "keys": [], "deadline_ms": self.deadline * 1000, "lexical": {}, "background": None,
            "ms": {},  # per mechanism that fired and finished: when, after the start (words: "lexical")
        }
        self.started = time.perf_counter()
        topical = not names_nothing(self.message[:_LEXICAL_SCAN_CHARS])
        self.by_meaning, self.by_words = THEMATIC in query.lists and topical, WORDS in query.lists and topical
        self.chats = asyncio.ensure_future(scope_chats(backends, chat_id, user_id, scope))
        # Under "user", whether the chat is one of the user's: only then are its searches cached.
        self.users_chats = (asyncio.ensure_future(chats_of_user(backends, user_id))
                            if scope == "user" and self.by_meaning else None)
        self.scope_key = cache_scope_key(chat_id, user_id, scope)
        self.digest = SearchCache.digest(self.message, k=self.k,
                                         words=settings.retrieval.lexical_max_df_share if self.by_words else None)
        self.lookup = asyncio.ensure_future(self._look_up())
        self.measuring = asyncio.ensure_future(self._measure())
        self.scale = asyncio.ensure_future(self._question_scale())

    @property
    def deadline(self) -> float:
        return self.settings.prefetch.timeout if self.query.deadline is None else self.query.deadline

    async def _look_up(self) -> tuple[Searched | None, str | None]:
        if not self.by_meaning:
            return None, None
        if self.users_chats is not None and self.query.chat_id not in await self.users_chats:
            # A chat the user never wrote to: a "user:" cache entry covers the user's chats only
            # (their writes and forgets invalidate it), so a search that also covers this one
            # is not cached, or the user's other chats would be served this chat's entries,
            # forgotten ones included.
            return None, None
        searched, generation = await self.search.look_up(self.scope_key, self.digest)
        self.outcome["cache"] = {"hit": searched is not None, "key": self.digest}
        return searched, generation

    async def asked_before(self) -> Searched | None:
        with suppress(Exception):  # reported by the thematic search, which awaits the lookup too
            return (await self.lookup)[0]
        return None

    async def _measure(self) -> Scale:
        return await self.search.measure(self.message, await self.chats, self.query.chat_id)

    async def _question_scale(self) -> Scale:
        if (searched := await self.asked_before()) is not None:
            self.measuring.cancel()
            return searched.scale
        return await self.measuring

    async def remember(self, lists: dict[str, list[dict]], thematic: asyncio.Future | None) -> None:
        """On a cache miss, keep what the thematic searches found, with the scale, for the
        question asked again."""
        missed = self.outcome["cache"] is not None and not self.outcome["cache"]["hit"]
        if thematic is not None and THEMATIC in lists and missed and (generation := self.lookup.result()[1]) is not None:
            words = lists[WORDS] if WORDS in lists else None  # None: a question asked again searches them
            await self.search.remember(self.scope_key, self.digest,
                                       Searched(thematic.result(), words, self.scale.result()), generation)

    def let_go(self) -> None:
        """Cancel the shared work nobody waited for; retrieve the errors of the rest (reported
        through the mechanisms that awaited it)."""
        for shared in (self.chats, self.lookup, self.measuring, self.scale, *filter(None, [self.users_chats])):
            if not shared.done():
                shared.cancel()
            elif not shared.cancelled():
                shared.exception()


# ---- the mechanisms: each a list of hits, or None when it scored zero for the message -------

async def _by_meaning(run: _Recall) -> list[dict]:
    searched, _ = await run.lookup
    if searched is not None:
        return searched.thematic
    return await run.search.search(await run.chats, await run.scale, run.k)


async def _by_words(run: _Recall) -> list[dict]:
    """Thematic's word half: BM25 over the chats' word index, its hits put on the query's scale."""
    if (searched := await run.asked_before()) is not None and searched.words is not None:
        return searched.words
    found = await run.search.lexical_search(await run.chats, run.message[:_LEXICAL_SCAN_CHARS], run.k,
                                            run.settings.retrieval.lexical_max_df_share)
    if not found:
        return []
    measured = (await run.scale).of_passages(np.array([stored for _, stored, _ in found]))
    return [{**hit, "distance": float(distance), "mechanism": WORDS}
            for (hit, _, _), distance in zip(found, measured)]


async def _by_time(run: _Recall) -> list[dict] | None:
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
        await run.scale
        when = datetime.fromtimestamp(run.query.now, ZoneInfo(settings.prefetch.timezone))
        found = await run.search.backends.run_blocking(completed_past_range, scanned, when)
        if found is None:
            return None  # scored zero: no completed past range named
        after, before = (dt.timestamp() for dt in found)
        outcome["range"] = [found[0].isoformat(), found[1].isoformat()]
    return await run.search.search(await run.chats, await run.scale, run.k, after, before)


async def _by_keys(run: _Recall) -> list[dict] | None:
    run.outcome["keys"] = structural_keys(run.message[:_KEY_SCAN_CHARS])
    if not run.outcome["keys"]:
        return None  # scored zero: no structural key
    return await run.search.find_by_keys(await run.chats, run.outcome["keys"], run.settings.prefetch.max_results)


async def _holding_every_word(run: _Recall) -> list[dict]:
    after, before = run.query.period or (None, None)
    return await run.search.holding_words(await run.chats, run.message[:_LEXICAL_SCAN_CHARS], await run.scale,
                                          run.settings.prefetch.max_results, after, before)


_MECHANISMS: dict[str, Callable[[_Recall], Awaitable[list[dict] | None]]] = {
    THEMATIC: _by_meaning, TEMPORAL: _by_time, KEYS: _by_keys, EVERY_WORD: _holding_every_word}


async def recall(search: L3Search, query: RecallQuery, settings: Settings) -> Recalled:
    """Run the mechanisms for ``query`` under its deadline; never raises for a mechanism."""
    with suppress(Exception):  # an encoder that fails to load fails the mechanisms below, reported there
        await search.load_for(query.text)
    run = _Recall(search, query, settings)
    outcome = run.outcome
    tasks = {name: asyncio.ensure_future(mechanism(run)) for name, mechanism in _MECHANISMS.items()
             if name in query.lists and (run.by_meaning or name != THEMATIC)}
    # Thematic's word half, reported on its own line: a stuck vector search must not take it down.
    words_task = asyncio.ensure_future(_by_words(run)) if run.by_words else None
    for name, task in [*tasks.items(), *([(WORDS, words_task)] if words_task else [])]:
        task.add_done_callback(_timed(name, run))
    await asyncio.wait([*tasks.values(), *([words_task] if words_task else []), run.scale], timeout=run.deadline)

    lists: dict[str, list[dict]] = {}
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
    if words_task is not None and _finished_words(words_task, outcome["lexical"]):
        lists[WORDS] = words_task.result()
    # Fired: scored above zero (as far as it got before the deadline).
    outcome["fired"] = [THEMATIC] * (THEMATIC in tasks) + [
        name for name, scored in ((TEMPORAL, outcome["range"]), (KEYS, outcome["keys"])) if scored
    ]
    if run.scale.done() and not run.scale.cancelled() and run.scale.exception() is None:
        scale = run.scale.result()
        outcome["background"], outcome["backgrounds"] = scale.background, scale.backgrounds
        outcome["ceiling"] = scale.ceiling(settings.retrieval.small_result_ceiling)
        await run.remember(lists, tasks.get(THEMATIC))
    run.let_go()
    outcome["waited_ms"] = round((time.perf_counter() - run.started) * 1000, 3)
    return Recalled(lists, outcome)


def _timed(name: str, run: _Recall) -> Callable[[asyncio.Future], None]:
    """A done-callback noting when a mechanism that fired finished, after the recall's start."""
    def finished(task: asyncio.Future) -> None:
        if not task.cancelled() and (task.exception() is not None or task.result() is not None):
            run.outcome["ms"][name] = round((time.perf_counter() - run.started) * 1000, 3)
    return finished


def _finished_words(task: asyncio.Future, report: dict[str, Any]) -> bool:
    """Record how the word search ended in ``report``; True if it succeeded."""
    if not task.done():
        task.cancel()
        report["timed_out"] = True
        return False
    if task.exception() is not None:
        report["failed"] = f"{type(task.exception()).__name__}: {task.exception()}"
        return False
    report["found"] = len(task.result())
    return True


def _iso(moment: float | None, settings: Settings) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, ZoneInfo(settings.prefetch.timezone)).isoformat()
