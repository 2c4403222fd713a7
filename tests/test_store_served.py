"""GOAT's Store as `langgraph dev` serves it (graph/server/store.py behind graph/server/auth.py), reached with
langgraph_sdk over loopback as a LangGraph developer reaches it: on the embedded defaults of a
fresh data folder, with two users' tokens and a chat both of them wrote to (imported before the
server starts). The model is the loopback fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from langgraph.store.memory import InMemoryStore
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from conftest import wait_for
from bench.support.fakes import FakeOpenAI
from graph.json_limits import MAX_DEPTH
from memory.stores.archive import OUTBOX_KEY
from memory.stores.redis_server import EmbeddedRedis
from test_cli import goat, goat_env, ok
from test_erasure import files_holding
from test_studio import REPO, langgraph_dev, project_folder

pytestmark = pytest.mark.slow

ALICE_TOKEN, BOB_TOKEN = "alice-token-3f9d2c71", "bob-token-8e06a4b5"
SHARED = "family"  # the chat both wrote to
LOCKER = "7781-omega"  # what a deleted turn said
PIN = "pin-5093-kestrel"  # a deleted fact's value
TALKED = "storechat"  # alice's chat in `goat chat` before the server started: its turns are checkpointed
VAULT = "ZEBRAPLUM"  # what its second turn said


@dataclass
class Served:
    """The running server and its data folder."""

    url: str
    data_dir: Path

    def client(self, token: str) -> LangGraphClient:
        return get_client(url=self.url, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module (each test keeps to chats and keys of its own, but the shared chat).
    Before it starts, the shared chat is imported and alice talks in a chat of hers in `goat chat`."""
    folder = tmp_path_factory.mktemp("served")
    data_dir = folder / "data"
    transcript = folder / "family.jsonl"
    said = [("alice", "Alice brought the lasagna on Sunday."), ("bob", "Bob fixed the garden gate.")]
    transcript.write_text("".join(
        json.dumps({"chat_id": SHARED, "user_id": user, "role": role, "content": content,
                    "timestamp": 1_760_000_000 + n}) + "\n"
        for n, (user, text) in enumerate(said) for role, content in (("user", text), ("assistant", "Noted."))))
    with FakeOpenAI(default_reply="Noted.") as fake:
        env = goat_env(data_dir, GOAT_SERVER_TOKENS=f"alice={ALICE_TOKEN},bob={BOB_TOKEN}", GOAT_MODEL="fake-model",
                       OPENAI_API_KEY="test-key", OPENAI_BASE_URL=fake.base_url)
        ok(goat("import", transcript, env=env, cwd=folder))
        ok(goat("chat", "--chat", TALKED, "--user", "alice", env=env, cwd=folder,
                typed=["I am packing for the trip.", f"The secret vault code is {VAULT}.", "What should I pack?"]))
        with langgraph_dev(REPO, env, REPO / "langgraph.json", folder / "studio.log") as (url, _):
            yield Served(url, data_dir)


def refusal(error: pytest.ExceptionInfo[httpx.HTTPStatusError]) -> tuple[int, str]:
    """A refused call's status and its reason, which is one line."""
    response = error.value.response
    detail = response.json()["detail"]
    assert "\n" not in detail.strip(), detail
    return response.status_code, detail


async def a_turn(served: Served, client: LangGraphClient, message: str) -> tuple[str, ...]:
    """The namespace of a new chat (a thread) of the caller's, after one turn saying ``message``
    and its archiving behind the reply (which makes the chat its user's on the Store)."""
    assistant = (await client.assistants.search(graph_id="goat"))[0]
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"message": message})
    with redis.Redis.from_url(EmbeddedRedis(served.data_dir).url) as server:
        wait_for(lambda: server.hlen(OUTBOX_KEY) == 0, "the turn to be archived behind the reply")
    return ("chats", thread["thread_id"], "memories")


async def test_a_delete_through_the_store_answers_and_leaves_the_words_in_no_file(served: Served) -> None:
    alice = served.client(ALICE_TOKEN)
    chat = await a_turn(served, alice, f"My locker code is {LOCKER}.")
    turn = f"{chat[1]}:turn_0001"
    assert LOCKER in (await alice.store.get_item(chat, turn))["value"]["text"]  # archived behind the reply
    facts = ("users", "alice", "facts")
    await alice.store.put_item(facts, "bike", {"value": PIN})
    assert files_holding(served.data_dir, LOCKER) and files_holding(served.data_dir, PIN)

    await alice.store.delete_item(chat, turn)
    assert await alice.store.get_item(chat, turn) is None
    assert files_holding(served.data_dir, LOCKER) == []
    await alice.store.delete_item(facts, "bike")
    assert await alice.store.get_item(facts, "bike") is None
    assert files_holding(served.data_dir, PIN) == []


