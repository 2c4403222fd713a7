"""`goat chat` and `goat stats`: the real console script over a pipe (scripted sessions) and on a
pseudo-terminal (Ctrl-C), and the terminal session in-process (streaming, failing turns), on real
Redis, Chroma and MiniLM; the model is the loopback fake."""

from __future__ import annotations

import asyncio
import ctypes
import io
import json
import os
import pty
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from bot.chat import CANCELLED, PROMPT, REPLY_PREFIX, ChatSession, PipedLines
from conftest import wait_for
from bench.support.fakes import FakeOpenAI
from graph.settings import Settings
from memory.turns import MAX_MESSAGE_CHARS
from memory.stores.episodic import EpisodicStore, collection_name
from memory.facade import Memory, measurement_hooks
from memory.turns import Exchange
from memory.prompt.blocks import RECALL_HEADER
from memory.prompt.tokens import MAX_CHARS_PER_TOKEN
from memory.stores.redis_server import EmbeddedRedis
from test_cli import GOAT, HANG_GUARD, embedded_redis_pids, goat, goat_env, inspect_json, ok, servers_left
from test_graph import letta_down, make_runner, with_model

pytestmark = pytest.mark.slow

CHAT, USER = "shed-chat", "alice"
FIRST = "The garden shed padlock code is zebra-9911, I changed it this morning."
SECOND = "Also the greenhouse door sticks when it rains."
THIRD = "Remind me what we talked about first?"
RECALL = "What is the padlock code of the garden shed, zebra-9911 or something?"
REPLIES = ["Got it, zebra-9911 for the shed.", "Try a little wax on the runners.",
           "First the shed padlock code, then the greenhouse door.", "It is zebra-9911."]  # fmt: skip
FACTS = {"shed_code": "zebra-9911", "home_city": "Porto"}
OPENAI_KEY = "sk-goat-test-OPENAIKEY-4f9c2b7e"
SYS_TGKILL, SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT = 234, "232", "281"  # x86-64
BOT_TOKEN = "987654321:TELEGRAM-TOKEN-8d1e5a"
NODES = {"prefetch", "load_identity", "load_working", "gap_filter", "budget", "assemble", "llm", "save", "archive"}
# Scripted input of the second session: facts, forgetting, a reset, a question only L3 can answer.
SECOND_SESSION = [
    "/facts", "/forget shed_code", "/forget shed_code", "/facts", "/reset", RECALL, "/why", "/quit",
    "This line comes after /quit and is never sent.",
]  # fmt: skip


@dataclass(frozen=True)
class Sessions:
    data_dir: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    requests: list[dict]
    stats: subprocess.CompletedProcess[str]
    stats_json: subprocess.CompletedProcess[str]
    stats_last_two: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis) -> Iterator[Sessions]:
    """Two scripted `goat chat` sessions of one chat (the second after /reset), then `goat stats`.
    Redis is the session's server, so the facts can be seeded beforehand; Chroma is embedded."""
    root = tmp_path_factory.mktemp("chat")
    data_dir = root / "data"
    asyncio.run(seed_facts(Settings(data_dir=data_dir, redis={"url": redis_server.url})))
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        for reply in REPLIES:
            fake.reply(reply)
        env = goat_env(data_dir, GOAT_REDIS_URL=redis_server.url, GOAT_MODEL="fake-model",
                       OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=fake.base_url, TELEGRAM_BOT_TOKEN=BOT_TOKEN)

        def chat(lines: list[str]) -> subprocess.CompletedProcess[str]:
            return goat_chat(lines, "--chat", CHAT, "--user", USER, env=env, cwd=root)

        first = chat([FIRST, "", SECOND, THIRD])  # a blank line is no message
        second = chat(SECOND_SESSION)
        requests = fake.requests
    yield Sessions(
        data_dir, first, second, requests,
        stats=goat("stats", env=env, cwd=root),
        stats_json=goat("stats", "--json", env=env, cwd=root),
        stats_last_two=goat("stats", "--json", "--last", "2", env=env, cwd=root),
    )  # fmt: skip


