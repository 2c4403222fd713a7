"""A full disk, for real: the data folder on a 20 MB tmpfs, filled to the last byte.

Every command that fails for want of space says so in one line naming the folder, `goat doctor`
fails Redis, no embedded redis-server outlives the command however it ends (its PID, read from
the server's own log, is gone), and once space is freed the same import completes with exact
counts. Mounting a tmpfs needs root (CAP_SYS_ADMIN); elsewhere these tests are skipped.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from conftest import StartEmbedded
from bench.support.fakes import FakeOpenAI
from graph.settings import Settings
from memory.disk_failures import disk_full
from memory.stores import EmbeddedRedis
from test_cli import CHAT, GOAT, HANG_GUARD, USER, embedded_redis_pids, goat, goat_env, ok, servers_left
from test_graph import HISTORY, NOW, history_jsonl

pytestmark = pytest.mark.slow

DISK_SIZE = "20m"
MORE_TURNS = 60
# Each text long enough that the writes of one imported turn cannot fit in what a full tmpfs
# still has: the unused end of each file's last page.
FILLING = "The greenhouse log, row by row: " + "seedlings watered, vents opened, soil checked; " * 100


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MB tmpfs mounted for the test."""
    with tmpfs(tmp_path / "disk", DISK_SIZE) as disk:
        yield disk


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs holding an empty data folder, mounted again read-only."""
    with tmpfs(tmp_path / "disk", "1m") as disk:
        (disk / "data").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        yield disk


@contextmanager
def tmpfs(disk: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``disk`` (made here), unmounted after."""
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a small disk is simulated with a tmpfs, which this user cannot mount "
                    f"(needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        servers_left(disk / "data")
        subprocess.run(["umount", "--lazy", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left; returns it (delete it to free the space)."""
    filler = disk / "filler"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as file:
        # Again while a running process frees some meanwhile (SQLite truncating its log, behind a turn).
        while os.statvfs(disk).f_bavail:
            before = file.tell()
            while True:
                try:
                    file.write(block)
                except OSError:  # ENOSPC: then byte by byte, into the last page
                    break
            while True:
                try:
                    file.write(b"\0")
                except OSError:
                    break
            assert file.tell() > before, os.statvfs(disk)  # space said free that no write can take
    return filler


def more_history(turns: int = MORE_TURNS) -> str:
    lines = []
    for n in range(turns):
        stamp = NOW.timestamp() - 3600 + 10 * n
        for offset, role in ((0, "user"), (1, "assistant")):
            lines.append(json.dumps({"chat_id": CHAT, "user_id": USER, "role": role, "timestamp": stamp + offset,
                                     "content": f"{role} {n}: {FILLING}"}))
    return "\n".join(lines) + "\n"


def server_pids(data_dir: Path) -> set[int]:
    """Every redis-server that ever served ``data_dir``: each log line starts with its PID."""
    log = data_dir / "redis" / "redis-server.log"
    return {int(pid) for pid in re.findall(r"^(\d+):[CMSX] ", log.read_text(errors="replace"), re.M)}


def running_servers(pids: set[int], data_dir: Path) -> list[int]:
    """Those of ``pids`` still running as the redis-server of ``data_dir`` (a PID reused by
    another process does not count)."""
    return [pid for pid in sorted(pids) if pid in embedded_redis_pids(data_dir)]


def one_line_about_the_full_disk(result: subprocess.CompletedProcess[str], data_dir: Path) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("goat: ")]
    assert len(lines) == 1, result.stderr
    [line] = lines
    assert line.startswith(f"goat: the disk holding the data folder {data_dir.resolve()} is full (0 B free); "
                           "free space there, then run the command again ("), line
    return line


def test_a_full_disk_stops_each_command_in_one_line_leaves_no_server_and_loses_nothing_once_freed(
    small_disk: Path,
) -> None:
    data_dir, cwd = small_disk / "data", small_disk.parent
    env = goat_env(data_dir, GOAT_EMBEDDINGS__MODEL="minilm-l6")
    (cwd / "history.jsonl").write_text(history_jsonl(CHAT, USER), encoding="utf-8")
    (cwd / "more.jsonl").write_text(more_history(), encoding="utf-8")
    ok(goat("import", "history.jsonl", env=env, cwd=cwd))
    started_before = server_pids(data_dir)
    filler = fill(small_disk)

    one_line_about_the_full_disk(goat("import", "more.jsonl", env=env, cwd=cwd), data_dir)
    one_line_about_the_full_disk(goat("export", "--user", USER, env=env, cwd=cwd), data_dir)
    doctor = goat("doctor", env=env, cwd=cwd)
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr, doctor.stderr
    failed = [line for line in doctor.stdout.splitlines() if line.startswith("[FAIL]")]
    assert f"[FAIL] data folder: {data_dir.resolve()} — its disk is full (0 B free)" in failed
    [redis_line] = [line for line in failed if line.startswith("[FAIL] redis: ")]
    assert "cannot keep what is written: MISCONF" in redis_line and "No space left on device" in redis_line
    pids = server_pids(data_dir) - started_before
    assert len(pids) == 3  # one a command: none found a server left running by the one before
    assert running_servers(pids, data_dir) == []

    filler.unlink()
    again = ok(goat("import", "more.jsonl", env=env, cwd=cwd)).stdout.splitlines()[0]
    imported, already = map(int, re.fullmatch(
        rf"{2 * MORE_TURNS} messages, {MORE_TURNS} turns: (\d+) imported, (\d+) already there", again).groups())
    assert imported + already == MORE_TURNS
    [chat] = json.loads(ok(goat("export", "--user", USER, env=env, cwd=cwd)).stdout)["chats"]
    turns = len(HISTORY) + MORE_TURNS
    assert len(chat["l2"]) == 2 * turns
    assert len({entry["id"] for entry in chat["l3"]}) == len(chat["l3"]) == turns
    assert not [line for line in ok(goat("doctor", env=env, cwd=cwd)).stdout.splitlines() if line.startswith("[FAIL")]
    assert running_servers(server_pids(data_dir), data_dir) == []


def ended(pid: int, timeout: float = HANG_GUARD) -> bool:
    """Whether process ``pid`` ends within ``timeout`` seconds (a hang guard: it returns as soon
    as the process has ended)."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([handle], [], [], timeout)[0])
    finally:
        os.close(handle)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_command_ended_on_a_full_disk_leaves_no_server(small_disk: Path, how: signal.Signals) -> None:
    """Ctrl-C, a service manager's SIGTERM, SIGKILL: the embedded server ends with the command,
    though the disk has no room for anything it might save on the way out."""
    data_dir = small_disk / "data"
    with FakeOpenAI(responder=lambda request: "Noted.") as fake:
        env = goat_env(data_dir, GOAT_EMBEDDINGS__MODEL="minilm-l6", GOAT_MODEL="fake-model",
                       OPENAI_API_KEY="sk-fake-full-disk", OPENAI_BASE_URL=fake.base_url)
        with subprocess.Popen([str(GOAT), "chat"], env=env, cwd=small_disk.parent, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as chat:
            try:
                chat.stdin.write("Remember the greenhouse.\n")
                chat.stdin.flush()
                assert chat.stdout.readline() == "Noted.\n"  # up, with its server, and a turn done
                [server] = embedded_redis_pids(data_dir)
                fill(small_disk)
                chat.send_signal(how)
                assert chat.wait(timeout=HANG_GUARD) != 0
            finally:
                chat.kill()
            assert "Traceback" not in chat.stderr.read()
    assert ended(server), f"the redis-server (pid {server}) outlived `goat chat` ended by {how.name}"


def refusal_on_a_full_disk(server: EmbeddedRedis, disk: Path) -> redis.ResponseError:
    """Fill the disk under a running server, and write: what the server answers then."""
    fill(disk)
    with redis.Redis.from_url(server.url) as client:
        client.set("accepted", "x" * 20000)  # answered OK; writing it to the file fails
        with pytest.raises(redis.ResponseError) as refused:
            client.set("refused", "y")
    return refused.value


def test_a_server_refusing_writes_is_joined_not_started_again_on_its_files(
    small_disk: Path, start_embedded: StartEmbedded
) -> None:
    """Such a server refuses even PING: taken for gone, a second server was started on the same
    files and socket (three of them, after three commands)."""
    data_dir = small_disk / "data"
    server = start_embedded(data_dir)
    assert str(refusal_on_a_full_disk(server, small_disk)).startswith("MISCONF")

    joiner = start_embedded(data_dir)  # another command on the same data folder

    assert joiner.pid == server.pid
    assert embedded_redis_pids(data_dir) == [server.pid]


def test_a_refusal_for_want_of_space_is_told_in_one_line_naming_the_full_disk(
    small_disk: Path, start_embedded: StartEmbedded
) -> None:
    data_dir = small_disk / "data"
    refusal = refusal_on_a_full_disk(start_embedded(data_dir), small_disk)

    assert disk_full(refusal, Settings(data_dir=data_dir)) == (
        f"the disk holding the data folder {data_dir.resolve()} is full (0 B free); free space there, then run the "
        "command again (ResponseError: MISCONF Errors writing to the AOF file: No space left on device)")
    # The same refusal from a Redis server of one's own: its disk, not the data folder's.
    elsewhere = Settings(data_dir=small_disk.parent / "elsewhere", redis={"url": "redis://:pw-s3cret@cache:6379/0"})
    assert disk_full(refusal, elsewhere) == (
        "the Redis server at redis://[redacted]@cache:6379/0 cannot write to its disk (full, most often: see its "
        "log); free space there, then run the command again (ResponseError: MISCONF Errors writing to the AOF "
        "file: No space left on device)")
    assert disk_full(RuntimeError("a bug of ours"), Settings(data_dir=small_disk.parent)) is None


def test_a_read_only_disk_is_named_read_only_not_full(read_only_disk: Path, tmp_path: Path) -> None:
    data_dir = read_only_disk / "data"
    transcript = tmp_path / "history.jsonl"
    transcript.write_text(history_jsonl(CHAT), "utf-8")

    result = goat("import", transcript, env=goat_env(data_dir), cwd=tmp_path)

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("goat: ")]
    assert line.startswith(f"goat: the data folder {data_dir.resolve()} is on a read-only filesystem; make it "
                           "writable (or set GOAT_DATA_DIR to a folder that is), then run the command again ("), line
    assert "Read-only file system" in line and " is full" not in line