async def test_a_turn_deleted_through_the_store_leaves_no_copy_in_the_chats_checkpoints(served: Served) -> None:
    """`goat chat` checkpointed the chat's turns: the deleted turn's own (its message, its reply)
    and the next one's (its prompt, its L2). The server's delete cuts it out of them all."""
    alice = served.client(ALICE_TOKEN)
    chat, turn = ("chats", TALKED, "memories"), f"{TALKED}:turn_0002"
    assert VAULT in (await alice.store.get_item(chat, turn))["value"]["text"]
    assert "redis/appendonly.aof" in files_holding(served.data_dir, VAULT)

    await alice.store.delete_item(chat, turn)
    assert await alice.store.get_item(chat, turn) is None
    assert files_holding(served.data_dir, VAULT) == []
    assert "packing" in (await alice.store.get_item(chat, f"{TALKED}:turn_0001"))["value"]["text"]


async def test_a_key_of_a_turns_form_or_holding_nul_is_refused_in_one_line(served: Served) -> None:
    """A turn's key is the turn's, even before the turn is archived (a note put there would be
    replaced by it); a NUL cannot travel in the server's JSON (it comes back as U+FFFD)."""
    alice = served.client(ALICE_TOKEN)
    chat, facts, future = ("chats", TALKED, "memories"), ("users", "alice", "facts"), f"{TALKED}:turn_0099"
    for attempt, says in ((alice.store.put_item(chat, future, {"text": "A note of my own."}), "turn"),
                          (alice.store.put_item(chat, "vault\0code", {"text": "A note of my own."}), "NUL"),
                          (alice.store.get_item(chat, "vault\0code"), "NUL"),
                          (alice.store.put_item(facts, "vault\0code", {"value": "4411"}), "NUL"),
                          (alice.store.get_item(facts, "vault\0code"), "NUL")):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await attempt
        status, reason = refusal(refused)
        assert 400 <= status < 500 and says in reason, (status, reason)
    assert await alice.store.get_item(chat, future) is None
    assert [item["key"] for item in (await alice.store.search_items(facts))["items"]
            if "vault" in item["key"]] == []


async def test_in_a_shared_chat_a_note_is_its_putters_and_a_turn_its_speakers(served: Served) -> None:
    alice, bob = served.client(ALICE_TOKEN), served.client(BOB_TOKEN)
    chat = ("chats", SHARED, "memories")
    await bob.store.put_item(chat, "gate", {"text": "The gate code is 1234."})
    bobs_turn, alices_turn = f"{SHARED}:turn_0002", f"{SHARED}:turn_0001"
    for attempt in (alice.store.put_item(chat, "gate", {"text": "The gate code is 0000."}),
                    alice.store.delete_item(chat, "gate"),
                    alice.store.delete_item(chat, bobs_turn)):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await attempt
        status, reason = refusal(refused)
        assert status == 403 and "bob" in reason
    assert (await bob.store.get_item(chat, "gate"))["value"]["text"] == "The gate code is 1234."
    assert "garden gate" in (await bob.store.get_item(chat, bobs_turn))["value"]["text"]

    # Each still rewrites and deletes what is theirs.
    await bob.store.put_item(chat, "gate", {"text": "The gate code is 5678."})
    assert (await alice.store.get_item(chat, "gate"))["value"]["text"] == "The gate code is 5678."
    await bob.store.delete_item(chat, "gate")
    await alice.store.delete_item(chat, alices_turn)
    assert await alice.store.get_item(chat, "gate") is None and await alice.store.get_item(chat, alices_turn) is None


async def test_what_the_store_does_not_support_is_a_4xx_and_the_connection_lives_on(served: Served) -> None:
    alice = served.client(ALICE_TOKEN)
    facts, chat = ("users", "alice", "facts"), ("chats", SHARED, "memories")
    await alice.store.put_item(facts, "city", {"value": "Porto"})
    for attempt, says in ((alice.store.put_item(facts, "dog", {"value": "Rex"}, ttl=5), "TTL"),
                          (alice.store.search_items(facts, filter={"value": "Porto"}), "filter"),
                          (alice.store.put_item(chat, "tagged", {"text": "A tagged note.", "tags": 5}), "tags")):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await attempt
        status, reason = refusal(refused)
        assert 400 <= status < 500 and says in reason
        assert (await alice.store.get_item(facts, "city"))["value"] == {"value": "Porto"}  # the same client goes on
    assert await alice.store.get_item(facts, "dog") is None and await alice.store.get_item(chat, "tagged") is None


