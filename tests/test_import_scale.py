"""Big transcripts and stopped imports: the real `goat import`, run as a user runs it.

A transcript is read twice and never held: the memory an import takes does not grow with its
file, a Telegram or ChatGPT export's (one JSON document) no more than JSON Lines'. Ctrl-C or
SIGTERM stops an import between two batches, soon, with what it wrote whole, and the same
command imports the rest: every turn once, after a SIGKILL too. Real Redis, Chroma and encoder.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import wait_for
from test_cli import GOAT, HANG_GUARD, goat, goat_env, ok, servers_left

from bench.support.exports import (TelegramChat, chatgpt_chain, telegram_message, write_chatgpt, write_telegram,
                                   zipped)

pytestmark = pytest.mark.slow

CHAT, USER = "big-chat", "big-user"
# Enough exchanges that an import is still writing when the test sees its first batch and signals,
# however loaded the host: batches grow to ~1 s each (importer.BATCH_SECONDS), so 400 were 4
# batches and a busy machine could finish them before the signal came.
STOPPED_TURNS = 1_200
STOPPED_WITHIN = 15.0  # seconds from the signal to the exit: one batch (~0.5 s) and the shutdown
PROGRESS = re.compile(r"\| *([1-9]\d*)/(\d+) \[")  # tqdm's bar once a batch is written


def transcript(path: Path, turns: int, *, chats: int = 1, last: str = "") -> Path:
    """``turns`` short exchanges (the encoder is what an import spends its time on), spread over
    ``chats`` chats, then ``last`` as the file's last line."""
    with path.open("w", encoding="utf-8") as file:
        for n in range(turns):
            chat = f"{CHAT}-{n % chats}" if chats > 1 else CHAT
            for role, text in (("user", f"Note {n}: the meter read {n * 7} units."), ("assistant", f"Noted, {n}.")):
                file.write(json.dumps({"chat_id": chat, "user_id": USER, "role": role, "content": text,
                                       "timestamp": 1_700_000_000 + n}) + "\n")
        file.write(last)
    return path


@dataclass
class Running:
    """`goat import` running, its standard error gathered as it comes (tqdm's bar, then the end)."""

    process: subprocess.Popen[bytes]
    errors: bytearray

    @property
    def stderr(self) -> str:
        return self.errors.decode("utf-8", "replace")

    def imported(self) -> int:
        """Turns the progress bar counts so far."""
        counts = [int(match.group(1)) for match in PROGRESS.finditer(self.stderr)]
        return max(counts, default=0)

    def peak_rss_kb(self) -> int:
        """The process's resident memory at its highest so far (the kernel's VmHWM)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))


@contextmanager
def importing(path: Path, env: dict[str, str], cwd: Path, *options: str) -> Iterator[Running]:
    process = subprocess.Popen([str(GOAT), "import", str(path), *options], env=env, cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    running = Running(process, bytearray())

    def gather() -> None:
        while chunk := process.stderr.read1(4096):
            running.errors.extend(chunk)

    reader = threading.Thread(target=gather, daemon=True)
    reader.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(HANG_GUARD)
        reader.join(HANG_GUARD)


def stopped_by(signum: int, path: Path, env: dict[str, str], cwd: Path, there: int = 0) -> tuple[int, str]:
    """Start `goat import`, send ``signum`` once it has written a batch (past the ``there``
    turns an earlier run wrote); its exit status and standard error. It must end within
    STOPPED_WITHIN seconds of the signal."""
    with importing(path, env, cwd) as running:
        wait_for(lambda: running.imported() > there or running.process.poll() is not None,
                 "the import's first batch", timeout=HANG_GUARD)
        running.process.send_signal(signum)
        returncode = running.process.wait(timeout=STOPPED_WITHIN)
    return returncode, running.stderr


def exported_turns(env: dict[str, str], cwd: Path) -> tuple[list[str], list[str]]:
    """The user's L2 messages and L3 entries, as `goat export` gives them."""
    [chat] = json.loads(ok(goat("export", "--user", USER, env=env, cwd=cwd)).stdout)["chats"]
    return [m["content"] for m in chat["l2"]], sorted(entry["id"] for entry in chat["l3"])


