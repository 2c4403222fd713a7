"""Section ``implicit``: a statement that bears on an earlier remark without asking about it.

LoCoMo-Plus (Li et al. 2026, https://github.com/xjtuleeyf/Locomo-Plus) pairs a remark (the
*cue*, as "since I started turning down extra shifts, my evenings feel like my own again") with a
statement made weeks or months later (the *trigger*, as "my boss talked me into the weekend rota
and now I barely get a night off") that bears on it while sharing few of its words. Each cue is
told as a short exchange between the sessions of a LoCoMo conversation, dated its pair's
``time_gap`` before the trigger; every trigger is then sent in that chat, an hour after its last
session, through the real turn up to the model. Measured: whether the cue's turn is in the injected L3 block,
beside plain top-k vector search packed into the same tokens; by relation (causal, state,
goal, value); the off-topic messages' tokens in the same chats. The pairs are split in two:
the even ones tune, the odd ones are held back and decide.

The pairs are read from ``$GOAT_LOCOMO_PLUS`` or ``../shared/data/locomo-plus-dev.json``; the
section says in one line that it is skipped without them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import BenchOptions, bench_runner, conditions, isolated_settings
from bench.report import SectionResult, markdown_table, mean, percent
from bench.retrieval import OFF_TOPIC, ask, import_conversations
from bench.support import locomo

DEFAULT_PATH = locomo.REPO.parent / "shared" / "data" / "locomo-plus-dev.json"
ENV_VAR = "GOAT_LOCOMO_PLUS"
HALVES = ("tuning", "held-back")
RELATIONS = ("causal", "state", "goal", "value")
GOAT, PLAIN = "GOAT prefetch", "top-k at GOAT's tokens"

_NUMBERS = {"a": 1, "an": 1, "a few": 3, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
            "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "several": 4}
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
_GAP = re.compile(r"\b(a few|several|a|an|\w+)\s+(day|week|month|year)s?\b")
_SPEAKER = re.compile(r"^([AB]):\s*(.*)$")
_CUE_SPACING = timedelta(minutes=10)  # between two cues that fall on the same moment


@dataclass(frozen=True)
class Pair:
    number: int  # its place in the file: even ones tune, odd ones are held back
    relation: str
    cue: list[tuple[str, str]]  # (speaker "A" or "B", line)
    trigger: str
    gap: timedelta

    @property
    def half(self) -> str:
        return HALVES[self.number % 2]


def data_path() -> Path | None:
    """The pairs' file, or None when there is none."""
    explicit = os.environ.get(ENV_VAR)
    path = Path(explicit).expanduser() if explicit else DEFAULT_PATH
    return path if path.is_file() else None


def parse_gap(text: str) -> timedelta:
    """"two months later", "about six weeks later", "around one week after the birth" as a span."""
    match = _GAP.search(text.lower())
    if match is None:
        raise ValueError(f"no time gap in {text!r}")
    count = _NUMBERS.get(match.group(1)) or int(match.group(1))
    return timedelta(days=count * _UNIT_DAYS[match.group(2)])


def parse_lines(dialogue: str) -> list[tuple[str, str]]:
    """"A: …\\nB: …" as (speaker, line) pairs."""
    lines = []
    for raw in dialogue.strip().splitlines():
        match = _SPEAKER.match(raw.strip())
        if match is None:
            raise ValueError(f"not a speaker's line: {raw!r}")
        lines.append((match.group(1), match.group(2).strip()))
    return lines


def load_pairs(path: Path) -> list[Pair]:
    pairs = []
    for number, record in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        (_, trigger), = parse_lines(record["trigger_query"])
        pairs.append(Pair(number, record["relation_type"], parse_lines(record["cue_dialogue"]), trigger,
                          parse_gap(record["time_gap"])))
    return pairs


def trigger_time(record: dict[str, Any]) -> datetime:
    """When a conversation's triggers are sent: an hour after its last session starts' last line."""
    return locomo.build_conversation(record).last_time + timedelta(hours=1)


def splice(record: dict[str, Any], pairs: list[Pair]) -> dict[str, Any]:
    """The LoCoMo record with each pair's cue told as a session of its own, dated its gap before
    the conversation's trigger time, the sessions renumbered in time order; a cue's lines have
    the dialog ids ``P<number>:<line>``. A cue falling within a session is told after it."""
    conversation = record["conversation"]
    speakers = {"A": conversation["speaker_a"], "B": conversation["speaker_b"]}
    sent_at = trigger_time(record)
    sessions = [(locomo.parse_session_time(conversation[f"session_{n}_date_time"]), conversation[f"session_{n}"])
                for n in locomo.sessions_of(record)]
    for pair in sorted(pairs, key=lambda p: (-p.gap, p.number)):
        when = sent_at - pair.gap
        for start, lines in sorted(sessions, key=lambda s: s[0]):
            if start <= when <= start + timedelta(minutes=len(lines)):
                when = start + timedelta(minutes=len(lines)) + _CUE_SPACING
        while any(start == when for start, _ in sessions):
            when += _CUE_SPACING
        sessions.append((when, [{"speaker": speakers[who], "dia_id": f"P{pair.number}:{i}", "text": line}
                                for i, (who, line) in enumerate(pair.cue, start=1)]))
    spliced = {"speaker_a": conversation["speaker_a"], "speaker_b": conversation["speaker_b"]}
    for number, (start, lines) in enumerate(sorted(sessions, key=lambda s: s[0]), start=1):
        spliced[f"session_{number}_date_time"] = start.strftime("%I:%M %p on %d %B, %Y").lstrip("0")
        spliced[f"session_{number}"] = lines
    return {"sample_id": record.get("sample_id"), "conversation": spliced, "qa": []}