def goat_chat(lines: list[str], *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`goat chat` with ``lines`` on standard input (a pipe, so the scripted mode)."""
    return subprocess.run([str(GOAT), "chat", *args], input="\n".join(lines) + "\n", env=env, cwd=cwd,
                          capture_output=True, encoding="utf-8", errors="surrogateescape",  # lone bytes pass
                          timeout=HANG_GUARD)  # fmt: skip


async def seed_facts(settings: Settings) -> None:
    memory = Memory(settings)
    try:
        await (await memory._backends.redis.client()).flushall()
        store = await memory._backends.redis.facts()
        for key, value in FACTS.items():
            await store.upsert(USER, key, value)
    finally:
        await memory.aclose()


def turn_lines(data_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (data_dir / "logs" / "turns.jsonl").read_text("utf-8").splitlines()]


# ---- the scripted sessions ------------------------------------------------------------------


def test_a_scripted_session_prints_one_reply_per_message_and_sends_earlier_turns_as_l2(sessions):
    assert ok(sessions.first).stdout.splitlines() == REPLIES[:3]  # no prompts, nothing else
    assert sessions.first.stderr == ""
    third = sessions.requests[2]["messages"]
    assert [m["role"] for m in third] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert third[1]["content"] == FIRST and third[2]["content"] == REPLIES[0]  # the first turn, as L2
    assert third[-1]["content"] == THIRD
    # Printed whole, one line per reply: nothing reads tokens as they come, so none are streamed.
    assert all(r["stream"] is False for r in sessions.requests)


def test_after_reset_the_first_turn_is_recalled_through_l3_and_turn_numbers_go_on(sessions):
    ok(sessions.second)
    assert len(sessions.requests) == 4  # nothing after /quit was sent
    messages = sessions.requests[3]["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]  # L2 is empty after /reset
    assert messages[1]["content"] == RECALL
    recalled = messages[0]["content"].split(RECALL_HEADER, 1)[1]
    assert f"user: {FIRST} ⏎ assistant: {REPLIES[0]}" in recalled  # the first turn, verbatim, from L3
    assert "zebra-9911" not in messages[0]["content"].split(RECALL_HEADER)[0]  # not from L1: it was forgotten

    assert [line["turn"] for line in turn_lines(sessions.data_dir)] == [1, 2, 3, 4]
    store = chromadb.PersistentClient(path=str(sessions.data_dir / "chroma"),
                                      settings=ChromaSettings(anonymized_telemetry=False))  # fmt: skip
    archived = store.get_collection(collection_name(CHAT)).get()["ids"]
    assert sorted(archived) == [f"{CHAT}:turn_{n:04d}" for n in (1, 2, 3, 4)]  # none overwritten


def test_facts_forget_reset_and_why_print_what_they_did(sessions):
    out = ok(sessions.second).stdout.splitlines()
    reply_at = out.index(REPLIES[3])
    assert out[:reply_at] == [
        "home_city: Porto", "shed_code: zebra-9911",
        "Forgot shed_code.",
        "I keep no fact called shed_code.",
        "home_city: Porto",
        "Starting afresh: the recent conversation is cleared; earlier turns are still recalled when they matter.",
    ]  # fmt: skip
    why = "\n".join(out[reply_at + 1:])
    assert why.startswith(f"» {RECALL}\n  chat {CHAT} · turn 4 · budget ")
    assert "budget split: L0+L1 " in why and "used: L0+L1 " in why
    assert "prefetch: fired thematic, lexical, specific_key" in why
    recall_lines = [line for line in why.splitlines() if FIRST[:60] in line]
    assert len(recall_lines) == 1 and "specific_key" in recall_lines[0] and "score=" in recall_lines[0]
    assert "latency ms: " in why and f"answer: {REPLIES[3]}" in why


def test_stats_prints_percentiles_per_node_for_the_turns_just_run(sessions):
    text = ok(sessions.stats).stdout
    assert text.startswith("last 4 turn(s), ")
    rows = {row.split()[0]: row.split()[1:] for row in text.splitlines()[2:] if len(row.split()) == 4}
    assert set(rows) >= NODES | {"total"}
    for p50, p95, maximum in rows.values():
        assert float(p50) <= float(p95) <= float(maximum)
    assert "cache: 0 hit(s), 4 miss(es)" in text and "specific_key 1" in text

    summary = json.loads(ok(sessions.stats_json).stdout)
    assert summary["turns"] == 4 and set(summary["latency_ms"]) == NODES | {"total"}
    assert all(s["n"] == 4 for s in summary["latency_ms"].values())
    assert summary["prefetch"]["fired"] == {"thematic": 4, "lexical": 4, "specific_key": 2}
    assert all(isinstance(v, int) for v in summary["tokens_p50"].values())
    assert json.loads(ok(sessions.stats_last_two).stdout)["turns"] == 2


def test_no_secret_and_no_message_text_reaches_the_logs_or_the_output(sessions):
    written = (sessions.data_dir / "logs" / "turns.jsonl").read_text("utf-8")
    outputs = [sessions.first, sessions.second, sessions.stats, sessions.stats_json, sessions.stats_last_two]
    for text in [written] + [p.stdout + p.stderr for p in outputs]:
        assert OPENAI_KEY not in text and BOT_TOKEN not in text
    assert "padlock" not in written and "greenhouse" not in written and "zebra" not in written


def test_stats_before_any_turn_says_so_and_creates_nothing(tmp_path):
    result = ok(goat("stats", env=goat_env(tmp_path / "data"), cwd=tmp_path))

    assert result.stdout.startswith("no turns recorded yet in ")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("variables, named", [({}, "GOAT_MODEL"), ({"GOAT_MODEL": "fake-model"}, "OPENAI_API_KEY")],
                         ids=["no-model", "no-key"])
def test_chat_without_a_usable_model_refuses_to_start_naming_the_variable(variables, named, tmp_path):
    result = goat_chat(["hello there", "/help"], env=goat_env(tmp_path / "data", **variables), cwd=tmp_path)

    assert result.returncode == 2 and result.stdout == ""  # no "ready", no answer
    [line] = result.stderr.splitlines()
    assert line.startswith("goat: the chat needs a model: ") and named in line
    assert not (tmp_path / "data").exists()  # refused before any backend started


def test_why_in_a_new_session_explains_the_chats_last_turn_and_its_tool_calls(tmp_path):
    question = "Where did I leave the spare key?"
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        fake.reply_tool_calls([{"name": "search_memory", "arguments": {"query": "spare key"}}])
        fake.reply("Nothing about a spare key came up in our chats.")
        env = goat_env(tmp_path / "data", GOAT_MODEL="fake-model", OPENAI_API_KEY=OPENAI_KEY,
                       OPENAI_BASE_URL=fake.base_url)
        answered = goat_chat([question], "--chat", CHAT, env=env, cwd=tmp_path)
        restarted = goat_chat(["/why"], "--chat", CHAT, env=env, cwd=tmp_path)

    assert ok(answered).stdout == "Nothing about a spare key came up in our chats.\n"
    why = ok(restarted).stdout
    assert why.startswith(f"» {question}\n  chat {CHAT} · turn 1 · budget ")
    assert "  answer: Nothing about a spare key came up in our chats.\n" in why
    *_, count, called = why.splitlines()
    assert count == "  tools called: 1"
    assert called.startswith('    called search_memory(query="spare key") → {"results": []')


def test_what_the_model_is_sent_is_counted_long_words_and_all(tmp_path):
    # WordPiece reads a word of over 100 characters as one [UNK]: a fact or a message made of
    # such words must count for what it sends, not pass every budget as a token or two.
    question = "What did I tell you about the garden?"
    huge_fact, long_word = "x" * 300_000, "y" * 150_000
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        fake.reply("That is a long word.")
        fake.reply("Nothing about the garden.")
        env = goat_env(tmp_path / "data", GOAT_MODEL="fake-model", OPENAI_API_KEY=OPENAI_KEY,
                       OPENAI_BASE_URL=fake.base_url)
        told = goat_chat([f"/remember huge={huge_fact}", long_word], "--chat", CHAT, env=env, cwd=tmp_path)
        report = inspect_json(question, env=env, cwd=tmp_path, chat=CHAT)  # the next turn, before it runs
        asked = goat_chat([question], "--chat", CHAT, env=env, cwd=tmp_path)
        sent = fake.requests[-1]["messages"]

    refused, _ = ok(told).stdout.splitlines()
    assert refused.startswith("refused: with this fact the known-facts block would take 37")  # 300 000 / 8
    assert refused.endswith("no longer matters") and "over its limit of 500" in refused
    assert ok(asked).stdout == "Nothing about the garden.\n"
    # Every token inspect reports stands for at most MAX_CHARS_PER_TOKEN characters sent: the
    # long word, over the whole budget, is left out of the prompt rather than counted as one.
    layers = sum(report["tokens"].values())
    assert long_word not in str(sent) and huge_fact not in str(sent)
    assert sum(len(m["content"]) for m in sent[:-1]) <= MAX_CHARS_PER_TOKEN * layers + len(RECALL_HEADER) + 4


# ---- Ctrl-C at a terminal ----------------------------------------------------------------------


class HeldStream(FakeOpenAI):
    """A model that streams the first words of its next answer, then holds the rest until
    ``go_on`` is set: a reply caught half-way."""

    HELD_AFTER = 3  # chunks: the role, then two words

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.holding = threading.Event()
        self.go_on = threading.Event()

    def _chunks(self, body: dict[str, Any], reply: Any) -> Iterator[dict[str, Any]]:
        for number, chunk in enumerate(super()._chunks(body, reply)):
            if number == self.HELD_AFTER and not self.go_on.is_set():
                self.holding.set()
                self.go_on.wait(HANG_GUARD)
            yield chunk


@dataclass
class Terminal:
    """`goat chat` on a pseudo-terminal, as at a real one (it prompts, streams, and Ctrl-C reaches it
    as SIGINT); what it shows is gathered as it comes."""

    process: subprocess.Popen[bytes]
    keyboard: int  # the terminal's other end: what is written there is typed, what is read there is shown
    shown: bytearray

    def type(self, line: str) -> None:
        os.write(self.keyboard, line.encode() + b"\r")

    @property
    def screen(self) -> str:
        return self.shown.decode("utf-8", "replace")

    def wait_for_screen(self, text: str, count: int = 1) -> None:
        wait_for(lambda: self.screen.count(text) >= count, f"{text!r} on the terminal (so far: {self.screen!r})")


@contextmanager
def terminal_chat(*args: str, env: dict[str, str], cwd: Path) -> Iterator[Terminal]:
    keyboard, terminal = pty.openpty()
    process = subprocess.Popen([str(GOAT), "chat", *args], stdin=terminal, stdout=terminal, stderr=terminal,
                               env=env, cwd=cwd)
    os.close(terminal)
    shown = bytearray()

    def show() -> None:
        with suppress(OSError):  # EIO: every process holding the terminal has ended
            while chunk := os.read(keyboard, 4096):
                shown.extend(chunk)

    reader = threading.Thread(target=show, daemon=True)
    reader.start()
    try:
        yield Terminal(process, keyboard, shown)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(HANG_GUARD)
        reader.join(HANG_GUARD)
        os.close(keyboard)


@contextmanager
def reply_held_half_way(data_dir: Path, cwd: Path, *replies: str) -> Iterator[tuple[HeldStream, Terminal]]:
    """`goat chat` on a pseudo-terminal, FIRST typed, and the model's answer to it (the first of
    ``replies``, which begins "The garden") held after its first words, which are on the screen."""
    with HeldStream(api_key=OPENAI_KEY) as fake:
        for reply in replies:
            fake.reply(reply)
        env = goat_env(data_dir, GOAT_MODEL="fake-model", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=fake.base_url)
        with terminal_chat("--chat", CHAT, env=env, cwd=cwd) as chat:
            chat.wait_for_screen(PROMPT)
            chat.type(FIRST)
            wait_for(fake.holding.is_set, "the model to hold its answer half-way")
            chat.wait_for_screen(REPLY_PREFIX + "The garden")
            yield fake, chat


# Known: in one full-suite run on a fresh clone both hung at the end, the goat process not
# exiting after its last signal (not reproduced in 10 runs of their own); under investigation.
def test_ctrl_c_while_the_reply_streams_cancels_that_answer_and_a_second_at_the_prompt_quits(tmp_path):
    cut, answered = "The garden shed code is zebra-9911 and", "Yes, I am here."
    data_dir = tmp_path / "data"
    with reply_held_half_way(data_dir, tmp_path, cut, answered) as (fake, chat):
        chat.process.send_signal(signal.SIGINT)
        chat.wait_for_screen(CANCELLED)
        fake.go_on.set()
        chat.wait_for_screen(PROMPT, count=2)  # back at the prompt, the session alive
        chat.type("/why")
        chat.wait_for_screen("The chat's last message got no answer (it failed or was cancelled)")
        chat.wait_for_screen(PROMPT, count=3)
        chat.type("Are you still there?")
        chat.wait_for_screen(f"{REPLY_PREFIX}{answered}")
        chat.wait_for_screen(PROMPT, count=4)
        chat.process.send_signal(signal.SIGINT)  # at the prompt: leave
        returncode = chat.process.wait(HANG_GUARD)
        requests = fake.requests

    assert returncode == 130
    assert f"{REPLY_PREFIX}The garden {CANCELLED}\r\n" in chat.screen
    assert "Traceback" not in chat.screen and "goat:" not in chat.screen  # no error reported
    # The next turn knows nothing of the cancelled one: not in its prompt, and it is turn 1.
    assert [(m["role"], m["content"]) for m in requests[1]["messages"][1:]] == [("user", "Are you still there?")]
    logged = turn_lines(data_dir)
    assert [line["event"] for line in logged] == ["turn_failed", "turn"]
    assert logged[0]["error"] == "TurnCancelled: cancelled with Ctrl-C before its reply was whole"
    assert logged[1]["turn"] == 1
    store = chromadb.PersistentClient(path=str(data_dir / "chroma"),
                                      settings=ChromaSettings(anonymized_telemetry=False))
    [archived] = store.get_collection(collection_name(CHAT)).get()["documents"]
    assert archived == f"user: Are you still there?\nassistant: {answered}"
    assert servers_left(data_dir) == []


def test_sigterm_while_the_reply_streams_ends_the_session_not_only_the_answer(tmp_path):
    with reply_held_half_way(tmp_path / "data", tmp_path, "The garden shed code is zebra-9911 and") as (fake, chat):
        chat.process.terminate()  # as a service manager or `kill` stops it
        returncode = chat.process.wait(HANG_GUARD)
        fake.go_on.set()

    assert returncode == 130
    assert CANCELLED not in chat.screen and "Traceback" not in chat.screen
    assert servers_left(tmp_path / "data") == []


def test_a_warning_while_the_reply_streams_is_printed_on_a_line_of_its_own(tmp_path):
    """The embedded Redis killed under a chat whose reply is streaming: the warning that it was
    started again comes between the reply's words, on its own line, and the reply goes on."""
    data_dir = tmp_path / "data"
    said = "The garden shed code is zebra-9911 and the greenhouse key is under the pot."
    with reply_held_half_way(data_dir, tmp_path, said) as (fake, chat):
        [server] = embedded_redis_pids(data_dir)
        os.kill(server, signal.SIGKILL)
        chat.wait_for_screen("started it again")
        fake.go_on.set()
        chat.wait_for_screen(PROMPT, count=2)
        chat.process.send_signal(signal.SIGINT)  # at the prompt: leave
        assert chat.process.wait(HANG_GUARD) == 130

    shown = chat.screen.replace("\r\n", "\n")
    warning = next(line for line in shown.splitlines() if "started it again" in line)
    assert warning.startswith("WARNING memory.stores.redis_server: the embedded redis-server of ")
    reply = shown[shown.index(REPLY_PREFIX):shown.index(PROMPT, shown.index(REPLY_PREFIX))]
    # Every warning on a line of its own (the chat's lease may also fail a renewal meanwhile).
    first, *between, rest = reply.splitlines(keepends=True)
    assert first == f"{REPLY_PREFIX}The garden\n" and f"{warning}\n" in between
    assert all(line.startswith("WARNING ") for line in between)
    assert rest == " shed code is zebra-9911 and the greenhouse key is under the pot.\n"
    assert servers_left(data_dir) == []


