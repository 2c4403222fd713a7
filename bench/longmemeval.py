"""Section ``longmemeval``: an assistant's own chats, where a person talks and a model answers at length.

LongMemEval_S (Wu et al., ICLR 2025, MIT; https://github.com/xiaowu0162/LongMemEval) gives each
question its own history of ~50 dated sessions between a user and an assistant whose replies run
to hundreds of tokens; a few messages hold the answer. Each item is imported as its own chat, as
`goat import` would, and its question is asked through the turn up to the model at the item's
``asked_at``. Measured: the share of the answer messages in the injected L3 block, beside plain
top-k (whole turns, by meaning) packed into the same tokens; by question type and by half (the
even items tune, the odd ones are held back and decide); and what off-topic messages inject in
the same chats.

An answer message counts as injected when the block holds its first 80 characters, or, for a
message over 400 characters, its sentence sharing the most words with the gold answer: GOAT may
inject a verbatim excerpt of a long turn instead of the whole of it.

The items are read from ``$GOAT_LONGMEMEVAL`` or ``../shared/data/longmemeval-s-dev.json.gz``;
the section says in one line that it is skipped without them.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.harness import BenchOptions, bench_runner, conditions, isolated_settings
from bench.report import SectionResult, markdown_table, mean, percent
from bench.retrieval import INSPECT_OVERRIDES, OFF_TOPIC, import_conversations, plain_ranked
from graph.runner import TurnRunner
from memory.prompt import count_tokens_each, pack_recalls
from bench.support import locomo

DEFAULT_PATH = locomo.REPO.parent / "shared" / "data" / "longmemeval-s-dev.json.gz"
ENV_VAR = "GOAT_LONGMEMEVAL"
HALVES = ("tuning", "held-back")
TYPES = ("single-session-user", "single-session-assistant", "single-session-preference", "knowledge-update",
         "multi-session", "temporal-reasoning")
GOAT, PLAIN = "GOAT prefetch", "top-k at GOAT's tokens"
WHOLE_MESSAGE_CHARS = 400  # a message up to this long counts by its start; a longer one by its answer's sentence
MESSAGE_START_CHARS = 80
OFF_TOPIC_PER_CHAT = 5  # each chat is sent five of the off-topic messages, in turn
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+")
# What one message asked finds: GOAT's injected entries, their L3 tokens, plain top-k's ids in those tokens.
Asked = tuple[list[dict[str, Any]], int, list[str]]


def data_path() -> Path | None:
    """The items' file, or None when there is none."""
    return data_file(ENV_VAR, DEFAULT_PATH)


def data_file(variable: str, default: Path) -> Path | None:
    """The file ``$variable`` names, else ``default``; None when it is not there."""
    explicit = os.environ.get(variable)
    path = Path(explicit).expanduser() if explicit else default
    return path if path.is_file() else None


def skipped(name: str, variable: str, default: Path) -> SectionResult:
    """A section of data not shipped, without it: said in one line."""
    print(f"{name}: skipped (no {default} and no ${variable})", flush=True)
    return SectionResult(name, {"skipped": True, "conditions": conditions()})


def load(path: Path) -> list[dict[str, Any]]:
    """The items, each a conversation in LoCoMo's layout with its ``asked_at`` and ``question_type``."""
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")) as file:
        return json.load(file)


def half_of(number: int) -> str:
    return HALVES[number % 2]


def asked_at(item: dict[str, Any]) -> float:
    """When the item's questions are asked (its sessions' times are UTC, as the import reads them)."""
    return locomo.parse_iso_time(item["asked_at"]).timestamp()


def messages_by_dialog_id(item: dict[str, Any]) -> dict[str, str]:
    record = item["conversation"]
    return {turn["dia_id"]: locomo.message_text(turn)
            for number in locomo.sessions_of(item) for turn in record[f"session_{number}"]}


