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
from collections.abc import Callable, Collection
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from memory.stores.backends import cache_scope_key
from memory.stores.cache import SearchCache
from memory.retrieval.keys import structural_keys
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

THEMATIC, WORDS, TEMPORAL, KEYS = "thematic", "lexical", "temporal", "specific_key"
EVERY_LIST = frozenset({THEMATIC, WORDS, TEMPORAL, KEYS})
# An explicit search's own list, never prefetch's: the entries holding every word searched for,
# however common (the word list skips common words, and in a small chat a name is common).
EVERY_WORD = "every_word"


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


async def recall(search: L3Search, query: RecallQuery, settings: Settings) -> Recalled:
    """Run the mechanisms for ``query`` under its deadline; never raises for a mechanism."""
    backends = search.backends
    message, chat_id, user_id = query.text, query.chat_id, query.user_id
    scope, k = settings.memory.scope, settings.prefetch.search_k
    deadline = settings.prefetch.timeout if query.deadline is None else query.deadline
    with suppress(Exception):  # an encoder that fails to load fails the mechanisms below, reported there
        await search.load_for(message)
    outcome: dict[str, Any] = {
        "fired": [], "succeeded": [], "failed": {}, "timed_out": [], "found": {}, "cache": None,
        "range": None, "keys": [], "deadline_ms": deadline * 1000, "lexical": {}, "background": None,
        "ms": {},  # per mechanism that fired and finished: when, after the start (words: "lexical")
    }
    started = time.perf_counter()

    topical = not names_nothing(message[:_LEXICAL_SCAN_CHARS])
    by_meaning, by_words = THEMATIC in query.lists and topical, WORDS in query.lists and topical
    # Shared by the mechanisms: the scope resolved once, the question's earlier search looked up
    # in the L2.5 cache, and the query embedded once, with its scale (unless it was asked before).
    chats_task = asyncio.ensure_future(backends.scope_chats(chat_id, user_id, scope))
    # Under "user", whether the chat is one of the user's: only then are its searches cached.
    users_chats_task = (asyncio.ensure_future(backends.chats_of_user(user_id))
                        if scope == "user" and by_meaning else None)
    scope_key = cache_scope_key(chat_id, user_id, scope)
    digest = SearchCache.digest(message, k=k, words=settings.retrieval.lexical_max_df_share if by_words else None)

    async def look_up() -> tuple[Searched | None, str | None]:
        if not by_meaning:
            return None, None
        if users_chats_task is not None and chat_id not in await users_chats_task:
            # A chat the user never wrote to: a "user:" cache entry covers the user's chats only
            # (their writes and forgets invalidate it), so a search that also covers this one
            # is not cached, or the user's other chats would be served this chat's entries,
            # forgotten ones included.
            return None, None
        searched, generation = await search.look_up(scope_key, digest)
        outcome["cache"] = {"hit": searched is not None, "key": digest}
        return searched, generation

    lookup_task = asyncio.ensure_future(look_up())

    async def asked_before() -> Searched | None:
        with suppress(Exception):  # reported by the thematic search, which awaits the lookup too
            return (await lookup_task)[0]
        return None

    async def measure_scale() -> Scale:
        return await search.measure(message, await chats_task, chat_id)

    measuring = asyncio.ensure_future(measure_scale())

    async def question_scale() -> Scale:
        if (searched := await asked_before()) is not None:
            measuring.cancel()
            return searched.scale
        return await measuring

    scale_task = asyncio.ensure_future(question_scale())

    async def thematic() -> list[dict]:
        searched, _ = await lookup_task
        if searched is not None:
            return searched.thematic
        return await search.search(await chats_task, await scale_task, k)

    async def lexical() -> list[dict]:
        if (searched := await asked_before()) is not None and searched.words is not None:
            return searched.words
        found = await search.lexical_search(await chats_task, message[:_LEXICAL_SCAN_CHARS], k,
                                            settings.retrieval.lexical_max_df_share)
        if not found:
            return []
        measured = (await scale_task).of_passages(np.array([stored for _, stored, _ in found]))
        return [{**hit, "distance": float(distance), "mechanism": THEMATIC}
                for (hit, _, _), distance in zip(found, measured)]

    async def temporal() -> list[dict] | None:
        if query.period is not None:
            after, before = query.period
            outcome["range"] = [_iso(after, settings), _iso(before, settings)]
        else:
            if not may_name_a_date(message[:_TEMPORAL_SCAN_CHARS]):
                return None  # scored zero: no digit, no date word (most messages; checked in microseconds)
            # Parsing is pure-Python CPU work: beside the embedding it slowed both through the
            # GIL (embed 8 → 19 ms); one after the other is faster, and the search needs the vector anyway.
            await scale_task
            when = datetime.fromtimestamp(query.now, ZoneInfo(settings.prefetch.timezone))
            found = await backends.run_blocking(completed_past_range, message[:_TEMPORAL_SCAN_CHARS], when)
            if found is None:
                return None  # scored zero: no completed past range named
            after, before = (dt.timestamp() for dt in found)
            outcome["range"] = [found[0].isoformat(), found[1].isoformat()]
        return await search.search(await chats_task, await scale_task, k, after, before)

    async def specific_key() -> list[dict] | None:
        outcome["keys"] = structural_keys(message[:_KEY_SCAN_CHARS])
        if not outcome["keys"]:
            return None  # scored zero: no structural key
        return await search.find_by_keys(await chats_task, outcome["keys"], settings.prefetch.max_results)

    async def every_word() -> list[dict]:
        after, before = query.period or (None, None)
        return await search.holding_words(await chats_task, message[:_LEXICAL_SCAN_CHARS], await scale_task,
                                          settings.prefetch.max_results, after, before)

    mechanisms = {name: make for name, make in ((THEMATIC, thematic), (TEMPORAL, temporal), (KEYS, specific_key),
                                                (EVERY_WORD, every_word))
                  if name in query.lists and (by_meaning or name != THEMATIC)}
    tasks = {name: asyncio.ensure_future(make()) for name, make in mechanisms.items()}
    # Thematic's word half, reported on its own line: a stuck vector search must not take it down.
    lexical_task = asyncio.ensure_future(lexical()) if by_words else None

    def timed(name: str) -> Callable[[asyncio.Future], None]:
        def finished(task: asyncio.Future) -> None:
            if not task.cancelled() and (task.exception() is not None or task.result() is not None):
                outcome["ms"][name] = round((time.perf_counter() - started) * 1000, 3)
        return finished

    for name, task in [*tasks.items(), *([(WORDS, lexical_task)] if lexical_task else [])]:
        task.add_done_callback(timed(name))
    await asyncio.wait([*tasks.values(), *([lexical_task] if lexical_task else []), scale_task],
                       timeout=deadline)

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
    if lexical_task is not None and _finished_words(lexical_task, outcome["lexical"]):
        lists[WORDS] = lexical_task.result()
    # Fired: scored above zero (as far as it got before the deadline).
    outcome["fired"] = [THEMATIC] * (THEMATIC in tasks) + [
        name for name, scored in ((TEMPORAL, outcome["range"]), (KEYS, outcome["keys"])) if scored
    ]
    if scale_task.done() and not scale_task.cancelled() and scale_task.exception() is None:
        scale = scale_task.result()
        outcome["background"], outcome["backgrounds"] = scale.background, scale.backgrounds
        outcome["ceiling"] = scale.ceiling(settings.retrieval.small_result_ceiling)
        missed = outcome["cache"] is not None and not outcome["cache"]["hit"]
        if THEMATIC in lists and missed and (generation := lookup_task.result()[1]) is not None:
            words = lists[WORDS] if WORDS in lists else None  # None: a question asked again searches them
            await search.remember(scope_key, digest, Searched(tasks[THEMATIC].result(), words, scale), generation)
    for shared in (chats_task, lookup_task, measuring, scale_task, *filter(None, [users_chats_task])):
        if not shared.done():
            shared.cancel()
        elif not shared.cancelled():
            shared.exception()  # retrieved here; reported through the mechanisms that awaited it
    outcome["waited_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return Recalled(lists, outcome)


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