# ---- the terminal session, in-process ----------------------------------------------------------


class Recorder(io.StringIO):
    """Standard output that remembers each write, to see a reply arrive piece by piece."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


async def test_at_a_terminal_the_reply_streams_chunk_by_chunk(settings, embeddings):
    reply = "San Marzano tomatoes want a deep pot, full sun and steady water."
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        out = Recorder()
        session = ChatSession(runner, "stream-chat", "bob", interactive=True, out=out, err=io.StringIO())
        try:
            fake.reply(reply)
            await session.handle("How should I grow tomatoes?")
            chunks: list[str] = []
            fake.reply(reply)
            state = await runner.run("stream-chat", "And on a balcony?", on_token=chunks.append)
        finally:
            await runner.aclose()

    assert out.getvalue() == REPLY_PREFIX + reply + "\n"
    assert out.writes[0] == REPLY_PREFIX and out.writes[-1] == "\n"
    assert len(out.writes[1:-1]) > 3 and "".join(out.writes[1:-1]) == reply  # piece by piece
    assert len(chunks) > 3 and "".join(chunks) == state["reply"] == reply
    assert fake.requests[-1]["stream"] is True


async def test_a_failing_turn_prints_one_line_and_the_next_one_answers(settings, embeddings):
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        out, err = io.StringIO(), io.StringIO()
        session = ChatSession(runner, "flaky-chat", "bob", interactive=False, out=out, err=err)
        try:
            fake.fail(503, "The engine is overloaded.").fail(503, "The engine is overloaded.")  # and its retry
            await session.handle("Are you there?")
            await session.handle("x" * (MAX_MESSAGE_CHARS + 1))
            fake.reply("Yes, back again.")
            await session.handle("Are you there now?")
            turns, working, _ = await runner.services.memory.working("flaky-chat", 10)
        finally:
            await runner.aclose()

    failures = err.getvalue().splitlines()
    assert len(failures) == 2 and session.failures == 2
    assert failures[0].startswith("goat: the model failed: ") and "503 - The engine is overloaded." in failures[0]
    assert failures[0].endswith("; the message is kept as turn 1: no need to send it again")
    assert failures[1] == (f"goat: the turn failed: the message has {MAX_MESSAGE_CHARS + 1} characters; "
                           f"the limit is {MAX_MESSAGE_CHARS}")  # fmt: skip
    assert out.getvalue() == "Yes, back again.\n"
    # The message the model could not answer is a turn of its own, as the bot keeps it; the
    # refused one left nothing: the turn that answered is turn 2, and its model saw turn 1.
    assert turns == 2 and [m["content"] for m in working] == ["Are you there?", "Are you there now?", "Yes, back again."]
    assert "Are you there?" in str(fake.requests[-1]["messages"])


async def test_search_right_after_a_turn_finds_that_turn(settings, embeddings):
    # The turn is archived behind its reply; the search must not run ahead of that write.
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        out, err = io.StringIO(), io.StringIO()
        session = ChatSession(runner, "just-said-chat", "erin", interactive=False, out=out, err=err)
        try:
            fake.reply("Miso is a lovely name.")
            await session.handle("My cat is called Miso.")
            await session.handle("/search Miso")
        finally:
            await runner.aclose()

    assert err.getvalue() == ""
    reply, found, *rest = out.getvalue().splitlines()
    assert reply == "Miso is a lovely name." and rest == []
    assert "My cat is called Miso." in found and found.endswith("[words: miso]")


class StuckWriteStore(EpisodicStore):
    """A real store whose writes block until released: L3 stuck in a write."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.release, self.entered = threading.Event(), threading.Event()

    def upsert(self, *args, **kwargs):
        self.entered.set()
        self.release.wait(timeout=60)
        return super().upsert(*args, **kwargs)


