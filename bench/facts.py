"""Section ``facts``: L1 read latency per turn, from Redis and from Letta (when ``GOAT_LETTA_URL``
names one), on the same turns: what ``load_identity`` takes, the turn's overhead around it,
and what a fact's upsert (``promote_memory``) costs.

The Letta run writes a throw-away user of its own to the configured server and forgets it
after; Redis and Chroma are embedded in a scratch folder, as in every section.
"""

from __future__ import annotations

import shutil
import time
import uuid
from typing import Any

from bench.harness import BenchOptions, bench_runner, conditions, isolated_settings, timed_turn
from bench.report import SectionResult, distribution, markdown_table
from graph.settings import Settings

FACTS = 10  # a user's facts: a typical block, well under its token limit
MESSAGES = ("How are you today?", "What should I cook tonight?", "Remind me what we said about the trip.")


async def run(options: BenchOptions) -> SectionResult:
    url = options.settings.letta.url
    stores = {"redis": None, **({"letta": url} if url else {})}
    runs = {}
    for store, letta_url in stores.items():
        folder = options.root / f"facts-scratch-{store}"
        shutil.rmtree(folder, ignore_errors=True)
        settings = isolated_settings(options.settings, folder)
        settings = settings.model_copy(update={"letta": settings.letta.model_copy(update={"url": letta_url})})
        try:
            runs[store] = await _measure(settings, options.turns)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    rows = [(store, run["turns"], run["load_identity_ms"]["p50"], run["load_identity_ms"]["p95"],
             run["overhead_ms"]["p50"], run["overhead_ms"]["p95"], run["upsert_ms"]["p50"], run["upsert_ms"]["p95"])
            for store, run in runs.items()]
    if not url:
        rows.append(("letta", "not run: set GOAT_LETTA_URL", "", "", "", "", "", ""))
    table = markdown_table(
        ["facts store", "turns", "load_identity ms p50", "p95", "turn overhead ms p50", "p95",
         "fact upsert ms p50", "p95"],
        rows,
        f"L1 per turn: a user with {FACTS} facts, the same turns on each store (overhead: the turn minus "
        "the instant model; L1 is read beside the L3 search, so it costs the turn only where it is the slower)",
    )
    return SectionResult("facts", {"conditions": conditions(), "letta_url": url, "runs": runs}, [table])


async def _measure(settings: Settings, turns: int) -> dict[str, Any]:
    user = f"goat-bench-{uuid.uuid4().hex[:12]}"
    async with bench_runner(settings) as (runner, model):
        memory = runner.services.memory
        # The chat has no user of its own, so its id is the user whose facts the turn reads;
        # the facts block is let grow past a prompt's budget.
        roomy = memory.settings.with_overrides({"budget.l1_facts_max_tokens": 10_000})
        scope = memory.scope(user, user, settings=roomy)
        upserts = []
        for n in range(FACTS):
            started = time.perf_counter()
            await scope.remember(f"fact{n}", f"the value of fact number {n}")
            upserts.append((time.perf_counter() - started) * 1000)
        try:
            timed = [await timed_turn(runner, model, user, MESSAGES[n % len(MESSAGES)], time.time())
                     for n in range(turns)]
            if any(turn.state["degraded"].get("load_identity") for turn in timed):
                raise RuntimeError(f"L1 failed during the benchmark: {timed[-1].state['degraded']}")
        finally:
            await memory.admin.forget_user(user)
    return {
        "turns": turns,
        "load_identity_ms": distribution(turn.nodes_ms["load_identity"] for turn in timed),
        "overhead_ms": distribution(turn.total_ms for turn in timed),
        "upsert_ms": distribution(upserts),
    }
