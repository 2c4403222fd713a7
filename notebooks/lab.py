"""What the tuning notebooks share: GOAT on a scratch folder, labelled chats imported into it,
messages inspected under chosen knobs, and the injected block scored against the chats' evidence.

The chats are the synthetic ones shipped in ``data/`` (``data/make_dataset.py``), or LoCoMo when
``$GOAT_LOCOMO`` names its file: both in LoCoMo's format, read by ``bench/support/locomo.py``. Each
notebook runs from this folder (``import lab``) and ends with ``await lab.close()``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import bench_runner, isolated_settings
from bench.report import mean
from bench.retrieval import INSPECT_OVERRIDES, OFF_TOPIC  # noqa: F401 (OFF_TOPIC: for the notebooks)
from graph.importing.importer import import_turns, transcript_of
from graph.runner import TurnRunner
from graph.settings import Settings
from memory.prompt import count_tokens_each, pack_recalls
from memory.retrieval import choose_recalls
from bench.support import locomo

Injected = tuple[set[str], int]  # the ids in the L3 block, and its tokens


@dataclass
class Lab:
    """GOAT with the shipped defaults on an embedded Redis and Chroma in a scratch folder."""

    work: Path
    settings: Settings
    runner: TurnRunner
    backends: AsyncExitStack
    started: float = field(default_factory=time.perf_counter)
    conversations: list[locomo.Conversation] = field(default_factory=list)
    questions: list[tuple[locomo.Conversation, locomo.Question]] = field(default_factory=list)

    @property
    def memory(self) -> Any:
        return self.runner.services.memory

    def elapsed(self) -> str:
        return f"{time.perf_counter() - self.started:.0f} s"


_open: list[Lab] = []


async def open_lab(prefix: str) -> Lab:
    work = Path(tempfile.mkdtemp(prefix=f"goat-{prefix}-"))
    settings = isolated_settings(Settings(), work)
    backends = AsyncExitStack()
    runner, _ = await backends.enter_async_context(bench_runner(settings))
    lab = Lab(work, settings, runner, backends)
    _open.append(lab)
    print(f"embedded Redis and Chroma in {work} (ready after {lab.elapsed()})")
    return lab


@atexit.register
def _emergency_cleanup() -> None:
    # At kernel exit after a failed cell (the last cell closes tidily): stop the embedded Redis
    # a lab started, then delete its folder.
    for lab in _open:
        lab.memory.stop_at_exit()
        shutil.rmtree(lab.work, ignore_errors=True)


async def close(lab: Lab) -> None:
    await lab.backends.aclose()
    shutil.rmtree(lab.work, ignore_errors=True)
    _open.remove(lab)
    print(f"cleaned up; total {lab.elapsed()}")


def spread(items: list, n: int | None) -> list:
    """``n`` items evenly spread over ``items`` (every session and category represented); all if None."""
    if n is None or len(items) <= n:
        return items
    return [items[int(i * len(items) / n)] for i in range(n)]


def chat_records() -> tuple[list[dict], str]:
    """The chats the notebooks run on (LoCoMo's format), and where they come from."""
    path, kind = locomo.data_path(shared_copy=False)
    return locomo.load(path), f"{path.name} ({kind})"


async def load_chats(lab: Lab, conversations: int | None, questions: int | None) -> None:
    """Import the first ``conversations`` chats (all: None) as `goat import` does, index their words
    (as a chat's next turns would), and pick ``questions`` of categories 1-4 per chat."""
    records, source = chat_records()
    lab.conversations = [locomo.build_conversation(r) for r in records[:conversations]]
    lab.questions = [(c, q) for c in lab.conversations for q in spread(c.answerable(), questions)]
    started = time.perf_counter()
    for conversation in lab.conversations:
        await import_turns(lab.memory, transcript_of(conversation.jsonl().splitlines(keepends=True)))
    print(f"data: {source}: {', '.join(f'{c.sample_id} ({c.turns} turns)' for c in lab.conversations)} "
          f"imported and indexed in {time.perf_counter() - started:.1f} s; {len(lab.questions)} questions")


def asked_at(conversation: locomo.Conversation) -> datetime:
    """When every message is asked in a conversation's chat: an hour after its last message."""
    return conversation.last_time + timedelta(hours=1)


async def inspect(lab: Lab, conversation: locomo.Conversation, text: str, overrides: dict | None = None) -> dict:
    """The turn up to the model, at :func:`asked_at`. Only the last two L2 messages are read: L3
    claims its share first, so L2's length changes nothing of L3's."""
    return await lab.runner.inspect(conversation.chat_id, text, user_id=conversation.asker,
                                    now=asked_at(conversation).timestamp(),
                                    overrides={**INSPECT_OVERRIDES, **(overrides or {})})


async def states_at(lab: Lab, overrides: dict | None = None) -> tuple[list[tuple[locomo.Question, dict]], list[dict]]:
    """The inspected states of every question, and of every off-topic message in every chat."""
    answered = [(q, await inspect(lab, c, q.text, overrides)) for c, q in lab.questions]
    off_topic = [await inspect(lab, c, text, overrides) for c in lab.conversations for text in OFF_TOPIC]
    return answered, off_topic


def block(state: dict) -> Injected:
    return {r["id"] for r in state.get("l3") or []}, state["tokens"]["l3"]


def repacked(lab: Lab, state: dict, background: float | None, share: int | None = None, **retrieval: Any) -> Injected:
    """What the state's ranked lists would inject with other retrieval knobs (and an L3 share of
    ``share`` tokens instead of the turn's): the gap filter's and the packing's own code, run
    again on what the prefetch found."""
    knobs = lab.settings.retrieval.model_copy(update=retrieval)
    candidates = choose_recalls(state["recalls"], background, state["now"], knobs, lab.settings.prefetch.max_results,
                                passages=state["prefetch"].get("background_passages"),
                                meaning_first=bool(state["prefetch"].get("meaning_first")))
    injected = pack_recalls(candidates, state["split"]["l3"] if share is None else share, count_tokens_each)
    return {r["id"] for r in injected.recalls}, injected.tokens


@dataclass(frozen=True)
class Outcome:
    """One setting, over every question and off-topic message."""

    recall: float  # a question's share of evidence turns in the injected L3 block, averaged
    any_evidence: float  # share of questions with at least one evidence turn injected
    tokens: float  # mean L3 tokens per question
    off_topic_tokens: float  # mean L3 tokens per off-topic message
    off_topic_injecting: float  # share of off-topic messages that inject anything
    off_topic_max: int


def outcome(answered: list[tuple[locomo.Question, Injected]], off_topic: list[Injected]) -> Outcome:
    recalls = [locomo.evidence_recall(q, ids) for q, (ids, _) in answered]
    return Outcome(
        recall=mean(recalls),
        any_evidence=mean(r > 0 for r in recalls),
        tokens=mean(tokens for _, (_, tokens) in answered),
        off_topic_tokens=mean(tokens for _, tokens in off_topic),
        off_topic_injecting=mean(tokens > 0 for _, tokens in off_topic),
        off_topic_max=max(tokens for _, tokens in off_topic),
    )


@dataclass(frozen=True)
class ByAge:
    """Evidence turns said before and within a number of days of the question, and their recall."""

    old_recall: float  # share of the older evidence turns injected
    recent_recall: float
    old_turns: int
    recent_turns: int


def recall_by_age(lab: Lab, injected: list[Injected], days: float) -> ByAge:
    """The evidence turns of ``lab.questions`` (``injected``: each question's block, in that order),
    split by whether they were said more than ``days`` before the question was asked."""
    hits: dict[bool, list[bool]] = {True: [], False: []}
    for (conversation, question), (ids, _) in zip(lab.questions, injected):
        for dialog, entry in question.evidence_map.items():
            old = asked_at(conversation) - conversation.said_at[dialog] > timedelta(days=days)
            hits[old].append(entry in ids)
    return ByAge(mean(hits[True]), mean(hits[False]), len(hits[True]), len(hits[False]))


def table(rows: list[tuple], headers: list[str]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)))


def show(knob: str, results: dict[Any, Outcome], default: Any) -> None:
    """One row per value of the knob: recall, tokens, and what off-topic messages cost."""
    rows = []
    for value, o in results.items():
        label = (f"{value:g}" if isinstance(value, float) else str(value)) + (" (default)" if value == default else "")
        rows.append((label, f"{o.recall:.1%}", f"{o.any_evidence:.1%}", f"{o.tokens:.0f}", f"{o.off_topic_tokens:.0f}",
                     f"{o.off_topic_injecting:.0%}", o.off_topic_max))
    table(rows, [knob, "evidence recall", "≥1 evidence turn", "L3 tokens", "off-topic L3 tokens",
                 "off-topic injecting", "off-topic max"])
