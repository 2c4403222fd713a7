"""The embedded Redis outlives a server that ends while in use: killed, crashed, or ended with the
process that started it, it is started again on the same files by a process still using it."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from conftest import StartEmbedded, wait_for
from memory.redis_clients import async_client
from memory.stores.redis_server import EmbeddedRedis, answers_ping
from test_cli import embedded_redis_pids, servers_left

KEEPER_NAME = "goat-embedded-redis"

# Another process that starts the server on a folder, prints its pid, and stops at end of input.
OWNER = (
    "import sys; from pathlib import Path; from memory.stores.redis_server import EmbeddedRedis\n"
    "server = EmbeddedRedis(Path(sys.argv[1])); server.start(); print(server.pid, flush=True)\n"
    "sys.stdin.read(); server.stop()\n"
)


@contextmanager
def owner_process(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A process that started the server on ``data_dir``, and that server's pid. Closing its
    input (done on leaving, if the test did not end it) makes it stop."""
    with subprocess.Popen([sys.executable, "-c", OWNER, str(data_dir)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as owner:
        try:
            yield owner, int(owner.stdout.readline())
        finally:
            servers_left(data_dir)


def keepers() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == KEEPER_NAME}


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm)": state, then ppid


def restarted(server: EmbeddedRedis, ended_pid: int) -> bool:
    return server.pid not in (None, ended_pid) and answers_ping(server.url)


def restart_warnings(caplog: pytest.LogCaptureFixture, ended_pid: int) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "memory.stores.redis_server" and record.levelno == logging.WARNING
            and f"(pid {ended_pid})" in record.getMessage()]


async def test_a_killed_server_is_started_again_on_the_same_files(
    start_embedded: StartEmbedded, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="memory.stores.redis_server")
    server = start_embedded(tmp_path)
    killed = server.pid
    assert killed is not None
    with redis.Redis.from_url(server.url) as client:
        client.rpush("turns", "before the kill")
        client.save()
    store_client = async_client(server.url)  # as GOAT's stores hold one
    try:
        assert await store_client.lrange("turns", 0, -1) == [b"before the kill"]

        os.kill(killed, signal.SIGKILL)
        # Polled from a thread, so the event loop meanwhile sees the old connections close.
        await asyncio.to_thread(wait_for, lambda: restarted(server, killed), "the server to be started again")

        assert embedded_redis_pids(tmp_path) == [server.pid]
        assert parent_pid(server.pid) == os.getpid()
        assert await store_client.lrange("turns", 0, -1) == [b"before the kill"]
        [warning] = restart_warnings(caplog, killed)
        assert str(tmp_path / "redis") in warning and f"(pid {server.pid})" in warning
    finally:
        await store_client.aclose()


def test_two_users_of_a_killed_server_share_the_one_started_again(
    start_embedded: StartEmbedded, tmp_path: Path
) -> None:
    first = start_embedded(tmp_path)
    second = start_embedded(tmp_path)
    killed = first.pid
    assert killed is not None and second.pid == killed

    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: restarted(first, killed) and restarted(second, killed), "both to serve again")

    assert first.pid == second.pid
    assert embedded_redis_pids(tmp_path) == [first.pid]


def test_a_joiner_takes_over_the_server_when_its_owner_is_killed(
    start_embedded: StartEmbedded, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="memory.stores.redis_server")
    with owner_process(tmp_path) as (owner, owners_server):
        joiner = start_embedded(tmp_path)
        assert joiner.pid == owners_server
        with redis.Redis.from_url(joiner.url) as client:
            client.set("written", "before the owner died")
            client.save()

        owner.kill()
        owner.wait()

        # The owner's server ended with it (no orphan), and this process started a new one.
        wait_for(lambda: owners_server not in embedded_redis_pids(tmp_path), "the owner's server to end")
        wait_for(lambda: restarted(joiner, owners_server), "the joiner to start the server again")
        assert embedded_redis_pids(tmp_path) == [joiner.pid]
        assert parent_pid(joiner.pid) == os.getpid()
        with redis.Redis.from_url(joiner.url) as client:
            assert client.get("written") == b"before the owner died"
        assert len(restart_warnings(caplog, owners_server)) == 1

        joiner.stop()  # now the owner, and alone: it shuts the server down

        assert servers_left(tmp_path) == []


def test_stop_of_the_last_user_ends_a_restarted_server_and_its_keeper(
    start_embedded: StartEmbedded, tmp_path: Path
) -> None:
    before = keepers()
    server = start_embedded(tmp_path)
    [keeper] = keepers() - before
    killed = server.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: restarted(server, killed), "the server to be started again")
    url = server.url

    server.stop()

    assert not answers_ping(url)
    assert servers_left(tmp_path) == []
    assert not keeper.is_alive()


