"""Section ``deadline``: does a turn ever wait for L3 longer than ``prefetch.timeout`` (+ 20 ms)?

The real store of the smallest archive is slowed on purpose: every read (vector search, the
nearest ids a wide time range is cut from, id and substring lookups) first sleeps a delay drawn
around and beyond the deadline, in its worker thread, as a stuck search would. Turns are
inspected (the graph up to the model) with the L2.5 cache emptied first, so that every thematic
search reaches the slowed store.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.synthetic_archive import KINDS, LAYOUTS, SyntheticArchive, TextPool, ensure_archive, messages, turn_times
from bench.harness import BenchOptions, bench_runner, conditions, isolated_settings, scratch_copy
from bench.report import SectionResult, distribution, markdown_table, save_figure
from memory.encoders import LocalEmbeddings
from memory.stores import EpisodicStore
from memory.facade import Memory, measurement_hooks

ALLOWANCE_MS = 20.0  # the spec's "deadline plus a few milliseconds"
# Delays are log-normal with their median at the deadline: half the reads are slower than it,
# one in eight more than twice as slow, one in thirty more than three times.
DELAY_SIGMA = 0.6


class SlowReads:
    """Draws read delays, remembers them so each turn can be told its slowest read, and counts
    the reads still sleeping: the ones a turn gave up on must end before the store closes."""

    def __init__(self, median_s: float, seed: int = 0) -> None:
        self.median_s = median_s
        self._rng = random.Random(seed)
        self._changed = threading.Condition()  # reads run in several worker threads
        self._drawn: list[float] = []
        self._running = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the calling thread for a drawn delay, then let the read run."""
        with self._changed:
            delay = self.median_s * math.exp(self._rng.gauss(0.0, DELAY_SIGMA))
            self._drawn.append(delay)
            self._running += 1
        try:
            time.sleep(delay)
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def take(self) -> list[float]:
        """The delays drawn since the last call."""
        with self._changed:
            drawn, self._drawn = self._drawn, []
            return drawn

    def wait_until_idle(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._running == 0)


class SlowedEpisodicStore(EpisodicStore):
    """The real Chroma store; every read sleeps a drawn delay first, in the reading thread."""

    reads: SlowReads

    @classmethod
    def slowed(cls, path: Path, embeddings: LocalEmbeddings, reads: SlowReads) -> "SlowedEpisodicStore":
        store = cls.embedded(path, embeddings)
        store.reads = reads
        return store

    def search(self, *args: Any, **kwargs: Any) -> Any:
        with self.reads.read():
            return super().search(*args, **kwargs)

    def nearest_ids(self, *args: Any, **kwargs: Any) -> Any:
        with self.reads.read():
            return super().nearest_ids(*args, **kwargs)

    def get_by_ids(self, *args: Any, **kwargs: Any) -> Any:
        with self.reads.read():
            return super().get_by_ids(*args, **kwargs)


async def run(options: BenchOptions) -> SectionResult:
    pool = TextPool(options.locomo_records)
    archive = await ensure_archive(options.settings, options.root, min(options.sizes), pool)
    deadline_ms = options.settings.prefetch.timeout * 1000
    turns = await inspect_slowed(options, archive, pool)
    data = summarise(turns, deadline_ms)
    data["conditions"] = {**conditions(), "archive_turns": archive.size,
                          "delays": f"log-normal, median = the deadline, sigma {DELAY_SIGMA}"}
    figure = plot(turns, deadline_ms, options.out / "deadline.png")
    return SectionResult("deadline", data, [table(data)], [figure])


async def inspect_slowed(options: BenchOptions, archive: SyntheticArchive, pool: TextPool) -> list[dict[str, Any]]:
    """Per turn: its kind of message, how long it waited for L3, and its slowest store read."""
    reads = SlowReads(options.settings.prefetch.timeout)
    streams = [(kind, messages(kind, archive.chats(layout), pool)) for layout in LAYOUTS for kind in KINDS]
    clock = turn_times()
    turns: list[dict[str, Any]] = []
    with scratch_copy(archive.folder, options.root / "scratch") as folder:
        settings = isolated_settings(options.settings, folder)
        embeddings = LocalEmbeddings(name=settings.embeddings.model)
        store = SlowedEpisodicStore.slowed(folder / "chroma", embeddings, reads)
        memory = Memory(settings, episodic=store, embeddings=embeddings)
        async with bench_runner(settings, memory) as (runner, _):
            for n in range(options.turns * len(streams)):
                kind, stream = streams[n % len(streams)]
                chat_id, text = next(stream)
                await measurement_hooks(memory).forget_searches(chat_id)
                state = await runner.inspect(chat_id, text, now=next(clock))
                turns.append({
                    "kind": kind,
                    "waited_ms": state["prefetch"]["waited_ms"],
                    "prefetch_node_ms": state["latency_ms"]["prefetch"],
                    "timed_out": state["prefetch"]["timed_out"],
                    "slowest_read_ms": round(max(reads.take(), default=0.0) * 1000, 1),
                })
            await asyncio.to_thread(reads.wait_until_idle)  # reads the turns gave up on still run
    return turns


def summarise(turns: list[dict[str, Any]], deadline_ms: float) -> dict[str, Any]:
    def group(rows: list[dict[str, Any]]) -> dict[str, Any]:
        waited = [row["waited_ms"] for row in rows]
        return {
            "turns": len(rows),
            "timed_out": sum(bool(row["timed_out"]) for row in rows),
            "waited_ms": distribution(waited),
            "prefetch_node_ms": distribution(row["prefetch_node_ms"] for row in rows),
            "max_over_deadline_ms": round(max(waited) - deadline_ms, 2) if waited else None,
            "over_allowance": sum(w > deadline_ms + ALLOWANCE_MS for w in waited),
        }

    return {
        "deadline_ms": deadline_ms,
        "allowance_ms": ALLOWANCE_MS,
        "all": group(turns),
        "by_kind": {kind: group([t for t in turns if t["kind"] == kind]) for kind in KINDS},
        "turns": turns,
    }


def table(data: dict[str, Any]) -> str:
    rows = []
    for name, group in [("all", data["all"]), *data["by_kind"].items()]:
        waited, node = group["waited_ms"], group["prefetch_node_ms"]
        rows.append((name, group["turns"], group["timed_out"], waited["p50"], waited["p95"], waited["max"],
                     f"{group['max_over_deadline_ms']:+.1f}", node["max"], group["over_allowance"]))
    headers = ["messages", "turns", "timed out", "waited p50 ms", "p95", "max", "max − deadline",
               "prefetch node max ms", f"turns > deadline + {ALLOWANCE_MS:g} ms"]
    return markdown_table(headers, rows, f"Waiting for L3 with a slowed store, deadline {data['deadline_ms']:g} ms")


def plot(turns: list[dict[str, Any]], deadline_ms: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for kind, marker in zip(KINDS, ("o", "s", "^")):
        rows = [t for t in turns if t["kind"] == kind]
        ax.scatter([t["slowest_read_ms"] for t in rows], [t["waited_ms"] for t in rows], s=14, marker=marker,
                   alpha=0.7, label=kind)
    ax.axhline(deadline_ms, color="black", lw=1, label="deadline")
    ax.axhline(deadline_ms + ALLOWANCE_MS, color="red", lw=1, ls="--", label=f"deadline + {ALLOWANCE_MS:g} ms")
    ax.set_xlabel("slowest store read drawn during the turn (ms)")
    ax.set_ylabel("time the turn waited for L3 (ms)")
    ax.set_title("Prefetch deadline against a slowed store")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