async def test_searches_while_l3_is_stuck_share_one_write_and_find_the_turn_once_it_lands(
        settings, embeddings, tmp_path, monkeypatch):
    """Each search writes the waiting turns first, for half its time: with L3 stuck, the searches
    meanwhile wait on one write (none piles up behind it), and still answer; once L3 takes the
    write, the turn is found."""
    store = StuckWriteStore.embedded(tmp_path / "chroma", embeddings)
    with FakeOpenAI() as fake:
        tools = settings.tools.model_copy(update={"timeout": 4.0})
        runner = make_runner(with_model(settings, fake).model_copy(update={"tools": tools}), embeddings,
                             episodic=store)
        archive = runner.services.memory._archiver
        flushes = 0
        flush = archive.flush

        async def counted() -> int:
            nonlocal flushes
            flushes += 1
            return await flush()

        monkeypatch.setattr(archive, "flush", counted)
        out, err = io.StringIO(), io.StringIO()
        session = ChatSession(runner, "stuck-chat", "erin", interactive=False, out=out, err=err)
        try:
            fake.reply("Miso is a lovely name.")
            await session.handle("My cat is called Miso.")
            assert await asyncio.to_thread(store.entered.wait, 30)  # the archiver's write is stuck
            before = flushes
            await session.handle("/search Miso")
            await session.handle("/search Miso")
            assert flushes == before + 1  # the second search waited on the first one's write
            with pytest.raises(ValueError, match="after"):  # refused before any write or wait
                await runner.services.memory.scope("stuck-chat", "erin").found("Miso", after="last week")
            assert flushes == before + 1
            store.release.set()
            await session.handle("/search Miso")
        finally:
            store.release.set()
            await runner.aclose()

    reply, *searches = out.getvalue().splitlines()
    assert reply == "Miso is a lovely name." and err.getvalue() == ""
    assert "Miso" not in searches[0] and "Miso" not in searches[1]
    assert "My cat is called Miso." in searches[-1]


