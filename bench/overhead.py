"""Section ``overhead``: what a turn costs apart from the model, against the archive's size.

Whole turns (prefetch … llm … save … archive) run on a throw-away copy of each cached archive,
with an instant model, in the archive's big chat and in its small chats, for three kinds of
message: thematic only (a LoCoMo question), temporal (names a past range) and specific-key
(names a label the chat holds). Kinds and layouts alternate turn by turn, so that load on the
machine spreads evenly over them. With ``--bilingual``, archives whose every chat holds lines in
Russian and Spanish too are measured the same way (``bilingual_archives``), asked the same
English messages: a chat of two languages searches both encoders' spaces.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.synthetic_archive import KINDS, LAYOUTS, SyntheticArchive, TextPool, measure_each_size, messages, turn_times
from bench.harness import (
    BenchOptions, TimedTurn, bench_runner, conditions, isolated_settings, scratch_copy, timed_turn,
)
from bench.report import SectionResult, distribution, markdown_table, save_figure
from bench.spans import PHASES, TurnSpans
from nodes.state import FAN_OUT
from memory.facade import Memory, measurement_hooks

# The llm node's time includes the (instant) model's and its own handling of the answer.
NODES = ("prefetch", "load_identity", "load_working", "gap_filter", "budget", "assemble", "llm", "save", "archive")
WARM_UP_TURNS = 2  # per layout, unmeasured


async def measure_archive(options: BenchOptions, archive: SyntheticArchive, pool: TextPool) -> dict[str, Any]:
    streams = {(layout, kind): messages(kind, archive.chats(layout), pool) for layout in LAYOUTS for kind in KINDS}
    clock = turn_times()
    samples: dict[tuple[str, str], list[TimedTurn]] = defaultdict(list)
    with scratch_copy(archive.folder, options.root / "scratch") as folder:
        async with bench_runner(isolated_settings(options.settings, folder)) as (runner, model):
            spans = TurnSpans()
            await spans.hook(runner)
            await load_collections(runner.services.memory, archive)
            for layout in LAYOUTS:
                for _ in range(WARM_UP_TURNS):
                    chat_id, text = next(streams[(layout, "thematic")])
                    await timed_turn(runner, model, chat_id, text, next(clock))
            for _ in range(options.turns):
                for cell, stream in streams.items():
                    chat_id, text = next(stream)
                    # The cells' texts recur (the temporal messages, the thematic questions in
                    # both layouts): each is embedded as a new message is, not remembered.
                    await measurement_hooks(runner.services.memory).forget_encodings()
                    turn = await timed_turn(runner, model, chat_id, text, next(clock), spans)
                    samples[cell].append(turn)
    return {
        "turns": archive.size,
        "chats": len(archive.plans),
        "chat_turns": {layout: archive.chats(layout)[0].turns for layout in LAYOUTS},
        "cells": {layout: {kind: summarise(samples[(layout, kind)]) for kind in KINDS} for layout in LAYOUTS},
    }


async def load_collections(memory: Memory, archive: SyntheticArchive) -> None:
    """Measure the steady state: a chat's first search in a process reads its Chroma index from
    disk (~50-100 ms at this size), once; a server talking to its chats has them loaded."""
    for layout in LAYOUTS:
        for chat in archive.chats(layout):
            await measurement_hooks(memory).nearest([chat.chat_id], "warm-up", 1)


def outside_nodes_ms(turn: TimedTurn) -> float:
    """The turn's time not spent in its nodes (the fan-out counted by its slowest branch): the
    graph's own steps, its checkpoints, the chat's lock, the turn's bookkeeping."""
    nodes = turn.nodes_ms
    fan_out = max(nodes.get(node, 0.0) for node in FAN_OUT)
    return turn.total_ms - fan_out - sum(nodes.get(node, 0.0) for node in NODES if node not in FAN_OUT)


