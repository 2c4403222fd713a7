"""LangGraph's server (`langgraph dev`, as Studio uses it; the same langgraph.json deploys to
LangGraph's own server) serves the graph offline, with memory on a Redis server and a Chroma
server shared with anything else that uses them, and its own checkpointer for the threads; a
turn can be stepped node by node — the way people debug a turn in Studio."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sysconfig
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
import redis
from langgraph_sdk import get_client

from conftest import free_port, wait_for
from bench.support.fakes import FakeOpenAI
from graph.settings import Settings
from memory.facade import Memory, measurement_hooks
from test_cli import embedded_redis_pids

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 90


@pytest.fixture
def fake_model():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment for the server (a test overrides it)."""
    return {}


@contextmanager
def langgraph_dev(cwd: Path, env: dict[str, str], config: Path, log_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`langgraph dev` serving ``config`` from ``cwd``, in a process group of its own; its URL
    once it answers, and its process."""
    port = free_port()
    command = [
        str(Path(sysconfig.get_path("scripts")) / "langgraph"), "dev", "--host", "127.0.0.1",
        "--port", str(port), "--no-browser", "--no-reload", "--config", str(config),
    ]  # fmt: skip
    log = log_path.open("wb")
    server = subprocess.Popen(command, cwd=cwd, env={"LANGSMITH_TRACING": "false", "LANGGRAPH_NO_TELEMETRY": "1", **env},
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert server.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "langgraph dev did not come up"
            time.sleep(0.2)  # polling a starting server, not synchronising with our own code
        yield url, server
    finally:
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def project_folder(folder: Path) -> Path:
    """A folder of its own to start `langgraph dev` from (its working directory, where it keeps
    ``.langgraph_api/``), with the project's langgraph.json pointing back at the repository."""
    folder.mkdir()
    config = json.loads((REPO / "langgraph.json").read_text())
    config = {**config, "dependencies": [str(REPO)],
              "graphs": {name: str(REPO / path) for name, path in config["graphs"].items()},
              "auth": {"path": str(REPO / config["auth"]["path"])}, "store": {"path": str(REPO / config["store"]["path"])}}
    (folder / "langgraph.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def studio(tmp_path: Path, system_redis_url: str, chroma_url: str, fake_model: FakeOpenAI, server_env: dict[str, str]):
    env = {
        **os.environ,
        "GOAT_DATA_DIR": str(tmp_path / "data"),
        "GOAT_REDIS_URL": system_redis_url,
        "GOAT_CHROMA_URL": chroma_url,
        "GOAT_MODEL": "fake-model",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_model.base_url,
        **server_env,
    }
    # Run from the repo as a user would (graph paths are relative to the working folder);
    # its state folder .langgraph_api/ is git-ignored.
    with langgraph_dev(REPO, env, REPO / "langgraph.json", tmp_path / "studio.log") as (url, _):
        yield url


async def test_on_the_embedded_defaults_studio_shows_a_form_steps_a_turn_and_ctrl_c_leaves_nothing_behind(
        tmp_path: Path, fake_model: FakeOpenAI):
    """As a newcomer starts it: no GOAT_* variable but the model, so the data folder is the
    relative default and Redis and Chroma are embedded in it (the project's langgraph.json
    copied into a folder of its own, so that folder is the working directory)."""
    project = project_folder(tmp_path / "project")
    env = {name: value for name, value in os.environ.items() if not name.startswith("GOAT_")}
    env |= {"GOAT_MODEL": "fake-model", "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": fake_model.base_url}
    with langgraph_dev(project, env, project / "langgraph.json", tmp_path / "studio.log") as (url, server):
        client = get_client(url=url)
        assistant = (await client.assistants.search(graph_id="goat"))[0]
        schemas = await client.assistants.get_schemas(assistant["assistant_id"])
        assert schemas["input_schema"]["required"] == ["chat_id", "message"]
        assert schemas["input_schema"]["properties"]["message"]["description"]
        assert "reply" in schemas["output_schema"]["properties"]
        assert "services" not in schemas["context_schema"]["properties"]
        assert "prefetch_timeout" in schemas["context_schema"]["properties"]
        assert not schemas["config_schema"]  # the knobs are listed once, as the context
        thread = await client.threads.create()
        fake_model.reply("Hello from the embedded defaults.")
        run = {"input": {"chat_id": "newcomer", "message": "Hello, are you there?"}, "interrupt_before": "*"}
        await client.runs.wait(thread["thread_id"], assistant["assistant_id"], **run)
        steps = 0
        while (await client.threads.get_state(thread["thread_id"]))["next"]:
            steps += 1
            await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input=None, interrupt_before="*")
        values = (await client.threads.get_state(thread["thread_id"]))["values"]
        assert steps == 7 and values["reply"] == "Hello from the embedded defaults." and values["turn"] == 1
        # The store view shows the chat's memories and the user's facts.
        await client.store.put_item(("users", "developer", "facts"), "dog", {"value": "Rex"})
        assert (await client.store.get_item(("users", "developer", "facts"), "dog"))["value"] == {"value": "Rex"}
        assert (await client.store.get_item(("chats", "newcomer", "memories"), "newcomer:turn_0001"))["value"]["text"] \
            == "user: Hello, are you there?\nassistant: Hello from the embedded defaults."
        assert {tuple(ns) for ns in (await client.store.list_namespaces())["namespaces"]} \
            >= {("users", "developer", "facts"), ("chats", "newcomer", "memories")}
        data = project / ".goat"
        assert embedded_redis_pids(data)
        # A first chat has nothing to search: Chroma opens when the archiver writes the turn behind the reply.
        wait_for(lambda: (data / "chroma").is_dir(), what="the turn to be archived in the embedded Chroma")

        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C in the terminal signals the whole group
        server.wait(timeout=60)
        wait_for(lambda: not embedded_redis_pids(data), what="the embedded Redis to end with the server")
        with pytest.raises(ProcessLookupError):
            os.killpg(server.pid, 0)  # nothing of the group is left


async def test_turns_step_node_by_node_with_knobs_from_the_form_and_the_next_turn_recalls(
        studio: str, fake_model: FakeOpenAI, system_redis_url: str, chroma_url: str, embeddings, tmp_path: Path):
    chat = f"studio-{uuid.uuid4().hex[:8]}"  # the servers are the session's: a chat of its own
    client = get_client(url=studio)
    assistant = (await client.assistants.search(graph_id="goat"))[0]
    form = (await client.assistants.get_schemas(assistant["assistant_id"]))["context_schema"]["properties"]
    assert {"prefetch_timeout", "retrieval_relevance_ratio", "retrieval_weight_recency", "aits_base",
            "budget_l3_min_guarantee_tokens", "budget_l2_floor_tokens", "memory_scope"} <= set(form)
    # The ratio an encoder has of its own is the one its settings apply, and the form says so.
    e5_ratio = Settings(embeddings={"model": "e5-small"}).retrieval.relevance_ratio
    assert e5_ratio != Settings().retrieval.relevance_ratio
    assert f"with embeddings.model e5-small {e5_ratio!r}" in form["retrieval_relevance_ratio"]["description"]
    thread = await client.threads.create()
    fake_model.reply("Stepped all the way through.")
    knobs = {"prefetch_timeout": 2}  # a field of the context's form

    turn = {"chat_id": chat, "user_id": "u1", "message": "Yesterday I put the skis in locker 4471."}
    await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input=turn,
                           interrupt_before="*", context=knobs)
    steps = []
    while (state := await client.threads.get_state(thread["thread_id"]))["next"]:
        steps.append(sorted(state["next"]))
        if state["next"] == ["assemble"]:  # after the budget node: the split and the verdicts are there
            assert state["values"]["split"]["l3"] > 0 and state["values"]["verdicts"] == []
        await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input=None,
                               interrupt_before="*", context=knobs)

    assert steps == [
        ["load_identity", "load_working", "prefetch"],  # the fan-out: one superstep
        ["gap_filter"], ["budget"], ["assemble"], ["llm"], ["save"], ["archive"],
    ]
    values = state["values"]
    assert values["reply"] == "Stepped all the way through."
    assert values["prefetch"]["deadline_ms"] == 2000  # the knob reached the nodes
    assert "temporal" in values["prefetch"]["fired"]
    assert set(values["latency_ms"]) == {"prefetch", "load_identity", "load_working", "gap_filter",
                                         "budget", "assemble", "llm", "save", "archive"}
    assert values["archive_id"] == f"{chat}:turn_0001"
    assert fake_model.requests[-1]["messages"][-1]["content"] == turn["message"]

    # The archive lands behind the reply: the outbox in the server's Redis empties.
    outbox = redis.Redis.from_url(system_redis_url)
    for _ in range(600):  # the outbox emptying ends the wait; the bound turns a hang into a failure
        if outbox.hlen("goat:l3_outbox") == 0:
            break
        await asyncio.sleep(0.05)  # polling another process's work, not synchronising our own
    fake_model.reply("In locker 4471.")
    second = await client.runs.wait(thread["thread_id"], assistant["assistant_id"],
                                    input={**turn, "message": "Which locker 4471 did I mean, what is in it?"})
    assert [entry["id"] for entry in second["l3"]] == [f"{chat}:turn_0001"]
    assert "locker 4471" in fake_model.requests[-1]["messages"][0]["content"]  # recalled into the prompt

    # Memory is in the shared servers, where any other GOAT process finds it; the threads are
    # the LangGraph server's (its checkpointer), none in GOAT's Redis.
    memory = Memory(Settings(data_dir=tmp_path / "reader", redis={"url": system_redis_url},
                             chroma={"url": chroma_url}), embeddings=embeddings)
    try:
        assert await measurement_hooks(memory).settle() == 0
        completed, messages, _ = await memory.working(chat, 10)
        assert completed == 2 and messages[0]["content"] == turn["message"]
        store = await memory._backends.l3.episodic()
        assert store.count(chat) == 2
    finally:
        await memory.aclose()
    assert not [key for key in outbox.scan_iter(count=1000) if thread["thread_id"].encode() in key]
    assert (await client.threads.get_state(thread["thread_id"]))["values"]["turn"] == 2