async def test_a_line_that_shows_nothing_is_no_message(settings, embeddings):
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        out, err = io.StringIO(), io.StringIO()
        session = ChatSession(runner, "blank-chat", "bob", interactive=False, out=out, err=err)
        try:
            for line in ("", " \t", "\u200b", "\ufeff", "\u200d \u2060\u200c"):
                assert await session.handle(line) is True
        finally:
            await runner.aclose()

    assert fake.requests == [] and out.getvalue() == err.getvalue() == "" and session.failures == 0


async def test_a_failing_command_prints_one_line_and_the_session_goes_on(settings, embeddings, closed_port):
    runner = make_runner(letta_down(settings, closed_port), embeddings)
    out, err = io.StringIO(), io.StringIO()
    session = ChatSession(runner, "cmd-chat", "bob", interactive=False, out=out, err=err)
    try:
        assert await session.handle("/facts") is True
        assert await session.handle("/why") is True
        assert await session.handle("/quit") is False
    finally:
        await runner.aclose()

    assert err.getvalue() == "goat: /facts failed: ConnectError: All connection attempts failed\n"
    assert out.getvalue() == "No turn yet in this chat: /why explains the last answer.\n"
    assert session.failures == 1


async def test_reset_empties_l2_but_turn_numbers_go_on(settings, embeddings):
    memory = Memory(settings, embeddings=embeddings)
    try:
        message = {"role": "user", "content": "hi", "timestamp": 1.0}
        assert await memory.save_turn("reset-chat", 1, [message])
        assert await memory.save_turn("reset-chat", 2, [message])
        await memory.start_afresh("reset-chat")
        assert (await memory.working("reset-chat", 10))[:2] == (2, [])
        assert not await memory.save_turn("reset-chat", 2, [{**message, "content": "other"}])  # number taken
        assert await memory.save_turn("reset-chat", 3, [message])
        assert (await memory.working("reset-chat", 10))[:2] == (3, [{**message, "tokens": 1}])  # "hi": one token
    finally:
        await memory.aclose()