def answer_sentence(message: str, answer: str) -> str:
    """The message's sentence sharing the most words with the gold answer (the first of equals)."""
    wanted = set(_WORD.findall(answer.lower()))
    sentences = [s.strip() for s in _SENTENCE_END.split(message) if s.strip()]
    return max(sentences, key=lambda s: len(wanted & set(_WORD.findall(s.lower()))), default=message)


def message_injected(message: str, answer: str, injected: Iterable[str]) -> bool:
    """Whether one of the injected texts holds the message's start (a short message) or the
    sentence of a long one that answers."""
    wanted = (message[:MESSAGE_START_CHARS] if len(message) <= WHOLE_MESSAGE_CHARS
              else answer_sentence(message, answer))
    return any(wanted in text for text in injected)


async def ask(runner: TurnRunner, conversation: locomo.Conversation, text: str, now: float) -> Asked:
    """GOAT's injected entries and their tokens for ``text`` asked at ``now``, and the ids of plain
    top-k's whole turns packed into those tokens."""
    state = await runner.inspect(conversation.chat_id, text, user_id=conversation.asker, now=now,
                                 overrides=INSPECT_OVERRIDES)
    tokens = state["tokens"]["l3"]
    ranked = await plain_ranked(runner, conversation, text)
    return list(state.get("l3") or []), tokens, [h["id"] for h in pack_recalls(ranked, tokens, count_tokens_each).recalls]


def question_row(number: int, item: dict[str, Any], conversation: locomo.Conversation, qa: locomo.Question,
                 asked: Asked) -> dict[str, Any]:
    return {"item": number, "sample_id": conversation.sample_id, "half": half_of(number),
            "type": item["question_type"], **measured(messages_by_dialog_id(item), qa, asked)}


def measured(said: dict[str, str], qa: locomo.Question, asked: Asked, *, in_its_turn: bool = False) -> dict[str, Any]:
    """The question, its evidence messages and, per method, their share injected, its tokens and
    entries. ``said``: each dialog id's message. ``in_its_turn``: a message counts only when its own
    turn's entry holds it (a short one, "Yeah", may stand in many turns)."""
    injected, tokens, plain_ids = asked
    evidence = [d for d in qa.evidence if d in qa.evidence_map]
    found_goat = [message_injected(said[d], qa.answer, [
        hit["content"] for hit in injected if not in_its_turn or hit["id"] == qa.evidence_map[d]]) for d in evidence]
    found_plain = [qa.evidence_map[d] in plain_ids for d in evidence]
    return {"question": qa.text, "evidence": evidence,
            "methods": {GOAT: {"recall": mean(found_goat), "tokens": tokens, "entries": len(injected)},
                        PLAIN: {"recall": mean(found_plain), "tokens": tokens, "entries": len(plain_ids)}}}


async def run(options: BenchOptions) -> SectionResult:
    path = data_path()
    if path is None:
        return skipped("longmemeval", ENV_VAR, DEFAULT_PATH)
    items = load(path)
    conversations = [conversation_of(number, item) for number, item in enumerate(items)]
    folder = options.root / "longmemeval-scratch"
    shutil.rmtree(folder, ignore_errors=True)
    async with bench_runner(isolated_settings(options.settings, folder)) as (runner, _):
        await import_conversations(runner, conversations)
        rows, off_topic = await ask_all(runner, items, conversations, lambda conversation: conversation.questions,
                                        off_topic_of, question_row)
    shutil.rmtree(folder, ignore_errors=True)
    data = summarise(rows, off_topic, "type", TYPES)
    data["conditions"] = {**conditions(), "data": str(path), "items": len(items),
                          "turns": sum(c.turns for c in conversations)}
    return SectionResult("longmemeval", data, tables(data, "type", "LongMemEval: the answer messages in the injected L3 "
                                                         "block (each item its own chat, asked at its time)"))


def conversation_of(number: int, item: dict[str, Any]) -> locomo.Conversation:
    return locomo.build_conversation(item, chat_id=f"lme-{number:03d}", user_id="longmemeval")