ALICE_TOKEN, BOB_TOKEN = "alice-token-5c2e9a7b10", "bob-token-81f04d3c6e"


@pytest.mark.parametrize("server_env", [{"GOAT_SERVER_TOKENS": f"alice={ALICE_TOKEN},bob={BOB_TOKEN}"}])
async def test_on_a_shared_server_a_run_is_its_callers_and_a_thread_its_owners(
        studio: str, fake_model: FakeOpenAI, system_redis_url: str, chroma_url: str, embeddings, tmp_path: Path):
    """Bearer tokens name the users: a run's user_id is its caller's and its chat its thread,
    whatever its input names (a number, another user, another person's chat); another user
    cannot read, run or edit that thread; a request without a token is refused."""
    assert httpx.post(f"{studio}/threads", json={}).status_code == 401
    assert httpx.post(f"{studio}/threads", json={}, headers={"Authorization": "Bearer guess"}).status_code == 401
    alice = get_client(url=studio, headers={"Authorization": f"bearer {ALICE_TOKEN}"})
    bob = get_client(url=studio, headers={"Authorization": f"Bearer {BOB_TOKEN}"})
    assistant = (await alice.assistants.search(graph_id="goat"))[0]
    thread = await alice.threads.create()
    fake_model.reply("Noted.")
    forged = {"chat_id": "bobs-private-chat", "user_id": 7, "message": "My locker code is 4471."}
    state = await alice.runs.wait(thread["thread_id"], assistant["assistant_id"], input=forged)
    assert state["chat_id"] == thread["thread_id"] and state["archive_id"] == f"{thread['thread_id']}:turn_0001"

    memory = Memory(Settings(data_dir=tmp_path / "reader", redis={"url": system_redis_url},
                             chroma={"url": chroma_url}), embeddings=embeddings)
    try:
        _, saved, _ = await memory.working(thread["thread_id"], 10)
        assert [m["user_id"] for m in saved] == ["alice", "alice"]
        assert (await memory.working("bobs-private-chat", 10))[:2] == (0, [])
    finally:
        await memory.aclose()

    for attempt in (bob.threads.get_state(thread["thread_id"]), bob.threads.get(thread["thread_id"]),
                    bob.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"message": "What is it?"}),
                    alice.threads.update_state(thread["thread_id"], {"chat_id": "bobs-private-chat"}),
                    alice.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"message": "hi"},
                                    context={"memory_scope": "global"})):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await attempt
        assert refused.value.response.status_code in (403, 404)
    assert [t["thread_id"] for t in await bob.threads.search()] == []