@contextmanager
def chat_waiting_on_a_pipe(tmp_path: Path, ctrl_c_ignored: bool = False) -> Iterator[subprocess.Popen]:
    """`goat chat` reading a pipe held open, once it answered the first line: it waits for the next.
    ``ctrl_c_ignored``: started as a shell starts a script's background job, SIGINT ignored."""
    ignoring_ctrl_c = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"] if ctrl_c_ignored else []
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        fake.reply("pong")
        env = goat_env(tmp_path / "data", GOAT_MODEL="fake-model", OPENAI_API_KEY=OPENAI_KEY,
                       OPENAI_BASE_URL=fake.base_url)
        process = subprocess.Popen([*ignoring_ctrl_c, str(GOAT), "chat", "--chat", CHAT], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path, text=True)
        try:
            process.stdin.write("ping\n")
            process.stdin.flush()
            assert process.stdout.readline() == "pong\n"
            yield process
        finally:
            process.kill()
            process.communicate()


def test_ctrl_c_with_a_pipe_for_input_ends_the_session_cleanly(tmp_path):
    """A read of standard input still waiting when Ctrl-C comes must not abort the interpreter's
    shutdown ("Fatal Python error: _enter_buffered_busy": a daemon thread inside sys.stdin)."""
    with chat_waiting_on_a_pipe(tmp_path) as process:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(HANG_GUARD)  # standard input stays open: no end of file ends it
        errors = process.stderr.read()
    assert returncode == 130, errors
    assert "Fatal Python error" not in errors and "Traceback" not in errors


