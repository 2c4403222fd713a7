"""Section ``checkpoint``: Redis memory one chat's checkpoints hold after many turns, with the
checkpointer's retention and without it, and the time checkpointing adds to each turn
(``bench.checkpoint_memory`` does the measuring, on an embedded Redis of its own).
"""

from __future__ import annotations

import shutil
from typing import Any

from bench.checkpoint_memory import measure
from bench.harness import BenchOptions, conditions
from bench.report import SectionResult, markdown_table
from graph.checkpoint import DEFAULT_KEEP_TURNS
from memory.stores import EmbeddedRedis

RETENTIONS: tuple[int | None, ...] = (DEFAULT_KEEP_TURNS, None)  # None: every checkpoint kept


async def run(options: BenchOptions) -> SectionResult:
    folder = options.root / "checkpoint-scratch"
    shutil.rmtree(folder, ignore_errors=True)
    try:
        with EmbeddedRedis(folder) as server:
            runs = [await measure(server.url, options.checkpoint_turns, keep) for keep in RETENTIONS]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    data: dict[str, Any] = {"conditions": conditions(), "runs": runs}
    table = markdown_table(
        ["retention", "turns", "checkpoints kept", "keys", "memory KiB", "bytes per kept checkpoint",
         "ms per turn p50", "ms added by checkpointing p50", "p95"],
        [(f"last {run['keep_turns']} turns" if run["keep_turns"] else "none (all kept)", run["turns"],
          run["checkpoints_kept"], run["keys"], run["memory_usage_bytes"] / 1024,
          round(run["memory_usage_bytes"] / max(1, run["checkpoints_kept"])), run["ms_per_turn"]["p50"],
          run["ms_added_per_turn"]["p50"], run["ms_added_per_turn"]["p95"]) for run in runs],
        "Redis memory of one chat's checkpoints (MEMORY USAGE of its keys), and the time they add to a turn "
        "(async turns, durability sync, each next to the same turn without checkpointer)",
    )
    return SectionResult("checkpoint", data, [table])