def off_topic_of(number: int) -> list[str]:
    """The off-topic messages the item's chat is sent: the next five of the LoCoMo section's."""
    return [OFF_TOPIC[(number * OFF_TOPIC_PER_CHAT + offset) % len(OFF_TOPIC)] for offset in range(OFF_TOPIC_PER_CHAT)]


async def ask_all(
    runner: TurnRunner, items: list[dict[str, Any]], conversations: list[locomo.Conversation],
    questions_of: Callable[[locomo.Conversation], list[locomo.Question]], off_topic_texts: Callable[[int], list[str]],
    row: Callable[[int, dict[str, Any], locomo.Conversation, locomo.Question, Asked], dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[int]]:
    """Each chat's questions (``row`` of each) and then its off-topic messages (their L3 tokens),
    asked in it at its item's ``asked_at``."""
    from tqdm import tqdm

    rows: list[dict[str, Any]] = []
    off_topic: list[int] = []
    total = sum(len(questions_of(c)) + len(off_topic_texts(n)) for n, c in enumerate(conversations))
    with tqdm(total=total, unit="message", desc="asking", file=sys.stderr) as bar:
        for number, (item, conversation) in enumerate(zip(items, conversations)):
            now = asked_at(item)
            for qa in questions_of(conversation):
                rows.append(row(number, item, conversation, qa, await ask(runner, conversation, qa.text, now)))
                bar.update()
            for text in off_topic_texts(number):
                off_topic.append((await ask(runner, conversation, text, now))[1])
                bar.update()
    return rows, off_topic


def summarise(rows: list[dict[str, Any]], off_topic: list[int], key: str, groups: tuple[str, ...]) -> dict[str, Any]:
    """Per half, over all its questions and per group (the rows' ``key``, in ``groups``' order);
    over all questions; the off-topic messages' L3 tokens."""
    def of(selected: list[dict[str, Any]]) -> dict[str, Any]:
        return {"questions": len(selected), **{
            name: {"recall": round(mean(r["methods"][name]["recall"] for r in selected), 4),
                   "l3_tokens_mean": round(mean(r["methods"][name]["tokens"] for r in selected), 1),
                   "entries_mean": round(mean(r["methods"][name]["entries"] for r in selected), 2)}
            for name in (GOAT, PLAIN)}}

    return {
        "halves": {half: {"all": of(of_half := [r for r in rows if r["half"] == half]),
                          **{group: of(of_group) for group in groups
                             if (of_group := [r for r in of_half if r[key] == group])}}
                   for half in HALVES},
        "all": of(rows),
        "off_topic": {"messages": len(off_topic), "l3_tokens_mean": round(mean(off_topic), 1),
                      "l3_tokens_max": max(off_topic, default=0),
                      "injects_any": round(mean(t > 0 for t in off_topic), 4)},
        "per_question": rows,
    }


def tables(data: dict[str, Any], key: str, title: str, messages: str = "answer") -> list[str]:
    """The halves by group (``key``) and the off-topic messages; ``messages``: what the share counts."""
    rows = []
    for half, groups in data["halves"].items():
        for group, m in groups.items():
            plain = m[PLAIN]["recall"]
            rows.append((half, group, m["questions"], percent(m[GOAT]["recall"]), m[GOAT]["l3_tokens_mean"],
                         m[GOAT]["entries_mean"], percent(plain),
                         f"{m[GOAT]['recall'] / plain:.2f}×" if plain else "–"))
    off = data["off_topic"]
    return [markdown_table(
        ["half", key, "questions", f"GOAT: {messages} injected", "GOAT: L3 tokens", "GOAT: entries",
         "plain top-k at GOAT's tokens", "GOAT / plain"], rows, title),
        markdown_table(["messages", "L3 tokens (mean)", "max", "injects anything"],
                       [(off["messages"], off["l3_tokens_mean"], off["l3_tokens_max"], percent(off["injects_any"]))],
                       "Off-topic messages in the same chats")]