def test_sigterm_ends_a_chat_that_ignores_ctrl_c(tmp_path):
    """A shell starts a script's background jobs with Ctrl-C ignored: SIGTERM, which stops the
    CLI's commands as Ctrl-C does, must still end the chat and stop what it started."""
    with chat_waiting_on_a_pipe(tmp_path, ctrl_c_ignored=True) as process:
        process.terminate()
        returncode = process.wait(HANG_GUARD)
        errors = process.stderr.read()
    assert returncode == 130, errors
    assert "Traceback" not in errors
    assert servers_left(tmp_path / "data") == []


def test_piped_lines_are_read_whole_and_bytes_that_are_not_utf8_become_replacement_characters():
    long_line = "é" * 40_000  # 80 000 bytes: two reads, one of them ending inside a character
    reading, writing = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(writing, b"first\r\n\xffbad\n\n" + long_line.encode()
                                                       + b"\nlast without its newline"), os.close(writing)))
    writer.start()
    lines = PipedLines(reading)
    try:
        assert [lines.next() for _ in range(6)] == [
            "first", "\ufffdbad", "", long_line, "last without its newline", None]
        assert lines.next() is None
    finally:
        writer.join()
        os.close(reading)


def threads_taking_sigint(pid: int) -> list[int]:
    """The process's threads other than its main one that do not block SIGINT: any of them may
    be the one the kernel hands a Ctrl-C meant for the whole process."""
    taking = []
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        fields = dict(line.split(":\t", 1) for line in (task / "status").read_text().splitlines() if ":\t" in line)
        if int(task.name) != pid and not int(fields["SigBlk"], 16) & (1 << (signal.SIGINT - 1)):
            taking.append(int(task.name))
    return taking