def summarise(turns: list[TimedTurn]) -> dict[str, Any]:
    return {
        "pre_reply_ms": distribution(t.pre_reply_ms for t in turns),
        "post_reply_ms": distribution(t.post_reply_ms for t in turns),
        "total_ms": distribution(t.total_ms for t in turns),
        "outside_nodes_ms": distribution(outside_nodes_ms(t) for t in turns),
        "archive_behind_ms": distribution(t.archive_behind_ms for t in turns),
        "nodes_ms": {node: distribution(t.nodes_ms[node] for t in turns if node in t.nodes_ms) for node in NODES},
        "phases_ms": {phase: distribution(t.phases_ms[phase] for t in turns if t.phases_ms) for phase in PHASES},
        "prefetch_waited_ms": distribution(t.state["prefetch"]["waited_ms"] for t in turns),
        "prefetch_timed_out": sum(bool(t.state["prefetch"]["timed_out"]) for t in turns),
        "fired": {kind: sum(kind in t.state["prefetch"]["fired"] for t in turns) for kind in KINDS},
        "l3_injected_mean": round(sum(len(t.state.get("l3") or []) for t in turns) / max(1, len(turns)), 2),
    }


async def run(options: BenchOptions) -> SectionResult:
    archives = await measure_each_size(options, measure_archive)
    data = {
        "conditions": {**conditions(), "turns_per_cell": options.turns,
                       "prefetch_timeout_ms": options.settings.prefetch.timeout * 1000},
        "archives": archives,
    }
    if options.bilingual:
        data["bilingual_archives"] = await measure_each_size(options, measure_archive, bilingual=True)
    figure = plot(data, options.out / "overhead.png")
    return SectionResult("overhead", data, tables(data), [figure])


def _spread(d: dict[str, Any]) -> str:
    return f"{d['p50']:.1f} / {d['p95']:.1f} / {d['max']:.1f}"


def _measured(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(archive label, its figures): the English archives, then the bilingual ones."""
    return [*data["archives"].items(),
            *((f"{size}, bilingual", archive) for size, archive in data.get("bilingual_archives", {}).items())]


def tables(data: dict[str, Any]) -> list[str]:
    rows = [
        (size, f"{layout} ({archive['chat_turns'][layout]} turns)",
         kind, _spread(cell["pre_reply_ms"]), _spread(cell["post_reply_ms"]), _spread(cell["total_ms"]),
         _spread(cell["outside_nodes_ms"]), _spread(cell["prefetch_waited_ms"]), _spread(cell["archive_behind_ms"]),
         cell["l3_injected_mean"])
        for size, archive in _measured(data)
        for layout, kinds in archive["cells"].items()
        for kind, cell in kinds.items()
    ]
    headers = ["archive turns", "chat", "message", "pre-reply", "post-reply", "total (all but the model)",
               "outside the nodes", "prefetch waited", "L3 write behind the reply (not in the turn)", "L3 entries"]
    result = [markdown_table(headers, rows, "Turn overhead (everything but the model call), ms: p50 / p95 / max")]
    for size, archive in _measured(data):
        node_rows = [
            (layout, node, *(_spread(archive["cells"][layout][kind]["nodes_ms"][node]) for kind in KINDS))
            for layout in LAYOUTS for node in NODES
        ]
        result.append(markdown_table(["chat", "node", *KINDS], node_rows,
                                     f"Per node, archive of {size} turns, ms: p50 / p95 / max"))
        phase_rows = [
            (layout, phase, *(_spread(archive["cells"][layout][kind]["phases_ms"][phase]) for kind in KINDS))
            for layout in LAYOUTS for phase in PHASES
        ]
        result.append(markdown_table(["chat", "phase", *KINDS], phase_rows,
                                     f"Where the turn's time goes, archive of {size} turns, ms: p50 / p95 / max"))
    return result


def plot(data: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(size) for size in data["archives"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, stat, target in zip(axes, ("p50", "p95"), (25, 60)):
        for layout, style in zip(LAYOUTS, ("-", "--")):
            for number, (kind, marker) in enumerate(zip(KINDS, ("o", "s", "^"))):
                values = [archive["cells"][layout][kind]["total_ms"][stat] for archive in data["archives"].values()]
                ax.plot(sizes, values, style, marker=marker, color=f"C{number}", label=f"{kind}, {layout}")
        ax.axhline(target, color="grey", ls=":", lw=1)
        ax.annotate(f"target {stat} ≤ {target} ms", (sizes[0], target), textcoords="offset points",
                    xytext=(2, 3), color="grey", fontsize=8)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("archived turns")
        ax.set_title(f"turn overhead {stat} (all but the model)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ms")
    axes[1].legend(fontsize=7)
    return save_figure(fig, path)