def test_ctrl_c_and_sigterm_stop_an_import_soon_and_the_same_command_imports_the_rest(tmp_path):
    path = transcript(tmp_path / "meters.jsonl", STOPPED_TURNS)
    env = goat_env(tmp_path / "data")

    stopped: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        returncode, errors = stopped_by(signum, path, env, tmp_path, there=sum(stopped))
        assert returncode == 130, errors[-3000:]
        assert "Traceback" not in errors and "terminate called" not in errors
        [said] = [line for line in errors.replace("\r", "\n").splitlines() if line.startswith("goat:")]
        done = re.fullmatch(rf"goat: stopped: (\d+) turn\(s\) imported, (\d+) already there, of {STOPPED_TURNS}; "
                            r"what was written is whole: run the same command again to import the rest", said)
        assert done, said
        stopped.append(int(done.group(1)))
        assert int(done.group(2)) == sum(stopped[:-1])  # the first run's turns, there already
        assert servers_left(tmp_path / "data") == []
    assert all(stopped) and sum(stopped) < STOPPED_TURNS

    finished = ok(goat("import", path, env=env, cwd=tmp_path)).stdout.splitlines()[0]

    assert finished == (f"{2 * STOPPED_TURNS} messages, {STOPPED_TURNS} turns: {STOPPED_TURNS - sum(stopped)} "
                        f"imported, {sum(stopped)} already there")
    working, archived = exported_turns(env, tmp_path)
    assert working == [text for n in range(STOPPED_TURNS)
                       for text in (f"Note {n}: the meter read {n * 7} units.", f"Noted, {n}.")]
    assert archived == sorted(f"{CHAT}:turn_{n:04d}" for n in range(1, STOPPED_TURNS + 1))  # each turn once


def first_batch_peak(path: Path, data_dir: Path, cwd: Path) -> int:
    """`goat import`'s peak resident memory (kB) once it has read the whole file and written a
    batch; then it is stopped."""
    with importing(path, goat_env(data_dir), cwd) as running:
        wait_for(lambda: running.imported() > 0 or running.process.poll() is not None,
                 "the import's first batch", timeout=HANG_GUARD)
        peak = running.peak_rss_kb()
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(timeout=STOPPED_WITHIN) == 130, running.stderr[-3000:]
    return peak


def test_the_memory_an_import_takes_does_not_grow_with_its_file(tmp_path):
    """Its peak resident memory once it writes, for a transcript and one ten times as long: the
    whole file was read (every line is checked before anything is written), and is not held."""
    peaks = []
    for turns in (8_000, 80_000):
        path = transcript(tmp_path / f"{turns}.jsonl", turns, chats=50)
        peaks.append(first_batch_peak(path, tmp_path / f"data-{turns}", tmp_path))

    assert peaks[1] - peaks[0] < 16_000, peaks  # reading 72 000 more turns held none of them (before this was streamed: +70 MB)


def test_a_200_000_message_telegram_export_is_read_in_the_memory_of_one_ten_times_smaller(tmp_path):
    """One chat's export is one JSON array of messages: Telegram Desktop writes it as a document,
    and parsed whole, 200 000 messages would take some 300 MB more than 20 000 do."""
    peaks = []
    for messages in (20_000, 200_000):
        said = (telegram_message(n + 1, 1_600_000_000 + n, 1001 if n % 2 == 0 else 2002,
                                 f"Note {n}: the meter read {n * 7} units.") for n in range(messages))
        path = write_telegram(tmp_path / f"result-{messages}.json", [TelegramChat("Meters", "personal_chat", 2002, said)])
        peaks.append(first_batch_peak(path, tmp_path / f"data-{messages}", tmp_path))

    assert peaks[1] - peaks[0] < 16_000, peaks  # 180 000 more messages read, none of them held


def test_a_chatgpt_export_killed_mid_import_is_finished_by_the_same_command_every_turn_once(tmp_path):
    turns = 400
    conversation = chatgpt_chain(CHAT, "Meters", ((f"Note {n}: the meter read {n * 7} units.", f"Noted, {n}.",
                                                   1_700_000_000 + 60 * n) for n in range(turns)))
    path = zipped(write_chatgpt(tmp_path / "conversations.json", [conversation]), tmp_path / "chatgpt.zip")
    env = goat_env(tmp_path / "data")

    with importing(path, env, tmp_path, "--me", USER) as running:
        wait_for(lambda: running.imported() > 0 or running.process.poll() is not None,
                 "the import's first batch", timeout=HANG_GUARD)
        running.process.send_signal(signal.SIGKILL)  # no handler: it stops wherever it is
        assert running.process.wait(timeout=STOPPED_WITHIN) == -signal.SIGKILL
    killed_at = running.imported()
    finished = ok(goat("import", path, "--me", USER, env=env, cwd=tmp_path)).stdout.splitlines()

    imported, there = map(int, re.fullmatch(rf"{2 * turns} messages, {turns} turns: (\d+) imported, (\d+) already "
                                            r"there", finished[0]).groups())
    assert there >= killed_at > 0 and imported + there == turns and imported > 0
    assert finished[1] == "left out: 1 system or tool message"
    working, archived = exported_turns(env, tmp_path)
    assert working == [text for n in range(turns) for text in (f"Note {n}: the meter read {n * 7} units.",
                                                                f"Noted, {n}.")]
    assert archived == [f"{CHAT}:turn_{n:04d}" for n in range(1, turns + 1)]  # each turn once
    servers_left(tmp_path / "data")