def asleep_with_nothing_due(pid: int) -> bool:
    """The process's main thread waits in epoll_wait(2) with no timeout: its event loop has
    nothing scheduled and sleeps until a file descriptor it watches wakes it."""
    call, *arguments = Path(f"/proc/{pid}/syscall").read_text().split()
    return call in (SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT) and int(arguments[3], 16) in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)


def send_to_thread(pid: int, thread_id: int, signum: int) -> None:
    """tgkill(2): a signal for one thread of a process, as the kernel may route a process's own."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL, pid, thread_id, signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


def test_ctrl_c_caught_by_another_thread_than_the_main_one_still_ends_the_session(tmp_path):
    """Python runs signal handlers in the main thread alone; with the event loop asleep there
    waiting for input, a Ctrl-C the kernel gave to another thread (the input reader, a pool
    thread) must still wake it, not wait for the next line."""
    with chat_waiting_on_a_pipe(tmp_path) as process:
        wait_for(lambda: asleep_with_nothing_due(process.pid), "the chat's event loop to fall asleep")
        send_to_thread(process.pid, threads_taking_sigint(process.pid)[0], signal.SIGINT)
        returncode = process.wait(HANG_GUARD)
        errors = process.stderr.read()
    assert returncode == 130, errors
    assert "Traceback" not in errors


async def test_goat_chat_has_the_bots_memory_commands_and_answers_them_alike(settings, embeddings):
    runner = make_runner(settings, embeddings)
    out, err = io.StringIO(), io.StringIO()
    session = ChatSession(runner, "cmd-chat", "ana", interactive=False, out=out, err=err)
    await runner.services.memory.archive(
        [Exchange("cmd-chat", "ana", 1, 1_700_000_000.0, "Our dog Biscuit hates the vacuum cleaner.", "Poor Biscuit.")],
        1_700_000_000.0)
    try:
        assert await measurement_hooks(runner.services.memory).settle() == 0
        for line in ("/remember dog=Biscuit", "/remember dog", "/facts", "/search", "/search Biscuit vacuum",
                     "/search the stock market in Tokyo"):
            assert await session.handle(line) is True
    finally:
        await runner.aclose()

    assert err.getvalue() == "" and session.failures == 0
    noted, usage, facts, search_usage, found, nothing = out.getvalue().splitlines()
    assert (noted, usage, facts, search_usage) == ("Noted: dog = Biscuit", "Usage: /remember key=value, e.g. /remember city=Porto",
                                                   "dog: Biscuit", "Usage: /search what to look for")
    assert "Our dog Biscuit hates the vacuum cleaner." in found and found.endswith("[words: biscuit, vacuum]")
    assert nothing == "Nothing in memory stands out for that."
