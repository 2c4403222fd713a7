"""Bad input at every entry point: `goat`'s arguments, `goat import` files, settings files and
variables, Telegram updates, the model's tool-call arguments and MCP tool arguments. Each gets
the same kinds of bad: empty, 1 MB, not valid UTF-8 (or lone surrogates), NUL bytes, and JSON
nested 100 000 levels deep, where the entry point reads JSON.

Expected everywhere: refused with a clear error naming what was wrong, nothing half-written
(the layers' counts are compared before and after), and the process alive: the next good input
works. Input that is merely unusual (a NUL byte, bytes that are not UTF-8 in free text) is taken,
the bad bytes as U+FFFD, except in a transcript to import, where they are refused (a bulk load
must not change what it stores unseen). Real Redis, Chroma and MiniLM; the model and the Bot API are the
loopback fakes. One known gap is ``xfail(strict=True)``: streamed, LangChain completes cut-off
tool-call JSON before GOAT sees it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port
from memory.facade import measurement_hooks
from bench.support.fakes import FakeOpenAI
from bench.support.fakes.telegram_server import FakeTelegram
from pydantic import SecretStr
from test_chat import goat_chat
from test_cli import GOAT, goat, goat_env
from test_graph import NOW, make_runner, with_model
from test_telegram import ALICE, TOKEN, bot_settings, echo, turn_done, until
from test_telegram import running as running_bot

from graph.settings import Settings, load_settings
from memory.stores.curated import CURATED_TAG
from memory.encoders.embeddings import LocalEmbeddings
from memory.prompt.blocks import one_line
from memory.settings import SettingsError
from memory.turns import MAX_MESSAGE_CHARS, ImportedTurn
from nodes.services import UnreadableAnswer

pytestmark = pytest.mark.slow

BIG = "word " * 199_999 + "word."  # 1 000 000 characters, no space at either end
DEEP = "[" * 100_000 + "]" * 100_000  # JSON nested 100 000 levels deep
LONE = "caf\udce9 au lait \ud83d"  # lone surrogates, as a broken client sends them
LONE_JSON = json.dumps(LONE)  # the same as JSON escapes: "caf\udce9 au lait \ud83d"
CLEANED = "caf\ufffd au lait \ufffd"
NUL = "gate\x00code 4417"
INVISIBLE = "\ufeff\u200b \u200d\u2060"  # a byte-order mark, zero-width characters: nothing to see
CHAT, USER = "bad-chat", "bad-user"


def cli_ok(result: subprocess.CompletedProcess[str]) -> str:
    """The command's output, asserting it ended well and without a traceback."""
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def cli_refused(result: subprocess.CompletedProcess[str], named: str) -> None:
    """A usage error: exit 2, one line on stderr naming the problem, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert named in result.stderr.splitlines()[-1], result.stderr[-3000:]


async def layers(memory: Any, chat_id: str = CHAT, user_id: str = USER) -> dict[str, int]:
    """What each layer holds for the chat and user (after writing what the outbox holds)."""
    await measurement_hooks(memory).settle()
    counts = dict((await memory.admin.health(chat_id, user_id)).layers)
    counts["l2_messages"] = len((await memory.working(chat_id, 100_000))[1])
    return counts


# ---- the model's tool-call arguments -----------------------------------------------------------------


@dataclass(frozen=True)
class ToolInput:
    id: str
    arguments: str  # as the model wrote them: the raw JSON text of a store_memory call
    refused: str | None  # what the JSON error handed back to the model says; None: the note is stored
    stored: str | None = None  # the note as kept


TOOL_INPUTS = [
    ToolInput("empty", "", "Field required"),  # no arguments at all: content is missing
    ToolInput("malformed", '{"content": "the gate code is 44', "not valid JSON"),  # cut off mid-string
    ToolInput("not-an-object", '["the gate code", 4417]', "not a JSON object but a list"),
    ToolInput("1mb", json.dumps({"content": BIG}), "content has 1000000 characters; a curated memory holds at most"),
    ToolInput("deep", '{"content": ' + DEEP + "}", "nested too deeply to read"),
    ToolInput("nul", json.dumps({"content": NUL}), None, NUL),
    ToolInput("lone-surrogates", '{"content": ' + LONE_JSON + "}", None, CLEANED),
]


def tool_cases() -> Iterator[Any]:
    for case in TOOL_INPUTS:
        for streaming in (False, True):
            marks = []
            if streaming and case.id == "malformed":
                marks = [pytest.mark.xfail(strict=True, reason=(
                    "streamed, LangChain's partial-JSON parser completes the cut-off arguments and the tool "
                    "runs with them; the raw tool-call chunks are gone by the time the llm node reads the answer"))]
            if streaming and case.id == "1mb":
                marks = [pytest.mark.skip(reason=(
                    "streamed in large pieces, LangChain re-parses tool-call fragments with a quadratic "
                    "partial-JSON parser on the event loop (200 KB: 35 s; 1 MB: over 5 min)"))]
            yield pytest.param(case, streaming, id=f"{case.id}-{'stream' if streaming else 'invoke'}", marks=marks)


@pytest.mark.parametrize("case, streaming", tool_cases())
async def test_bad_tool_arguments_from_the_model_are_a_tool_error_and_the_turn_completes(
    case: ToolInput, streaming: bool, settings: Settings, embeddings: LocalEmbeddings
) -> None:
    with FakeOpenAI(default_reply="I could not keep that note.") as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        memory = runner.services.memory

        async def turn(message: str) -> dict[str, Any]:
            return await runner.run(CHAT, message, user_id=USER, now=NOW.timestamp(),
                                    on_token=(lambda _: None) if streaming else None)  # fmt: skip

        try:
            before = await layers(memory)
            fake.reply_tool_calls([{"name": "store_memory", "arguments": case.arguments}])
            if case.id == "not-an-object" and not streaming:
                # Unstreamed, the client itself cannot build a message of it: the turn fails, clearly.
                with pytest.raises(UnreadableAnswer, match=r"could not be read \(tool_calls\.0\.args: .*dictionary"):
                    await turn("Keep a note of the gate code.")
                assert await layers(memory) == before
            else:
                state = await turn("Keep a note of the gate code.")
                [result] = state["tool_results"]
                after = await layers(memory)
                notes = [r for r in [result] if result["ok"]]
                assert after == {**before, "l2_turns": 1, "words_indexed_turns": 1, "l2_messages": 2,
                                 "l3_entries": 1 + len(notes)}  # fmt: skip
                assert state["reply"] == "I could not keep that note."
                _, [_, saved], _ = await memory.working(CHAT, 10)
                assert saved["content"].startswith("called store_memory(")  # its evidence line
                if case.refused is not None:
                    assert not result["ok"] and case.refused in json.loads(result["output"])["error"]
                else:
                    assert result["ok"], result["output"]
                    store = await memory._backends.l3.episodic()
                    [note] = store.get_by_ids([CHAT], [json.loads(result["output"])["stored"]])
                    assert note["content"] == case.stored and note["metadata"]["tags"] == CURATED_TAG
            fake.reply("Back to normal.")
            assert (await turn("What is on today?"))["reply"] == "Back to normal."  # the next turn works
        finally:
            await runner.aclose()


# ---- Telegram updates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, answer",
    [
        ("", "I cannot take that message: the message is empty."),
        ("   \n\t ", "I cannot take that message: the message is empty."),
        (INVISIBLE, "I cannot take that message: the message is empty."),
        (BIG, "I cannot take that message: the message has 1000000 characters; the limit is 200000."),
        (LONE, "I cannot take that message: the message holds text that is not valid Unicode (lone surrogates)."),
        (NUL, f"You said: {NUL}."),
    ],
    ids=["empty", "blank", "zero-width", "1mb", "lone-surrogates", "nul"],
)
async def test_a_bad_telegram_message_is_refused_or_taken_and_the_bot_goes_on(
    text: str, answer: str, settings: Settings, embeddings: LocalEmbeddings
) -> None:
    taken = answer.startswith("You said")
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running_bot(bot_settings(settings, fake, telegram), embeddings) as runner:
            memory = runner.services.memory
            before = await layers(memory, str(ALICE), str(ALICE))
            telegram.send(ALICE, ALICE, text)
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 1)
            await turn_done(runner, ALICE)
            after = await layers(memory, str(ALICE), str(ALICE))
            telegram.send(ALICE, ALICE, "Still there?")
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 2)
            await turn_done(runner, ALICE)
            _, working, _ = await memory.working(str(ALICE), 10)
    assert telegram.chat(ALICE) == [answer, "You said: Still there?."]
    if taken:
        assert after["l2_turns"] == before["l2_turns"] + 1 and after["l3_entries"] == before["l3_entries"] + 1
        assert working[0]["content"] == answer.removeprefix("You said: ")[:-1]  # kept as taken
    else:
        assert after == before  # nothing of it written
        assert [m["content"] for m in working] == ["Still there?", "You said: Still there?."]
    assert len(fake.requests) == 1 + taken  # a refused message never reached the model


def update_of(text: str, update_id: int) -> dict[str, Any]:
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 0, "text": text,
                                                "chat": {"id": ALICE, "type": "private"},
                                                "from": {"id": ALICE, "is_bot": False, "first_name": "a"}}}


async def test_the_webhook_refuses_bodies_that_are_not_updates_and_answers_the_next_one(
    settings: Settings, embeddings: LocalEmbeddings
) -> None:
    port, secret = free_port(), "s3cret-hook"
    refused = [  # (body, what the 400 says)
        (b"", "not JSON"),
        (b"x" * 1_000_000, "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b'{"update_id": 1, "message": ' + DEEP.encode() + b"}", "nested too deeply"),
        (b"[1, 2]", "not a Telegram update"),
        (b'{"update_id": "1\u0000"}', "not a Telegram update"),
    ]
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        configured = bot_settings(settings, fake, telegram)
        configured = configured.model_copy(update={"telegram": configured.telegram.model_copy(
            update={"webhook_secret": SecretStr(secret)})})
        async with running_bot(configured, embeddings, webhook="https://bot.example/hook", port=port) as runner:
            before = await layers(runner.services.memory, str(ALICE), str(ALICE))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         headers={"X-Telegram-Bot-Api-Secret-Token": secret}) as client:
                for body, says in refused:
                    answer = await client.post("/hook", content=body, headers={"Content-Type": "application/json"})
                    assert (answer.status_code, says in answer.text) == (400, True), (body[:40], answer.text)
                assert await layers(runner.services.memory, str(ALICE), str(ALICE)) == before
                taken = [(BIG, "I cannot take that message: the message has 1000000 characters; the limit is 200000."),
                         (LONE, "I cannot take that message: the message holds text that is not valid Unicode "
                                "(lone surrogates)."), (NUL, f"You said: {NUL}.")]
                for n, (text, _) in enumerate(taken, start=1):
                    body = json.dumps(update_of(text, n)).encode()  # lone surrogates as JSON escapes
                    assert (await client.post("/hook", content=body)).status_code == 200
                    await until(telegram, lambda n=n: len(telegram.chat(ALICE)) == n)
            await turn_done(runner, ALICE)
    assert telegram.chat(ALICE) == [answer for _, answer in taken]


# ---- MCP tool arguments -----------------------------------------------------------------------------


@dataclass
class McpWire:
    """`goat mcp` over stdio, spoken byte by byte: what a client may send, not what the SDK's
    client would. Responses are read in order; the read blocks (the test's timeout bounds it)."""

    process: subprocess.Popen
    ids: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def send(self, raw: bytes) -> None:
        self.process.stdin.write(raw + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: bytes) -> int:
        request_id = next(self.ids)
        self.send(b'{"jsonrpc": "2.0", "id": %d, "method": "%s", "params": %s}' % (request_id, method.encode(), params))
        return request_id

    def response(self, request_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The response to ``request_id``, and any other message that came first."""
        others = []
        while True:
            line = self.process.stdout.readline()
            assert line, f"goat mcp exited ({self.process.poll()})"
            message = json.loads(line)
            if message.get("id") == request_id:
                return message, others
            others.append(message)

    def call(self, tool: str, arguments: bytes) -> dict[str, Any]:
        message, others = self.response(self.request("tools/call", b'{"name": "%s", "arguments": %s}' % (
            tool.encode(), arguments)))  # fmt: skip
        assert others == []
        return message

    def snapshot(self) -> dict[str, int]:
        return self.call("memory_snapshot", b"{}")["result"]["structuredContent"]["layers"]


@pytest.fixture(scope="module")
def mcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpWire]:
    root = tmp_path_factory.mktemp("mcp-bad-input")
    with (root / "stderr").open("wb") as errors:
        process = subprocess.Popen([str(GOAT), "mcp", "--chat", CHAT, "--user", USER], env=goat_env(root / "data"),
                                   cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
    wire = McpWire(process)
    try:
        init = b'{"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}'
        assert "result" in wire.response(wire.request("initialize", init))[0]
        wire.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        yield wire
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "Traceback" not in (root / "stderr").read_text("utf-8", "replace")


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


MCP_REFUSED = [  # (tool, arguments as sent, what the tool error says)
    ("recall", b'{"message": ""}', "the message is empty"),
    ("recall", b'{"message": ' + js(BIG) + b"}", "the message has 1000000 characters; the limit is 200000"),
    ("recall", b"{}", "Field required"),
    ("recall", b'{"message": ["a", "list"]}', "valid string"),
    ("archive_turn", b'{"user": "", "assistant": " "}', "user is empty"),
    ("archive_turn", b'{"user": "Thanks!", "assistant": " \\n\\t"}', "assistant is empty"),
    ("archive_turn", b'{"user": "\\u3000", "assistant": "You are welcome."}', "user is empty"),
    ("archive_turn", b'{"user": "Thanks!", "assistant": ' + js(INVISIBLE) + b"}", "assistant is empty"),
    ("recall", b'{"message": ' + js(INVISIBLE) + b"}", "the message is empty"),
    ("archive_turn", b'{"user": ' + js(BIG) + b', "assistant": "ok"}', "user has 1000000 characters; the limit is"),
    ("archive_turn", b'{"user": "a", "assistant": "b", "timestamp": "\\u0000"}', "timestamp"),
    ("store_memory", b'{"content": ""}', "content must be a non-empty string"),
    ("store_memory", b'{"content": ' + js(BIG) + b"}", "a curated memory holds at most 10000"),
    ("remember_fact", b'{"key": "", "value": ""}', "empty"),
    ("remember_fact", b'{"key": "essay", "value": ' + js(BIG) + b"}", "refused"),
    ("search_memory", b'{"query": ""}', "query is empty"),
    ("search_memory", b'{"query": "gate", "after": "a\\u0000b"}', "not an ISO-8601 date"),
    ("forget_fact", b'{"key": "\\u0000"}', "no fact is saved"),
]


@pytest.mark.parametrize("tool, arguments, error", MCP_REFUSED,
                         ids=[f"{t}-{n}" for n, (t, _, _) in enumerate(MCP_REFUSED)])
def test_bad_mcp_tool_arguments_are_a_tool_error_and_nothing_is_written(
    mcp: McpWire, tool: str, arguments: bytes, error: str
) -> None:
    before = mcp.snapshot()
    answer = mcp.call(tool, arguments)
    assert answer["result"]["isError"] is True, answer
    assert error in answer["result"]["content"][0]["text"], answer["result"]["content"][0]["text"][:500]
    assert mcp.snapshot() == before


@pytest.mark.parametrize(
    "tool, arguments, kept",
    [
        ("archive_turn", b'{"user": ' + js(NUL) + b', "assistant": "noted"}', NUL),
        ("archive_turn", b'{"user": "caf\xe9 au lait \xff", "assistant": "noted"}', "caf\ufffd au lait \ufffd"),
    ],
    ids=["nul", "not-utf8"],
)
def test_unusual_but_readable_mcp_arguments_are_taken(mcp: McpWire, tool: str, arguments: bytes, kept: str) -> None:
    before = mcp.snapshot()
    answer = mcp.call(tool, arguments)
    assert answer["result"]["isError"] is False and answer["result"]["structuredContent"]["archived"], answer
    # A period is a selection of its own: its closest entries come back whether or not they stand out.
    recalled = mcp.call("search_memory", b'{"query": ' + js(kept) + b', "after": "2000-01-01"}')
    recalled = recalled["result"]["structuredContent"]
    assert any(one_line(kept) in line for line in recalled["results"]), recalled  # kept, shown on one line
    assert mcp.snapshot() == {**before, "l2_turns": before["l2_turns"] + 1, "l3_entries": before["l3_entries"] + 1,
                              "words_indexed_turns": before["words_indexed_turns"] + 1}  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"\xff\xfe\x00 not even text",
        b'{"jsonrpc": "2.0", "id": 999001, "method": "tools/call", "params": {"name": "archive_turn", '
        b'"arguments": {"user": ' + LONE_JSON.encode() + b', "assistant": "ok"}}}',
        b'{"jsonrpc": "2.0", "id": 999002, "method": "tools/call", "params": {"name": "recall", '
        b'"arguments": {"message": ' + DEEP.encode() + b"}}}",
        b'{"jsonrpc": "2.0", "id": 999003, "method": "tools/call", "params": {"name": "recall", "arguments": [1, 2]}}',
    ],
    ids=["empty-line", "malformed", "binary", "lone-surrogates", "deep", "arguments-not-an-object"],
)
def test_a_message_the_mcp_transport_cannot_read_changes_nothing_and_the_server_answers_on(
    mcp: McpWire, raw: bytes
) -> None:
    before = mcp.snapshot()
    mcp.send(raw)
    # The SDK's transport refuses what is not JSON-RPC it can read (lone surrogate escapes, nesting past
    # its parser's limit) without an answer, or answers with an error: either way nothing runs.
    answer, first = mcp.response(mcp.request("tools/call", b'{"name": "memory_snapshot", "arguments": {}}'))
    assert all("error" in message or message.get("result", {}).get("isError") for message in first), first
    assert answer["result"]["structuredContent"]["layers"] == before


# ---- goat chat: messages from a pipe ------------------------------------------------------------------


def test_goat_chat_refuses_what_it_cannot_take_line_by_line_and_answers_the_rest(tmp_path: Path) -> None:
    with FakeOpenAI(responder=echo) as fake:
        env = goat_env(tmp_path / "data", GOAT_MODEL="fake-model", OPENAI_API_KEY="sk-fake-key-123456",
                       OPENAI_BASE_URL=fake.base_url)
        lines = ["", BIG, NUL, "caf\udce9 au lait \udcff", "Still there?"]  # the last but one: bytes E9, FF
        result = goat_chat(lines, "--chat", CHAT, env=env, cwd=tmp_path)
        sent = [r["messages"][-1]["content"] for r in fake.requests]
    assert result.returncode == 1  # one line failed
    assert result.stderr.splitlines() == [
        "goat: the turn failed: the message has 1000000 characters; the limit is 200000"]
    assert sent == [NUL, "caf\ufffd au lait \ufffd", "Still there?"]  # bytes that are not UTF-8 as U+FFFD
    assert result.stdout.splitlines() == [f"You said: {m}." for m in sent]


# ---- `goat` arguments ---------------------------------------------------------------------------------


CLI_REFUSED = [  # (argv, what stderr's last line names); files are made in the test's folder
    pytest.param([], "the following arguments are required: command", id="no-command"),
    pytest.param(["inspect", "--chat", "", "hello"], "chat_id must be a non-empty string", id="empty-chat"),
    pytest.param(["inspect", "--chat", CHAT, ""], "the message is empty", id="empty-message"),
    pytest.param(["inspect", "--chat", CHAT, " \t "], "the message is empty", id="blank-message"),
    pytest.param(["inspect", "--chat", CHAT, INVISIBLE], "the message is empty", id="zero-width-message"),
    pytest.param(["inspect", "--chat", "\udcff\udcfe", "hello"], "chat_id holds text that is not valid Unicode",
                 id="chat-not-utf8"),
    pytest.param(["inspect", "--chat", CHAT, "--user", "u\udcff", "hello"], "user_id holds text that is not valid",
                 id="user-not-utf8"),
    pytest.param(["inspect", "--chat", CHAT, "--queries", "big.txt"], "the message has 1000000 characters",
                 id="1mb-query-line"),
    pytest.param(["inspect", "--chat", CHAT, "--set", "=1", "hello"], "expected KEY=VALUE", id="override-empty-key"),
    pytest.param(["inspect", "--chat", CHAT, "--set", "prefetch.timeout=-1", "hello"], "prefetch.timeout",
                 id="override-bad-value"),
    pytest.param(["inspect", "--chat", CHAT, "--set", "prefetch.timeout=" + "9" * 100_000, "hello"], "prefetch.timeout",
                 id="override-100k-digits"),
    pytest.param(["inspect", "--chat", CHAT, "--set", "prefetch.timeout=" + "[" * 60_000 + "]" * 60_000, "hello"],
                 "prefetch.timeout", id="override-deep-json"),
    pytest.param(["stats", "--last", "0"], "expected a positive whole number", id="last-zero"),
    pytest.param(["stats", "--last", ""], "expected a positive whole number", id="last-empty"),
    pytest.param(["stats", "--last", "9" * 30], "expected a positive whole number", id="last-huge"),
    pytest.param(["stats", "--last", "9" * 100_000], "expected a positive whole number", id="last-100k-digits"),
    pytest.param(["mcp", "--chat", CHAT, "--http", "--port", "70000"], "port", id="port-out-of-range"),
    pytest.param(["import", ""], "a folder, not a file", id="import-empty-path"),
    pytest.param(["import", "/"], "/: a folder, not a file, and it holds no result.json or conversations.json",
                 id="import-a-folder"),
    pytest.param(["import", "/nonexistent/export.json"], "no such file: /nonexistent/export.json", id="import-missing"),
]


def test_a_queries_file_that_is_not_utf8_is_read_as_import_and_chat_read(tmp_path: Path) -> None:
    (tmp_path / "not-utf8.txt").write_bytes(b"caf\xe9 au lait \xff\n")
    result = goat("inspect", "--chat", CHAT, "--json", "--queries", "not-utf8.txt",
                  env=goat_env(tmp_path / "data"), cwd=tmp_path)
    [report] = [json.loads(line) for line in cli_ok(result).splitlines()]
    assert report["turn"] == 1  # one message, its bad bytes as U+FFFD


@pytest.mark.parametrize("argv, named", CLI_REFUSED)
def test_bad_arguments_are_refused_naming_the_problem(argv: list[str], named: str, tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text(BIG + "\n", encoding="utf-8")
    (tmp_path / "not-utf8.txt").write_bytes(b"caf\xe9 au lait \xff\n")
    env = goat_env(tmp_path / "data", GOAT_MCP_TOKEN="mcp-token-0123456789")

    cli_refused(goat(*argv, env=env, cwd=tmp_path), named)
    assert not (tmp_path / "data" / "logs").exists()  # no turn ran


def test_unusual_but_readable_arguments_are_taken(tmp_path: Path) -> None:
    (tmp_path / "nul.txt").write_text(NUL + "\n", encoding="utf-8")
    env = goat_env(tmp_path / "data")

    [from_argv] = [json.loads(line) for line in cli_ok(goat(
        "inspect", "--chat", CHAT, "--json", "caf\udce9 au lait \udcff", env=env, cwd=tmp_path)).splitlines()]
    [from_file] = [json.loads(line) for line in cli_ok(goat(
        "inspect", "--chat", CHAT, "--queries", "nul.txt", env=env, cwd=tmp_path)).splitlines()]
    assert from_argv["message"] == "caf\ufffd au lait \ufffd" and from_file["message"] == NUL
    assert from_argv["turn"] == from_file["turn"] == 1  # inspecting wrote nothing


# ---- `goat import` files -------------------------------------------------------------------------------


def line(**fields: Any) -> bytes:
    record = {"chat_id": CHAT, "user_id": USER, "role": "user", "content": "The gate code is 4417.",
              "timestamp": 1_700_000_000, **fields}  # fmt: skip
    return json.dumps(record).encode() + b"\n"


GOOD = line() + line(role="assistant", content="Noted: 4417.", timestamp=1_700_000_010)
IMPORT_REFUSED = [  # (the file after two good lines, what the error names)
    pytest.param(line(content=BIG), "line 3: content has 1000000 characters; the limit is 200000", id="1mb-content"),
    pytest.param(b"x" * 1_000_000 + b"\n", "line 3: not valid JSON (Expecting value at column 1; a JSON Lines file holds one object per line)", id="1mb-garbage"),
    pytest.param(b'{"chat_id": "c\xff", "role": "user", "content": "hi", "timestamp": 1}\n',
                 f"line 3: not UTF-8: the byte 0xff at byte offset {len(GOOD) + 14} of the file", id="chat-not-utf8"),
    pytest.param(line(content="caf\xe9").replace(b"caf\\u00e9", b"caf\xe9 \xff"),
                 f"line 3: not UTF-8: the byte 0xe9 at byte offset {len(GOOD) + 78} of the file",
                 id="content-not-utf8"),
    pytest.param(line(chat_id="c\ud800"), "line 3: chat_id holds text that is not valid Unicode",
                 id="chat-lone-surrogate"),
    pytest.param(line(user_id="u\udce9"), "line 3: user_id holds text that is not valid Unicode",
                 id="user-lone-surrogate"),
    pytest.param(line(content=LONE), "line 3: content holds text that is not valid Unicode (lone surrogates)",
                 id="content-lone-surrogate"),
    pytest.param(b'{"chat_id": "c", "role": "user", "content": "a\x00b", "timestamp": 1}\n',
                 "line 3: not valid JSON (Invalid control character at column 47;", id="raw-nul"),
    pytest.param(line(content=INVISIBLE), "line 3: content is empty", id="zero-width-content"),
    pytest.param(DEEP.encode() + b"\n", f"line 3: JSON nested deeper than 64 levels at byte {len(GOOD) + 64}",
                 id="deep-line"),
    pytest.param(line(content="x")[:-3] + b", \"extra\": " + DEEP.encode() + b"}\n",
                 "line 3: JSON nested deeper than 64 levels at byte", id="deep-field"),
    pytest.param(b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"\n", "line 3: JSON nested deeper than 64 levels",
                 id="deep-object"),
    pytest.param(b'{"chat_id": "c", "role": "user", "content": "hi", "timestamp": NaN}\n',
                 "line 3: timestamp nan is not a time", id="nan-time"),
    pytest.param(line(timestamp=1e300), "line 3: timestamp 1e+300 is not a time", id="huge-time"),
    pytest.param(line(role="x" * 1_000_000), "line 3: role must be 'user' or 'assistant'", id="1mb-role"),
]


@pytest.mark.parametrize("bad, named", IMPORT_REFUSED)
def test_a_bad_transcript_line_stops_the_import_before_anything_is_written(
    bad: bytes, named: str, tmp_path: Path
) -> None:
    (tmp_path / "bad.jsonl").write_bytes(GOOD + bad + line(content="After the bad line.", timestamp=1_700_000_100))

    result = goat("import", "bad.jsonl", env=goat_env(tmp_path / "data"), cwd=tmp_path)

    cli_refused(result, named)
    assert len(result.stderr.splitlines()[-1]) < 300  # names the line, does not echo it
    assert not (tmp_path / "data").exists()  # rejected before any backend started


@pytest.mark.parametrize(
    "data, summary, kept",
    [
        (b"", "0 messages, 0 turns: 0 imported, 0 already there", None),
        (b"\n  \n\n", "0 messages, 0 turns: 0 imported, 0 already there", None),
        (line(content=NUL), "1 messages, 1 turns: 1 imported", NUL),
    ],
    ids=["empty-file", "blank-lines", "content-nul"],
)
def test_unusual_but_readable_transcripts_are_imported(data: bytes, summary: str, kept: str | None,
                                                         tmp_path: Path) -> None:
    (tmp_path / "odd.jsonl").write_bytes(data)
    env = goat_env(tmp_path / "data")

    assert cli_ok(goat("import", "odd.jsonl", env=env, cwd=tmp_path)).startswith(summary)
    if kept is not None:
        exported = json.loads(cli_ok(goat("export", "--user", USER, env=env, cwd=tmp_path)))
        [chat] = exported["chats"]
        assert [m["content"] for m in chat["l2"]] == [kept] and chat["l3"][0]["content"] == f"user: {kept}"


# ---- settings: the file and the environment -----------------------------------------------------------


SETTINGS_REFUSED = [  # (goat.toml as bytes or None, variables, what the error names)
    pytest.param(b'[identity]\nbase_prompt = "caf\xe9"\n', {}, "goat.toml is not valid TOML", id="file-not-utf8"),
    pytest.param(b'[identity]\nbase_prompt = "a\x00b"\n', {}, "goat.toml is not valid TOML", id="file-raw-nul"),
    pytest.param(b'[identity]\nbase_prompt = "caf\\udce9"\n', {}, "goat.toml is not valid TOML",
                 id="file-lone-surrogate"),
    pytest.param(b"x" * 1_000_000 + b"\n", {}, "goat.toml is not valid TOML", id="file-1mb-garbage"),
    pytest.param(b"[prefetch]\ntimeout = " + DEEP.encode() + b"\n", {}, "goat.toml", id="file-deep-array"),
    pytest.param(b"x = " + b"{a = " * 100_000 + b"1" + b"}" * 100_000 + b"\n", {}, "goat.toml",
                 id="file-deep-inline-table"),
    pytest.param(b"[" + b".".join([b"a"] * 100_000) + b"]\n", {}, "goat.toml", id="file-deep-table"),
    pytest.param(None, {"GOAT_PREFETCH__TIMEOUT": "9" * 100_000}, "prefetch.timeout (from GOAT_PREFETCH__TIMEOUT)",
                 id="env-100k-digits"),
    pytest.param(None, {"GOAT_PREFETCH__TIMEOUT": "1\x7f"}, "prefetch.timeout (from GOAT_PREFETCH__TIMEOUT)",
                 id="env-control-character"),
    pytest.param(None, {"GOAT_PREFETCH__TIMEOUT__X": "1"}, "prefetch.timeout.x", id="env-too-deep-name"),
    pytest.param(None, {"GOAT_ALLOWED_USERS": "1,,x"}, "telegram.allowed_users.1 (from GOAT_ALLOWED_USERS)",
                 id="env-user-ids"),
]


@pytest.mark.parametrize("toml, variables, named", SETTINGS_REFUSED)
def test_bad_settings_stop_the_start_naming_the_setting(
    toml: bytes | None, variables: dict[str, str], named: str, tmp_path: Path
) -> None:
    if toml is not None:
        (tmp_path / "goat.toml").write_bytes(toml)

    result = goat("stats", env=goat_env(tmp_path / "data", **variables), cwd=tmp_path)

    cli_refused(result, named)
    assert result.stdout == "" and len(result.stderr.splitlines()[-1]) < 300  # names, does not echo
    assert not (tmp_path / "data").exists()


def test_a_setting_that_is_not_valid_unicode_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"identity\.base_prompt \(from GOAT_IDENTITY__BASE_PROMPT\)"):
        load_settings(environ={"GOAT_DATA_DIR": str(tmp_path), "GOAT_IDENTITY__BASE_PROMPT": "caf\udce9"})


@pytest.mark.parametrize(
    "toml, variables",
    [
        (b"", {}),
        (b"# " + b"x" * 1_000_000 + b"\n", {}),
        (b'[identity]\nbase_prompt = "a\\u0000b"\n', {}),
        (None, {"GOAT_PREFETCH__TIMEOUT": ""}),  # empty: not set
    ],
    ids=["empty-file", "1mb-comment", "escaped-nul", "empty-variable"],
)
def test_unusual_but_valid_settings_are_taken(toml: bytes | None, variables: dict[str, str], tmp_path: Path) -> None:
    if toml is not None:
        (tmp_path / "goat.toml").write_bytes(toml)
    assert cli_ok(goat("stats", env=goat_env(tmp_path / "data", **variables), cwd=tmp_path)).startswith("no turns")


@pytest.mark.parametrize("text, problem", [("  \u200b ", "is empty"), ("x" * (MAX_MESSAGE_CHARS + 1), "characters"),
                                           ("half a pair \ud800", "not valid Unicode")])
def test_memory_refuses_an_imported_message_no_way_in_would_take(text: str, problem: str) -> None:
    """Memory holds its own rule on messages: a caller that forgot to check (every way in checks
    first, with its own words) still cannot have one stored."""
    for role in ("user", "assistant"):
        with pytest.raises(ValueError, match=f"an imported {role} message .*{problem}"):
            ImportedTurn("key", "ana", ({"role": role, "content": text, "timestamp": 0.0},))