def test_a_joiners_stop_ends_its_keeper_and_leaves_the_owners_server_running(
    start_embedded: StartEmbedded, tmp_path: Path
) -> None:
    with owner_process(tmp_path) as (owner, owners_server):
        before = keepers()
        joiner = start_embedded(tmp_path)
        [keeper] = keepers() - before  # a joiner watches the server it did not start, too

        joiner.stop()

        assert not keeper.is_alive()
        assert answers_ping(joiner.url)
        assert embedded_redis_pids(tmp_path) == [owners_server]
        owner.stdin.close()
        assert owner.wait(timeout=30) == 0
        assert servers_left(tmp_path) == []  # the owner, alone again, shut it down


def test_a_server_that_cannot_start_again_is_given_up_with_a_warning(
    start_embedded: StartEmbedded, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="memory.stores.redis_server")
    before = keepers()
    server = start_embedded(tmp_path)
    [keeper] = keepers() - before
    killed = server.pid
    assert killed is not None
    url = server.url

    # Holding the start lock keeps the keeper from restarting it until its files are spoilt.
    with open(tmp_path / "redis" / "server.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: killed not in embedded_redis_pids(tmp_path), "the killed server to end")
        (tmp_path / "redis" / "appendonly.aof").write_text("not an append-only file\n")

    wait_for(lambda: not keeper.is_alive(), "the keeper to give up")
    [warning] = restart_warnings(caplog, killed)
    assert "did not start again" in warning and "redis-server.log" in warning
    assert server.pid is None
    assert embedded_redis_pids(tmp_path) == []
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(url) as client:
        client.ping()
    server.stop()


def test_a_server_started_again_rewrites_an_append_only_file_grown_over_short_runs(
    start_embedded: StartEmbedded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis rewrites the file once it doubles within one run; short runs (a command each) never
    see that, so the file would keep every run's writes and be read whole at every start."""
    monkeypatch.setattr("memory.stores.redis_server._AOF_REWRITE_MIN_BYTES", 1 << 20)
    aof = tmp_path / "redis" / "appendonly.aof"
    for run in range(3):  # each run rewrites one small value many times: ~1.3 MB of log
        server = start_embedded(tmp_path)
        with redis.Redis.from_url(server.url) as client:
            for start in range(0, 100, 25):
                with client.pipeline(transaction=False) as pipe:
                    for n in range(start, start + 25):
                        pipe.set("note", f"run {run}, write {n} ".ljust(13_000, "."))
                    pipe.execute()
        server.stop()
    grown = aof.stat().st_size
    assert grown > 3 << 20

    server = start_embedded(tmp_path)
    with redis.Redis.from_url(server.url) as client:
        wait_for(lambda: not any(client.info("persistence")[key] for key in
                                 ("aof_rewrite_in_progress", "aof_rewrite_scheduled")), "the rewrite to end")
        assert client.get("note").startswith(b"run 2, write 99 ")
    server.stop()
    assert aof.stat().st_size < 100_000 < grown


@pytest.mark.slow
def test_a_server_still_reading_a_large_append_only_file_is_waited_for(
    start_embedded: StartEmbedded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large archive's append-only file takes seconds to read at start, longer than the start
    is given to answer at all: the server answers LOADING meanwhile, and is waited for, not
    killed as one that never started."""
    from memory.stores import redis_server

    keys = 2_000_000  # ~3 s to read back here, in scripts of 20 000 writes (as GOAT writes: many small ones)
    server = start_embedded(tmp_path)
    with redis.Redis.from_url(server.url) as client:
        for first in range(0, keys, 20_000):
            client.eval("for n = tonumber(ARGV[1]), tonumber(ARGV[2]) do redis.call('SET', 'k' .. n, n) end",
                        0, first, first + 19_999)
    server.stop()

    seen: list[str] = []
    ping = redis_server._ping
    monkeypatch.setattr(redis_server, "_ping", lambda url: seen.append(ping(url)) or seen[-1])
    reading = EmbeddedRedis(tmp_path, startup_timeout=0.5)
    reading.start()
    try:
        assert redis_server._LOADING in seen  # it was read while being asked, past the 0.5 s
        with redis.Redis.from_url(reading.url) as client:
            assert client.dbsize() == keys and client.get(f"k{keys - 1}") == str(keys - 1).encode()
    finally:
        reading.stop()
