"""`goat mcp`, driven by the MCP SDK's own client over stdio and streamable HTTP, against the
installed console script on embedded Redis and Chroma (the model is the loopback fake)."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import version
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from graph.json_limits import MAX_DEPTH, MAX_VALUE_BYTES, PIECE_BYTES
from graph.observability.turn_log import TurnObserver
from conftest import free_port
from graph.settings import Settings
from bench.support.fakes import FakeOpenAI
from test_chat import goat_chat
from test_cli import GOAT, goat, goat_env, ok, servers_left
from test_tools import REX_TURN

pytestmark = pytest.mark.slow

CHAT, USER = "agent-chat", "agent-user"
OTHER_CHAT, OTHER_USER = "other-chat", "other-user"
SECRET = "The vault combination is Zorblax-7781, keep it safe."
EXCHANGES = [
    ("We adopted a puppy and named him Biscuit.", "Biscuit is a lovely name for a puppy!"),
    ("My sister Ana moved to Cluj last spring.", "Cluj is a lively city."),
    ("The nightly deploy failed with error E1234 again.", "Check the database migration first."),
]
TOOLS = {"recall", "search_memory", "store_memory", "archive_turn", "list_facts", "remember_fact",
         "forget_fact", "diagnose_last_turn", "memory_snapshot", "recent_errors", "list_memories", "delete_memory"}
READ_TOOLS = {"recall", "search_memory", "list_facts", "diagnose_last_turn", "memory_snapshot", "recent_errors",
              "list_memories"}
UNRELATED = ["Remind me to call the bank on Monday.", "The quarterly numbers look better than expected.",
             "I need to renew the car insurance.", "What time does the pharmacy close?", "Our meeting moved to 3pm.",
             "I finished reading the novel last night.", "The train was late again this morning.",
             "Can you help me draft an email to my landlord?", "The printer at work is jammed.",
             "I want to learn to bake sourdough bread."]
TOKEN = "mcp-test-token-5b1e9c0a7d"


def data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return result.structured_content


@asynccontextmanager
async def stdio_session(env: dict[str, str], cwd: Path, chat: str = CHAT, user: str = USER) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=str(GOAT), args=["mcp", "--chat", chat, "--user", user], env=env, cwd=cwd)
    with (cwd / f"mcp-{chat}.stderr").open("w") as errors:
        async with stdio_client(params, errlog=errors) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


def seed_other_chat(tmp_path: Path, env: dict[str, str]) -> None:
    """Another chat of another user, holding a secret, imported before the server starts."""
    transcript = tmp_path / "other.jsonl"
    transcript.write_text("".join(
        json.dumps({"chat_id": OTHER_CHAT, "user_id": OTHER_USER, "role": role, "content": text,
                    "timestamp": "2026-10-01T09:00:00Z"}) + "\n"
        for role, text in (("user", SECRET), ("assistant", "Noted."))), encoding="utf-8")
    ok(goat("import", transcript, env=env, cwd=tmp_path))


async def test_an_agent_archives_its_turns_and_recalls_them_over_stdio(tmp_path: Path) -> None:
    env = goat_env(tmp_path / "data")
    seed_other_chat(tmp_path, env)
    async with stdio_session(env, tmp_path) as session:
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        for n, (user, assistant) in enumerate(EXCHANGES):
            when = f"2026-11-0{n + 1}T10:00:00Z"
            archived = data(await session.call_tool("archive_turn", {"user": user, "assistant": assistant,
                                                                     "timestamp": when}))
            assert archived["archived"] and archived["id"] == f"{CHAT}:turn_{n + 1:04d}"
        again = data(await session.call_tool("archive_turn", {"user": EXCHANGES[0][0], "assistant": EXCHANGES[0][1],
                                                              "timestamp": "2026-11-01T10:00:00Z"}))
        assert again["archived"] is False  # idempotent per content and time

        recalled = data(await session.call_tool("recall", {"message": "What did we call the puppy?"}))
        assert "Biscuit" in recalled["recalled"][0]["content"]
        assert recalled["recalled"][0]["time"] == "2026-11-01T10:00:00+00:00"
        assert "thematic: stands out" in recalled["recalled"][0]["why"] and recalled["tokens"]["l3"] > 0
        assert "thematic" in recalled["mechanisms"]["fired"]

        assert data(await session.call_tool("remember_fact", {"key": "dog", "value": "Biscuit"}))["saved"]
        assert data(await session.call_tool("list_facts", {})) == {"facts": {"dog": "Biscuit"}}
        refused = await session.call_tool("remember_fact", {"key": "essay", "value": "word " * 600})
        assert refused.is_error and "refused" in refused.content[0].text
        missing = await session.call_tool("forget_fact", {"key": "cat"})
        assert missing.is_error and "no fact is saved under the key 'cat'" in missing.content[0].text
        bad_time = await session.call_tool("archive_turn", {"user": "x", "assistant": "y", "timestamp": "soonish"})
        assert bad_time.is_error and "timestamp" in bad_time.content[0].text

        snapshot = data(await session.call_tool("memory_snapshot", {}))
        assert snapshot["layers"] == {"l1_facts": 1, "l2_turns": 3, "words_indexed_turns": 3, "outbox_waiting": 0,
                                      "l3_entries": 3}
        assert all(backend["ok"] for backend in snapshot["backends"])

        # The chat and user are fixed at start: arguments naming another chat reach nothing of it.
        for tool, arguments in (("search_memory", {"query": "vault combination Zorblax"}),
                                ("recall", {"message": "What is the vault combination, Zorblax-7781?"}),
                                ("list_facts", {})):
            reply = await session.call_tool(tool, {**arguments, "chat_id": OTHER_CHAT, "user_id": OTHER_USER})
            assert "Zorblax" not in json.dumps(reply.structured_content) + reply.content[0].text


async def test_the_tools_carry_annotations_and_the_server_its_version(tmp_path: Path) -> None:
    async with stdio_session(goat_env(tmp_path / "data"), tmp_path) as session:
        annotations = {tool.name: tool.annotations for tool in (await session.list_tools()).tools}
        assert all(annotations.values()) and not any(hints.open_world_hint for hints in annotations.values())
        assert {name for name, hints in annotations.items() if hints.read_only_hint} == READ_TOOLS
        assert {name for name, hints in annotations.items() if hints.destructive_hint} == {
            "forget_fact", "delete_memory"}
        assert {name for name, hints in annotations.items() if hints.idempotent_hint} == READ_TOOLS | {
            "store_memory", "remember_fact", "forget_fact", "delete_memory"}
        assert session.server_info.version == version("goat") != ""


async def test_memories_are_listed_and_deleted_by_id_and_only_this_chats(tmp_path: Path) -> None:
    env = goat_env(tmp_path / "data")
    seed_other_chat(tmp_path, env)
    async with stdio_session(env, tmp_path) as session:
        for n, (user, assistant) in enumerate(EXCHANGES):
            data(await session.call_tool("archive_turn", {"user": user, "assistant": assistant,
                                                          "timestamp": f"2026-11-0{n + 1}T10:00:00Z"}))

        first = data(await session.call_tool("list_memories", {"limit": 2}))
        assert [(m["id"], m["time"]) for m in first["memories"]] == [
            (f"{CHAT}:turn_0003", "2026-11-03T10:00:00+00:00"), (f"{CHAT}:turn_0002", "2026-11-02T10:00:00+00:00")]
        assert first["memories"][1]["text"] == f"user: {EXCHANGES[1][0]} ⏎ assistant: {EXCHANGES[1][1]}"
        last = data(await session.call_tool("list_memories", {"limit": 2, "cursor": first["next_cursor"]}))
        assert [m["id"] for m in last["memories"]] == [f"{CHAT}:turn_0001"] and last["next_cursor"] is None
        bad_cursor = await session.call_tool("list_memories", {"cursor": "yesterday"})
        assert bad_cursor.is_error and "cursor 'yesterday' is not one" in bad_cursor.content[0].text

        assert data(await session.call_tool("delete_memory", {"id": f"{CHAT}:turn_0002"})) == {
            "deleted": f"{CHAT}:turn_0002"}
        listed = data(await session.call_tool("list_memories", {}))
        assert [m["id"] for m in listed["memories"]] == [f"{CHAT}:turn_0003", f"{CHAT}:turn_0001"]
        assert "Cluj" not in json.dumps(data(await session.call_tool("search_memory", {"query": "Cluj"})))
        # Unknown, whether never this chat's, deleted already, or another chat's (a privacy boundary).
        for unknown in (f"{CHAT}:turn_0002", f"{CHAT}:turn_0009", f"{OTHER_CHAT}:turn_0001"):
            refused = await session.call_tool("delete_memory", {"id": unknown})
            assert refused.is_error
            assert refused.content[0].text.endswith(f"no memory of this conversation has the id {unknown!r}")
        assert "Zorblax" not in json.dumps(data(await session.call_tool("list_memories", {"limit": 100})))

    exported = json.loads(ok(goat("export", "--user", USER, "--chat", CHAT, env=env, cwd=tmp_path)).stdout)
    [chat] = exported["chats"]
    assert [m["content"] for m in chat["l2"]] == [text for turn in (EXCHANGES[0], EXCHANGES[2]) for text in turn]
    async with stdio_session(env, tmp_path, chat=OTHER_CHAT, user=OTHER_USER) as session:
        [kept] = data(await session.call_tool("list_memories", {}))["memories"]
        assert kept["id"] == f"{OTHER_CHAT}:turn_0001" and SECRET in kept["text"]


async def test_an_exchange_sent_again_without_a_time_or_by_its_client_id_is_archived_once(tmp_path: Path) -> None:
    async with stdio_session(goat_env(tmp_path / "data"), tmp_path) as session:
        user, assistant = EXCHANGES[0]
        assert data(await session.call_tool("archive_turn", {"user": user, "assistant": assistant}))["archived"]
        again = data(await session.call_tool("archive_turn", {"user": user, "assistant": assistant}))  # a retry
        assert again == {"archived": False, "note": "this exchange was archived before"}
        user, assistant = EXCHANGES[1]
        for client_id in ("exchange-1", "exchange-2"):  # the client says these are two exchanges
            assert data(await session.call_tool("archive_turn", {"user": user, "assistant": assistant,
                                                                 "client_id": client_id}))["archived"]
        retried = data(await session.call_tool("archive_turn", {"user": user, "assistant": assistant,
                                                                "client_id": "exchange-2"}))
        assert retried == {"archived": False, "note": "this exchange (by its client_id) was archived before"}
        layers = data(await session.call_tool("memory_snapshot", {}))["layers"]
        assert layers["l3_entries"] == layers["l2_turns"] == 3
        recalled = data(await session.call_tool("recall", {"message": "What did we call the puppy?"}))["recalled"]
        assert sum("Biscuit" in entry["content"] for entry in recalled) == 1


async def test_a_deleted_exchange_can_be_archived_again(tmp_path: Path) -> None:
    async with stdio_session(goat_env(tmp_path / "data"), tmp_path) as session:
        for arguments in ({}, {"timestamp": "2026-11-02T10:00:00Z"}, {"client_id": "exchange-1"}):
            user, assistant = EXCHANGES[0]
            first = data(await session.call_tool("archive_turn", {"user": user, "assistant": assistant, **arguments}))
            assert data(await session.call_tool("delete_memory", {"id": first["id"]})) == {"deleted": first["id"]}
            assert data(await session.call_tool("list_memories", {}))["memories"] == []

            again = data(await session.call_tool("archive_turn", {"user": user, "assistant": assistant, **arguments}))

            assert again["archived"], (arguments, again)
            [listed] = data(await session.call_tool("list_memories", {}))["memories"]
            assert listed["id"] == again["id"] != first["id"] and user in listed["text"]
            assert data(await session.call_tool("delete_memory", {"id": again["id"]}))["deleted"]


async def test_an_exchange_sent_again_at_a_time_that_shows_the_same_is_archived_once(tmp_path: Path) -> None:
    async with stdio_session(goat_env(tmp_path / "data"), tmp_path) as session:
        user, assistant = EXCHANGES[0]
        sent = data(await session.call_tool("archive_turn", {"user": user, "assistant": assistant,
                                                             "timestamp": "2026-11-02T10:00:00.250Z"}))
        a_millisecond_later = data(await session.call_tool("archive_turn", {
            "user": user, "assistant": assistant, "timestamp": 1_793_613_600.251}))  # 10:00:00.251
        a_second_later = data(await session.call_tool("archive_turn", {
            "user": user, "assistant": assistant, "timestamp": "2026-11-02T10:00:01Z"}))
        listed = data(await session.call_tool("list_memories", {}))["memories"]

    assert sent["archived"] and sent["time"] == "2026-11-02T10:00:00+00:00"
    assert a_millisecond_later == {"archived": False, "note": "this exchange was archived before"}
    assert a_second_later["archived"]  # a time that shows apart: another exchange
    assert [m["time"] for m in listed] == ["2026-11-02T10:00:01+00:00", "2026-11-02T10:00:00+00:00"]


async def test_a_search_finds_the_turn_holding_the_word_it_names(tmp_path: Path) -> None:
    async with stdio_session(goat_env(tmp_path / "data"), tmp_path) as session:
        for n, (user, assistant) in enumerate([REX_TURN, *((line, "Noted.") for line in UNRELATED)]):
            data(await session.call_tool("archive_turn", {"user": user, "assistant": assistant,
                                                          "timestamp": f"2026-11-{n + 1:02d}T10:00:00Z"}))
        for query, word in (("Rex", "rex"), ("frisbee", "frisbee")):
            results = data(await session.call_tool("search_memory", {"query": query}))["results"]
            assert REX_TURN[0] in results[0] and results[0].endswith(f"[words: {word}]")


async def test_diagnose_last_turn_describes_a_goat_chat_turn(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        fake.reply("Noted: the shed code is zebra-9911.")
        env = goat_env(tmp_path / "data", GOAT_MODEL="fake-model", OPENAI_API_KEY="sk-fake-key-123456",
                       OPENAI_BASE_URL=fake.base_url)
        ok(goat_chat(["The shed padlock code is zebra-9911."], "--chat", CHAT, "--user", USER, env=env, cwd=tmp_path))
    # Two failed turns in the turn log, as the runner records them: this chat's, and another's.
    observer = TurnObserver(Settings(data_dir=tmp_path / "data"))
    observer.record_failure({"chat_id": CHAT, "user_id": USER}, TimeoutError("the model did not answer"), 60_000)
    observer.record_failure({"chat_id": OTHER_CHAT, "user_id": OTHER_USER}, RuntimeError("Zorblax"), 5.0)
    async with stdio_session(env, tmp_path) as session:
        diagnosis = data(await session.call_tool("diagnose_last_turn", {}))
        assert diagnosis["turn"] == 1 and diagnosis["model_calls"] == 1
        # zebra-9911 is a structural key; the chat had nothing in L3 yet, so no candidate
        assert diagnosis["mechanisms"]["fired"] == ["thematic", "lexical", "specific_key"] and diagnosis["candidates"] == []
        assert {"prefetch", "budget", "assemble", "llm", "save", "archive"} <= set(diagnosis["latency_ms"])
        assert diagnosis["prompt"]["messages"] == 2 and diagnosis["budget"]["split"]["l3"] > 0
        assert diagnosis["degraded"] == {}
        [failed] = data(await session.call_tool("recent_errors", {"minutes": 10}))["errors"]
        assert failed["error"] == "TimeoutError: the model did not answer" and failed["turn"] is None
        refused = await session.call_tool("recent_errors", {"minutes": -1})
        assert refused.is_error and "minutes must be positive" in refused.content[0].text


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    """`goat mcp --http` on a free loopback port; stopped by its PID."""
    port = free_port()
    env = goat_env(tmp_path / "data", GOAT_MCP_TOKEN=TOKEN)
    with (tmp_path / "mcp-http.stderr").open("w") as errors:
        server = subprocess.Popen([str(GOAT), "mcp", "--http", "--port", str(port), "--chat", CHAT, "--user", USER],
                                  env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=errors)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_until_listening(server, url)
        yield url
    finally:
        server.terminate()  # SIGTERM: a graceful stop
        server.wait(timeout=60)
        servers_left(tmp_path / "data")
    assert "Traceback" not in (tmp_path / "mcp-http.stderr").read_text()


def wait_until_listening(server: subprocess.Popen, url: str) -> None:
    with httpx.Client(timeout=1.0) as client:
        for _ in range(600):  # an answer ends the wait; the bound only turns a hang into a failure
            try:
                client.get(url)
                return
            except httpx.TransportError:
                pass
            try:
                server.wait(timeout=0.1)  # paces the polls, and returns at once if the server died
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"goat mcp --http exited with {server.returncode}")
        pytest.fail("goat mcp --http did not start listening")


async def test_streamable_http_serves_with_the_bearer_token_and_refuses_without(http_server: str) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async with streamable_http_client(http_server, http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
            data(await session.call_tool("remember_fact", {"key": "city", "value": "Porto"}))
            assert data(await session.call_tool("list_facts", {})) == {"facts": {"city": "Porto"}}

    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN[:-1]}"}):
        refused = httpx.post(http_server, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 401
    for scheme in ("bearer", "BEARER"):  # HTTP's auth scheme is case-insensitive
        async with httpx.AsyncClient(headers={"Authorization": f"{scheme} {TOKEN}"}) as http:
            async with streamable_http_client(http_server, http_client=http) as (read, write), \
                    ClientSession(read, write) as session:
                await session.initialize()
                assert data(await session.call_tool("list_facts", {})) == {"facts": {"city": "Porto"}}
    async with httpx.AsyncClient(headers={"Authorization": "Bearer wrong-token"}) as http:
        async with streamable_http_client(http_server, http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            with pytest.raises(MCPError):
                await session.initialize()


async def test_a_request_past_the_json_bounds_is_refused_before_it_is_parsed_and_the_server_serves_on(
        http_server: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    opened = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": '
    deep = httpx.post(http_server, headers=headers, content=opened + b"[" * 100_000 + b"]" * 100_000 + b"}}")
    assert deep.status_code == 400
    assert deep.json()["error"]["message"] == (f"JSON nested deeper than {MAX_DEPTH} levels at byte "
                                               f"{len(opened) + MAX_DEPTH - 2}")

    def streamed() -> Iterator[bytes]:  # no Content-Length: refused once its bytes pass the bound
        yield opened + b'"'
        for _ in range(MAX_VALUE_BYTES // PIECE_BYTES + 1):
            yield b"x" * PIECE_BYTES

    large = httpx.post(http_server, headers=headers, content=streamed())
    assert large.status_code == 413 and "the request holds over 16 MB" in large.json()["error"]["message"]
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async with streamable_http_client(http_server, http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            assert data(await session.call_tool("list_facts", {})) == {"facts": {}}


async def test_a_backend_down_is_a_tool_error_and_the_other_layers_serve_on(tmp_path: Path, closed_port: int) -> None:
    env = goat_env(tmp_path / "data", GOAT_CHROMA_URL=f"http://127.0.0.1:{closed_port}")
    async with stdio_session(env, tmp_path) as session:
        searched = await session.call_tool("search_memory", {"query": "the puppy's name"})
        assert searched.is_error and "chroma" in searched.content[0].text.lower()
        stored = await session.call_tool("store_memory", {"content": "Biscuit likes carrots."})
        assert stored.is_error and "chroma" in stored.content[0].text.lower()
        assert data(await session.call_tool("remember_fact", {"key": "dog", "value": "Biscuit"}))["saved"]
        assert data(await session.call_tool("list_facts", {})) == {"facts": {"dog": "Biscuit"}}
        snapshot = data(await session.call_tool("memory_snapshot", {}))
        assert [b["name"] for b in snapshot["backends"] if not b["ok"]] == ["chroma"]
        assert "l3_entries" not in snapshot["layers"] and snapshot["layers"]["l1_facts"] == 1


def test_http_mode_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    result = goat("mcp", "--http", "--chat", CHAT, env=goat_env(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 2 and "GOAT_MCP_TOKEN" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before any backend started


def test_http_mode_refuses_a_token_that_could_be_guessed(tmp_path: Path) -> None:
    result = goat("mcp", "--http", "--chat", CHAT, env=goat_env(tmp_path / "data", GOAT_MCP_TOKEN="12345"),
                  cwd=tmp_path)
    assert result.returncode == 2 and "mcp.token" in result.stderr and "at least 16 characters" in result.stderr
    assert "12345" not in result.stderr and not (tmp_path / "data").exists()


async def test_the_documented_snippet_starts_the_server(tmp_path: Path) -> None:
    """The client configuration docs/mcp.md shows, run as a desktop client runs it (its command
    path and data folder pointed at this installation and a scratch folder)."""
    readme = (Path(__file__).resolve().parents[1] / "docs" / "mcp.md").read_text(encoding="utf-8")
    snippet = json.loads(readme.split("```json\n", 1)[1].split("```", 1)[0])
    server = snippet["mcpServers"]["goat"]
    assert Path(server["command"]).name == "goat" and Path(server["command"]).is_absolute()
    env = {**goat_env(tmp_path / "data"), **server["env"], "GOAT_DATA_DIR": str(tmp_path / "data")}
    params = StdioServerParameters(command=str(GOAT), args=server["args"], env=env, cwd=tmp_path)
    with (tmp_path / "mcp.stderr").open("w") as errors:
        async with stdio_client(params, errlog=errors) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