@pytest.mark.parametrize("server_env", [{"GOAT_SERVER_TOKENS": f"alice={ALICE_TOKEN},bob={BOB_TOKEN}"}])
async def test_the_served_store_is_goats_memory_and_each_caller_reaches_only_their_own(
        studio: str, fake_model: FakeOpenAI, system_redis_url: str, chroma_url: str, embeddings, tmp_path: Path):
    """The SDK's store calls on the served store: a fact put is the user's fact (/facts), a turn
    is found by its word, a delete takes it out of the search; another user is refused."""
    alice = get_client(url=studio, headers={"Authorization": f"Bearer {ALICE_TOKEN}"})
    bob = get_client(url=studio, headers={"Authorization": f"Bearer {BOB_TOKEN}"})
    await alice.store.put_item(("users", "alice", "facts"), "dog", {"value": "Rex"})
    assistant = (await alice.assistants.search(graph_id="goat"))[0]
    thread = await alice.threads.create()
    chat = ("chats", thread["thread_id"], "memories")
    for said in ("We played frisbee at the beach all afternoon.", "My sister moved to Porto last spring."):
        fake_model.reply("Noted.")
        await alice.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"message": said})
    turn = f"{thread['thread_id']}:turn_0001"
    assert (await alice.store.get_item(chat, turn))["value"]["role"] == "turn"  # the archive behind the reply is written
    [first, *_] = (await alice.store.search_items(chat, query="frisbee"))["items"]
    assert first["key"] == turn and first["value"]["words"] == ["frisbee"] and first["score"] is not None
    assert (await alice.store.list_namespaces(prefix=["users", "alice"]))["namespaces"] == [["users", "alice", "facts"]]

    memory = Memory(Settings(data_dir=tmp_path / "reader", redis={"url": system_redis_url},
                             chroma={"url": chroma_url}), embeddings=embeddings)
    try:
        assert await memory.scope(thread["thread_id"], "alice").facts() == {"dog": "Rex"}  # what /facts shows
    finally:
        await memory.aclose()

    unused = ("chats", (await alice.threads.create())["thread_id"], "memories")  # no turn yet: no one's
    for attempt in (bob.store.get_item(("users", "alice", "facts"), "dog"),
                    bob.store.search_items(chat, query="frisbee"),
                    bob.store.put_item(chat, "note", {"text": "Bob was here."}),
                    bob.store.put_item(unused, "note", {"text": "Bob claims it."}),
                    alice.store.put_item(unused, "note", {"text": "Before any turn."}),
                    bob.store.delete_item(chat, turn),
                    bob.store.list_namespaces(),
                    bob.store.search_items(["chats"])):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await attempt
        assert refused.value.response.status_code == 403

    await alice.store.delete_item(chat, turn)
    assert turn not in {item["key"] for item in (await alice.store.search_items(chat, query="frisbee"))["items"]}
    assert await alice.store.get_item(chat, turn) is None