async def test_a_value_or_a_filter_nested_past_the_json_bound_is_refused_in_one_line(served: Served) -> None:
    alice = served.client(ALICE_TOKEN)
    chat = ("chats", SHARED, "memories")
    deep: list = []
    for _ in range(MAX_DEPTH):
        deep = [deep]
    for attempt in (alice.store.put_item(chat, "deep", {"text": "A deep note.", "tags": deep}),
                    alice.store.search_items(chat, query="lasagna", filter={"role": deep})):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await attempt
        status, reason = refusal(refused)
        assert status == 400 and reason.startswith(f"JSON nested deeper than {MAX_DEPTH} levels"), reason
    assert await alice.store.get_item(chat, "deep") is None


async def test_paging_refuses_negatives_and_max_depth_means_what_langgraphs_stores_make_it(served: Served) -> None:
    alice = served.client(ALICE_TOKEN)
    facts, chat = ("users", "alice", "facts"), ("chats", SHARED, "memories")
    for key in ("a", "b", "c"):
        await alice.store.put_item(facts, key, {"value": key.upper()})
    for attempt in (alice.store.search_items(facts, limit=-1), alice.store.search_items(facts, offset=-2),
                    alice.store.search_items(chat, limit=-1), alice.store.search_items(chat, offset=-3),
                    alice.store.search_items(chat, query="lasagna", offset=-1),
                    alice.store.search_items(chat, query="lasagna", limit=-1),
                    alice.store.list_namespaces(prefix=facts[:2], max_depth=-1),
                    alice.store.list_namespaces(prefix=facts[:2], limit=-1),
                    alice.store.list_namespaces(prefix=facts[:2], offset=-1)):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await attempt
        status, reason = refusal(refused)
        assert status == 400 and "negative" in reason

    # Listing alice's own namespaces, max_depth cuts them as LangGraph's in-memory store does.
    mine = [tuple(ns) for ns in (await alice.store.list_namespaces(prefix=facts[:2]))["namespaces"]]
    assert mine == [facts]
    reference = InMemoryStore()
    reference.put(facts, "a", {"value": "A"})
    for depth in (0, 1, 2, 3, 4):
        listed = (await alice.store.list_namespaces(prefix=facts[:2], max_depth=depth))["namespaces"]
        assert [tuple(ns) for ns in listed] == reference.list_namespaces(prefix=facts[:2], max_depth=depth)


async def test_a_store_delete_cuts_the_words_out_of_the_threads_langgraph_dev_keeps_and_their_files(
        tmp_path: Path) -> None:
    """A turn run inside `langgraph dev` is kept by it: its checkpoints (the thread's state and
    history), the thread's values and the run's input, in memory and in `.langgraph_api/`'s files.
    The Store's deletes of a turn and of a fact the turn read reach them all, there and on disk."""
    project, data_dir = project_folder(tmp_path / "project"), tmp_path / "data"
    chat, facts = ("chats", "lockers", "memories"), ("users", "developer", "facts")
    with FakeOpenAI(default_reply="Noted.") as fake:
        env = goat_env(data_dir, GOAT_MODEL="fake-model", OPENAI_API_KEY="test-key", OPENAI_BASE_URL=fake.base_url)
        with langgraph_dev(project, env, project / "langgraph.json", tmp_path / "studio.log") as (url, _):
            client = get_client(url=url)
            await client.store.put_item(facts, "bike", {"value": PIN})
            assistant = (await client.assistants.search(graph_id="goat"))[0]
            thread = (await client.threads.create())["thread_id"]
            await client.runs.wait(thread, assistant["assistant_id"],
                                   input={"chat_id": chat[1], "message": f"My locker code is {LOCKER}."})
            with redis.Redis.from_url(EmbeddedRedis(data_dir).url) as server:
                wait_for(lambda: server.hlen(OUTBOX_KEY) == 0, "the turn to be archived behind the reply")

            async def kept() -> str:
                """Everything the server hands out of the thread: its state, history, values and runs."""
                return json.dumps([await client.threads.get_state(thread), await client.threads.get_history(thread),
                                   await client.threads.get(thread), await client.runs.list(thread)])

            assert LOCKER in await kept() and PIN in await kept()
            await client.store.delete_item(chat, f"{chat[1]}:turn_0001")
            await client.store.delete_item(facts, "bike")
            assert LOCKER not in await kept() and PIN not in await kept()
            assert files_holding(project / ".langgraph_api", LOCKER) == []
            assert files_holding(project / ".langgraph_api", PIN) == []
    written = {path.name for path in (project / ".langgraph_api").iterdir()}  # as the server wrote them at its end
    assert ".langgraph_ops.pckl" in written and any(name.startswith(".langgraph_checkpoint.") for name in written)
    assert files_holding(project, LOCKER) == [] and files_holding(project, PIN) == []
