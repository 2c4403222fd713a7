"""Servers started as child processes, for a measurement or a test: a loopback port free now, a
server's command run until the block ends once it answers, stopped by its PID. Shared by the
tests' fixtures and the benchmarks' servers section (tests/ is the clone's, as bench/ is; the
package uses none of it)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sysconfig
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx


class ServerDidNotStart(RuntimeError):
    """A server process exited, or did not answer in time; its log says why."""
_START_TIMEOUT_S = 120.0
# The installed console script: a child runs `goat` as a user would.
GOAT_SCRIPT = Path(sysconfig.get_path("scripts")) / "goat"


@contextmanager
def server_process(name: str, command: list[str], ready: Callable[[], bool], log_path: Path,
                   env: dict[str, str] | None = None, timeout: float = _START_TIMEOUT_S,
                   inherit_environment: bool = True) -> Iterator[subprocess.Popen]:
    """``command`` running until the block ends (stopped by its PID), once ``ready()`` holds;
    its environment is this process's with ``env`` over it, or ``env`` alone
    (``inherit_environment`` False).

    Raises:
        ServerDidNotStart: it exited, or was not ready within ``timeout`` seconds.
    """
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=log_path.parent,
                                   env={**(os.environ if inherit_environment else {}), **(env or {})})
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
