"""The retrieval pipeline: what L3 holds for a message, found before the model sees it.

Prefetch runs it on every turn, with no confidence gate; the ``search_memory`` tool runs it
on the model's query. The mechanisms (:mod:`memory.retrieval.mechanisms`, one module each) run
concurrently, each only when it scores above zero: thematic by meaning and by words (unless the
message names nothing: only its language's commonest words, as "hi, how are you?", whose
closest lines are only the chat's other greetings), temporal (a completed-past range is named,
or the caller gives one) and specific-key (structural keys are present); an explicit search
also asks for the entries holding every word it names. The query's background (its mean
distance to the chats' entries) is read for the relevance test. The query is embedded once, as
the chats need it, with its scale (its spaces and their backgrounds), shared: every list's
distances are on it. A question the scope was asked before (the L2.5 cache holds what its
thematic searches found, and its scale) is neither embedded nor searched again, until a write
or a forget in the scope. The whole search is bounded by a deadline: whatever has not finished
by then is abandoned (its worker thread may still be running; the caller does not wait).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from dataclasses import dataclass
from functools import partial

from memory.retrieval.choosing.latest import asks_for_the_latest
from memory.retrieval.mechanism import BY_MEANING, BY_WORDS, Note, RecallQuery, RecallRun
from memory.retrieval.mechanisms import prefetched, registered
from memory.retrieval.message.statements import speaks_of_oneself
from memory.retrieval.finding.futures import succeeded
from memory.retrieval.finding.question import Question, QuestionServices
from memory.retrieval.finding.search import WORD_SCAN_CHARS, names_something
from memory.settings import MemorySettings
from memory.turns import Hit, MechanismNote, RecallOutcome

__all__ = ["RecallQuery", "Recalled", "recall"]

# Why a message is judged by meaning first (merge.choose_recalls): a statement about oneself bears
# on what was said before more by meaning than by words; a question in another language than
# English, in a chat mostly of English, shares its function words with its language's few lines.
STATEMENT, ANOTHER_LANGUAGE = "a statement about its speaker", "asked in another language than English"


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
        return [f"{n} timed out" for n in outcome["timed_out"]] + [
            f"{n} failed ({e})" for n, e in outcome["failed"].items()]


async def recall(services: QuestionServices, query: RecallQuery, settings: MemorySettings) -> Recalled:
    """Run the registered mechanisms ``query`` asks for under its deadline; never raises for a
    mechanism."""
    deadline = settings.prefetch.timeout if query.deadline is None else query.deadline
    outcome: RecallOutcome = {
        "fired": [], "succeeded": [], "failed": {}, "timed_out": [], "found": {}, "cache": None,
        "notes": {}, "deadline_ms": deadline * 1000, "background": None,
        "ms": {},  # per mechanism that fired and finished: when, after the start
        # Why it is judged by meaning first: a statement now; ANOTHER_LANGUAGE once its scale is known.
        "meaning_first": STATEMENT if speaks_of_oneself(query.text[:WORD_SCAN_CHARS]) else None,
        "latest_first": asks_for_the_latest(query.text),
    }
    with suppress(Exception):  # an encoder that fails to load fails the mechanisms below, reported there
        await services.ahead.load_for(query.text)
    started = time.perf_counter()  # loading an encoder is not the recall's: its deadline starts here

    def finished(name: str, task: asyncio.Future) -> None:
        """Note when a mechanism that fired finished, after the recall's start."""
        if not task.cancelled() and (task.exception() is not None or task.result() is not None):
            outcome["ms"][name] = round((time.perf_counter() - started) * 1000, 3)

    asked = prefetched() if query.lists is None else query.lists
    topical = names_something(query.text)
    running = [each for each in registered() if each.name in asked and (topical or not each.topical)]
    searches = {each.question_search for each in running}
    words_share = settings.retrieval.lexical_max_df_share if BY_WORDS in searches else None
    question = Question(services, query.text, query.chat_id, query.user_id, settings.memory.scope,
                        settings.prefetch.search_k, BY_MEANING in searches, words_share)
    # Each mechanism notes what it read (a period, keys) in a note of its own.
    notes: dict[str, Note] = {each.name: {} for each in running}
    tasks = {each.name: asyncio.ensure_future(each.find(RecallRun(query, settings, question, outcome, notes[each.name])))
             for each in running}
    for name, task in tasks.items():  # each on its own line: a stuck one must not take the others down
        task.add_done_callback(partial(finished, name))
    await asyncio.wait([*tasks.values(), question.scale], timeout=deadline)

    lists: dict[str, list[Hit]] = {}
    for name, task in tasks.items():
        if not task.done():
            task.cancel()
            outcome["timed_out"].append(name)
        elif task.exception() is not None:
            outcome["failed"][name] = f"{type(task.exception()).__name__}: {task.exception()}"
        elif task.result() is None:
            continue  # scored zero: it did not fire
        else:
            lists[name] = [{**hit, "mechanism": name} for hit in task.result()]
            outcome["succeeded"].append(name)
            outcome["found"][name] = len(lists[name])
        outcome["fired"].append(name)  # as far as it got before the deadline: one that failed or timed out counts
    outcome["cache"] = question.cache
    outcome["notes"] = _rendered(notes)
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


def _rendered(notes: dict[str, Note]) -> dict[str, MechanismNote]:
    """Every registered mechanism's note as the reports show it (one that did not run, as its
    empty note shows), but those that show nothing."""
    rendered = {each.name: each.rendered(notes.get(each.name, {})) for each in registered()}
    return {name: note for name, note in rendered.items() if note["reported"] or note["logged"] or note["said"]}