def spread(pairs: list[Pair], records: list[dict[str, Any]]) -> list[list[Pair]]:
    """The pairs dealt over the conversations in turn (each gets both halves and every relation)."""
    return [[pair for pair in pairs if pair.number % len(records) == i] for i in range(len(records))]


async def run(options: BenchOptions) -> SectionResult:
    from tqdm import tqdm

    path = data_path()
    if path is None:
        print(f"implicit: skipped (no {DEFAULT_PATH} and no ${ENV_VAR})", flush=True)
        return SectionResult("implicit", {"skipped": True, "conditions": conditions()})
    records = options.locomo_records
    dealt = spread(load_pairs(path), records)
    conversations = [locomo.build_conversation(splice(record, pairs)) for record, pairs in zip(records, dealt)]
    guarantee = options.settings.budget.l3_min_guarantee_tokens
    folder = options.root / "implicit-scratch"
    shutil.rmtree(folder, ignore_errors=True)
    rows: list[dict[str, Any]] = []
    off_topic: list[int] = []
    async with bench_runner(isolated_settings(options.settings, folder)) as (runner, _):
        await import_conversations(runner, conversations)
        with tqdm(total=sum(map(len, dealt)) + len(OFF_TOPIC) * len(conversations), unit="message",
                  desc="sending", file=sys.stderr) as bar:
            for conversation, pairs in zip(conversations, dealt):
                for pair in pairs:
                    found = await ask(runner, conversation, pair.trigger, guarantee)
                    rows.append(trigger_row(conversation, pair, found))
                    bar.update()
                for text in OFF_TOPIC:
                    off_topic.append((await ask(runner, conversation, text, guarantee))[GOAT][1])
                    bar.update()
    shutil.rmtree(folder, ignore_errors=True)
    data = summarise(rows, off_topic)
    data["conditions"] = {**conditions(), "data": str(path), "conversations": [c.sample_id for c in conversations]}
    return SectionResult("implicit", data, tables(data))


def trigger_row(conversation: locomo.Conversation, pair: Pair,
                found: dict[str, tuple[list[str], int]]) -> dict[str, Any]:
    cue = conversation.dialog_to_entry[f"P{pair.number}:1"]
    return {"pair": pair.number, "half": pair.half, "relation": pair.relation, "trigger": pair.trigger,
            "cue": cue, "methods": {name: {"found": cue in ids, "tokens": tokens, "entries": len(ids)}
                                    for name, (ids, tokens) in found.items() if name in (GOAT, PLAIN)}}


def summarise(rows: list[dict[str, Any]], off_topic: list[int]) -> dict[str, Any]:
    def measured(selected: list[dict[str, Any]]) -> dict[str, Any]:
        return {"triggers": len(selected), **{
            name: {"cue_found": round(mean(r["methods"][name]["found"] for r in selected), 4),
                   "l3_tokens_mean": round(mean(r["methods"][name]["tokens"] for r in selected), 1)}
            for name in (GOAT, PLAIN)}}

    return {
        "halves": {half: {"all": measured(of_half := [r for r in rows if r["half"] == half]),
                          **{relation: measured([r for r in of_half if r["relation"] == relation])
                             for relation in RELATIONS}}
                   for half in HALVES},
        "off_topic": {"messages": len(off_topic), "l3_tokens_mean": round(mean(off_topic), 1),
                      "l3_tokens_max": max(off_topic, default=0)},
        "per_trigger": rows,
    }


def tables(data: dict[str, Any]) -> list[str]:
    rows = []
    for half, groups in data["halves"].items():
        for group, m in groups.items():
            rows.append((half, group, m["triggers"], percent(m[GOAT]["cue_found"]), m[GOAT]["l3_tokens_mean"],
                         percent(m[PLAIN]["cue_found"])))
    off = data["off_topic"]
    return [markdown_table(
        ["half", "relation", "triggers", "GOAT: cue injected", "GOAT: L3 tokens", "plain top-k at GOAT's tokens"],
        rows, "LoCoMo-Plus: a statement's earlier cue in the injected L3 block"),
        f"Off-topic messages in the same chats ({off['messages']}): L3 tokens mean {off['l3_tokens_mean']}, "
        f"max {off['l3_tokens_max']}"]
