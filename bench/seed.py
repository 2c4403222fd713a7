"""The seed side by side: GOAT's pre-reply path and the seed's (the system GOAT re-builds) on the
same LoCoMo conversations and questions, in alternating rounds, with their ratio.

Runs when ``GOAT_SEED_DIR`` names a tree of the seed (``git archive 7efb48f`` of
takashikiari/GOAT2-General-Orchestrated-Agent-Topology); says in one line that it is skipped
otherwise. The seed runs in a process of its own (``bench/seed_side.py``); GOAT's side is
``inspect`` in this one, timed as the seed's is: from the message to the assembled prompt (the
slowest of prefetch and the L0-L2 loads, then gap_filter, budget and assemble). Each round
both sides' search caches start empty, and every question is asked first, then again: a
person's new question, and the same one repeated (each side's cache hits).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.harness import BenchOptions, bench_runner, conditions, isolated_settings
from bench.report import SectionResult, distribution, markdown_table
from graph.importing.importer import import_turns, transcript_of
from memory.facade import measurement_hooks
from nodes.state import FAN_OUT
from bench.support import locomo

ENV_VAR = "GOAT_SEED_DIR"
ROUNDS = 3
_AFTER_FAN_OUT = ("gap_filter", "budget", "assemble")


def seed_tree() -> Path | None:
    """The seed's tree named by ``GOAT_SEED_DIR``, if it holds the modules the seed's side runs."""
    named = os.environ.get(ENV_VAR)
    if not named:
        return None
    tree = Path(named)
    return tree if (tree / "memory" / "layers.py").is_file() and (tree / "orchestrator").is_dir() else None


async def run(options: BenchOptions) -> SectionResult:
    tree = seed_tree()
    if tree is None:
        reason = (f"skipped: set {ENV_VAR} to a tree of the seed (`git archive 7efb48f` of "
                  "takashikiari/GOAT2-General-Orchestrated-Agent-Topology)")
        if os.environ.get(ENV_VAR):
            reason = f"skipped: {ENV_VAR}={os.environ[ENV_VAR]} holds no memory/layers.py and orchestrator/"
        print(f"seed: {reason}", flush=True)
        return SectionResult("seed", {"conditions": conditions(), "skipped": reason})
    conversations = [locomo.build_conversation(record) for record in options.locomo_records]
    rounds: list[dict[str, Any]] = []
    async with bench_runner(isolated_settings(options.settings, options.root / "seed-goat")) as (runner, _):
        for conversation in conversations:  # imported once; a re-import adds nothing
            await import_turns(runner.services.memory, transcript_of(conversation.jsonl().splitlines(keepends=True)))
        for number in range(1, ROUNDS + 1):
            seed_ms = seed_side(tree, options)
            # Both sides start each round with an empty search cache (the seed's Redis is new):
            # each question asked first, as a person asks it, then again (the caches' hits).
            await measurement_hooks(runner.services.memory).forget_searches()
            goat_ms = {asked: [await goat_pre_reply_ms(runner, conversation, question.text)
                               for conversation in conversations for question in conversation.answerable()]
                       for asked in ("first", "repeated")}
            row: dict[str, Any] = {"round": number}
            for asked in ("first", "repeated"):
                row[asked] = {"seed": distribution(seed_ms[asked]), "goat": distribution(goat_ms[asked])}
                row[asked]["ratio_p50"] = round(row[asked]["goat"]["p50"] / row[asked]["seed"]["p50"], 2)
            rounds.append(row)
            print(f"round {number}: " + "; ".join(
                f"asked {asked}: seed p50 {row[asked]['seed']['p50']} ms, GOAT p50 {row[asked]['goat']['p50']} ms"
                for asked in ("first", "repeated")), flush=True)
    data = {"conditions": {**conditions(), "seed": str(tree), "data": str(options.locomo_path),
                           "conversations": [c.sample_id for c in conversations]},
            "rounds": rounds}
    return SectionResult("seed", data, tables(data))


def seed_side(tree: Path, options: BenchOptions) -> dict[str, list[float]]:
    """One round of the seed's side: its pre-reply milliseconds per question, asked first and
    asked again."""
    done = subprocess.run([sys.executable, "-m", "bench.seed_side", str(tree), str(options.locomo_path),
                           str(options.root / "seed-store")], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"the seed's side failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


async def goat_pre_reply_ms(runner: Any, conversation: locomo.Conversation, text: str) -> float:
    """GOAT's message → assembled prompt, an hour after the conversation, from inspect's own figures."""
    now = (conversation.last_time + timedelta(hours=1)).timestamp()
    nodes = (await runner.inspect(conversation.chat_id, text, user_id=conversation.asker, now=now))["latency_ms"]
    return max(nodes.get(node, 0.0) for node in FAN_OUT) + sum(nodes.get(node, 0.0) for node in _AFTER_FAN_OUT)


def tables(data: dict[str, Any]) -> list[str]:
    rows = [(row["round"], asked, row[asked]["seed"]["n"], row[asked]["seed"]["p50"], row[asked]["seed"]["p95"],
             row[asked]["goat"]["p50"], row[asked]["goat"]["p95"], row[asked]["ratio_p50"])
            for row in data["rounds"] for asked in ("first", "repeated")]
    return [markdown_table(("round", "asked", "questions", "seed p50 ms", "seed p95", "GOAT p50 ms", "GOAT p95",
                            "GOAT / seed (p50)"), rows,
                           "pre-reply path, message to assembled prompt, same conversations, alternating; "
                           "each question asked first (both search caches empty), then again")]
