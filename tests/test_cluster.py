"""GOAT on a real Redis Cluster: three masters of Debian's redis-server, no replicas (the
``redis_cluster`` fixture). Whole turns through the graph with the loopback model, across chats
whose keys land on every master: L2, cached searches, facts, the word index (a structural key
recalled), the chat locks, the turn journal, the checkpointer, the outbox replayed by the next
start, and an import. Nothing may degrade: a command that crossed slots would fail on the cluster
and be reported in the turn's ``degraded`` or logged, and both are checked. (Export and
forget-user run on the cluster in tests/test_privacy.py; the stores' own tests and the
checkpointer's conformance suite are parametrized over it in their files.)"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict

import pytest
import redis
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint

from bot.doctor import backend_mode
from conftest import RedisClusterNodes, memorys_redis
from memory.facade import measurement_hooks
from bench.support.fakes import FakeOpenAI
from graph.checkpoint import RedisCheckpointSaver
from graph.settings import Settings, load_settings
from memory.stores.archive import OUTBOX_KEY
from memory.stores.backends import Backends
from memory.errors import BackendUnavailable
from memory.settings import SettingsError
from memory.turns import Exchange, archive_id
from test_durability import crash_after_the_reply
from test_graph import HISTORY, NOW, inspect, load_history, make_runner, with_model

CHATS = ("alice-chat", "bob-chat", "dave-chat")  # their L2 keys' slots fall on the three masters


def echo(body: dict) -> str:
    return "re: " + body["messages"][-1]["content"]


def configured(settings: Settings, fake: FakeOpenAI) -> Settings:
    """With the loopback model, and a deadline no loaded test machine misses (a mechanism
    that fails must show as failed, not as timed out)."""
    settings = with_model(settings, fake)
    return settings.model_copy(update={"prefetch": settings.prefetch.model_copy(update={"timeout": 10.0})})


def hash_tag(key: bytes) -> bytes:
    """What Redis Cluster hashes of a key: its ``{…}`` part when non-empty, else the whole key."""
    start = key.find(b"{")
    end = key.find(b"}", start + 1) if start >= 0 else -1
    return key[start + 1 : end] if start >= 0 and end > start + 1 else key


def cluster_keys(url: str) -> dict[bytes, str]:
    """Every key of the cluster (SCAN on every master), with the node that holds it."""
    with redis.RedisCluster.from_url(url) as client:
        return {key: client.get_node_from_key(key).name for key in client.scan_iter(count=1000)}


@pytest.fixture
def warnings_seen(caplog: pytest.LogCaptureFixture):
    """Warnings GOAT logged during the test (a failed background write is only logged)."""
    caplog.set_level(logging.WARNING)
    return lambda: [r.getMessage() for r in caplog.records
                    if r.levelno >= logging.WARNING and r.name.split(".")[0] in {"memory", "graph", "nodes", "bot"}]


# ---- the settings -------------------------------------------------------------------------


def test_cluster_mode_is_one_setting_and_needs_a_nodes_url() -> None:
    settings = load_settings(environ={"GOAT_REDIS__CLUSTER": "true", "GOAT_REDIS_URL": "redis://10.0.0.7:7000"})
    assert settings.redis.cluster and settings.redis.url == "redis://10.0.0.7:7000"
    assert not load_settings(environ={}).redis.cluster  # the embedded server stays the default
    with pytest.raises(SettingsError, match=r"redis \(from GOAT_REDIS__CLUSTER\).*needs redis\.url \(GOAT_REDIS_URL\)"):
        load_settings(environ={"GOAT_REDIS__CLUSTER": "true"})
    with pytest.raises(SettingsError, match="redis:// or rediss:// URL"):
        load_settings(environ={"GOAT_REDIS__CLUSTER": "1", "GOAT_REDIS_URL": "unix:///tmp/redis.sock"})
    with pytest.raises(SettingsError, match="database 0 only"):
        load_settings(environ={"GOAT_REDIS__CLUSTER": "yes", "GOAT_REDIS_URL": "redis://10.0.0.7:7000/2"})
    assert load_settings(environ={"GOAT_REDIS__CLUSTER": "on", "GOAT_REDIS_URL": "rediss://u:p@h:7000/0"}).redis.cluster


# ---- the cluster itself ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_cluster_has_three_masters_sharing_every_slot(redis_cluster: RedisClusterNodes) -> None:
    with redis.RedisCluster.from_url(redis_cluster.url) as client:
        masters = client.get_primaries()
        assert len(masters) == 3 and not client.get_replicas()
        for info in client.cluster_info(target_nodes=client.ALL_NODES).values():
            assert info["cluster_state"] == "ok" and info["cluster_slots_ok"] == "16384"
    print(f"\nthe cluster started in {redis_cluster.started_in:.2f} s")


@pytest.mark.slow
async def test_a_cluster_node_is_not_taken_for_a_server_nor_a_server_for_a_cluster(
    tmp_path, cluster_url: str, system_redis_url: str
) -> None:
    as_server = Backends(Settings(data_dir=tmp_path, redis={"url": cluster_url}))
    with pytest.raises(BackendUnavailable, match=r"is a node of a Redis Cluster.*GOAT_REDIS__CLUSTER=true"):
        await as_server.redis.client()
    await as_server.aclose()
    as_cluster = Backends(Settings(data_dir=tmp_path, redis={"url": system_redis_url, "cluster": True}))
    with pytest.raises(BackendUnavailable, match=r"cannot reach the Redis Cluster at redis://127\.0\.0\.1"):
        await as_cluster.redis.client()
    await as_cluster.aclose()


@pytest.mark.slow
async def test_a_fresh_checkpointer_serves_many_threads_at_once(cluster_url: str) -> None:
    """Its first round trips all at once, as when many chats start together: redis-py's cluster
    client, sending them before it knows the slots, would drop every connection on MOVED replies."""
    async with RedisCheckpointSaver.from_url(cluster_url, cluster=True) as saver:
        async def thread(n: int) -> list[str]:
            config = {"configurable": {"thread_id": f"chat-{n}", "checkpoint_ns": ""}}
            for step in range(3):
                config = await saver.aput(config, generate_checkpoint(), {"source": "loop", "step": step}, {})
            return [tup.metadata["step"] async for tup in saver.alist({"configurable": {"thread_id": f"chat-{n}"}})]

        assert await asyncio.gather(*(thread(n) for n in range(60))) == [[2, 1, 0]] * 60


# ---- GOAT on it -------------------------------------------------------------------------------


@pytest.mark.slow
async def check_what_each_layer_holds(runner, sent: dict[str, list[str]], question: str, url: str) -> None:
    """After the turns: each chat's L2, L3 and checkpoint, the cache and word index, the journal,
    the locks, and goat doctor's view of the cluster."""
    memory = runner.services.memory
    store = await memory._backends.l3.episodic()
    for chat, texts in sent.items():
        completed, working, _ = await memory.working(chat, 100)
        earlier = len(HISTORY) if chat == "alice-chat" else 0
        assert completed == earlier + len(texts)
        assert [m["content"] for m in working[2 * earlier:]] == [t for m in texts for t in (m, f"re: {m}")]
        assert store.count(chat) == completed
        assert (await runner.last_state(chat))["reply"] == f"re: {texts[-1]}"  # the checkpointer's
    # The archive invalidated the chat's cached search, and is found by its words.
    assert (await inspect(runner, "alice-chat", question))["prefetch"]["cache"]["hit"] is False
    [(hit, _, _)] = await memory._finding.reads.lexical_search(["bob-chat"], "ticket-000250", 5, 1.0)
    assert hit["id"] == archive_id("bob-chat", 2)
    assert await memory._journal.unfinished() == []
    assert (await memory._backends.redis.chat_locks()).held_locally() == 0
    # goat doctor's view: the cluster, and what each layer holds for a chat.
    health = await memory.admin.health("bob-chat", "bob")
    assert (health.backends[0].name, health.backends[0].ok) == ("redis", True)
    assert backend_mode("redis", memory.settings) == f"cluster at {url}"
    assert health.layers == {"l1_facts": 1, "l2_turns": 3, "words_indexed_turns": 3, "outbox_waiting": 0,
                             "l3_entries": 3}


async def test_whole_turns_across_chats_on_every_master(cluster_settings, embeddings, tmp_path, warnings_seen):
    url = cluster_settings.redis.url
    with redis.RedisCluster.from_url(url) as client:
        assert len({client.get_node_from_key(f"goat:l2:{{{chat}}}").name for chat in CHATS}) == 3
    with FakeOpenAI(responder=echo) as fake:
        runner = make_runner(configured(cluster_settings, fake), embeddings)
        try:
            memory = runner.services.memory
            await memory.connect(warm=True)
            # Import (graph/importing/importer → Memory.import_turns): L3, the word index and L2; again, nothing.
            assert (await load_history(runner, tmp_path))["imported"] == len(HISTORY)
            assert (await load_history(runner, tmp_path))["imported"] == 0
            await measurement_hooks(memory).settle()
            # The word index recalls a structural key exactly.
            keyed = await inspect(runner, "alice-chat", "status of alpha-5675?")
            assert keyed["degraded"] == {} and not keyed["prefetch"]["failed"]
            exact = [e for e in keyed["l3"] if e["mechanism"] == "specific_key"]
            assert len(exact) == 2 and all("alpha-5675" in e["content"] for e in exact)
            # A search is cached: the same question again is a hit.
            question = "Which tomato variety did I plant on the balcony?"
            first = await inspect(runner, "alice-chat", question)
            assert first["prefetch"]["cache"]["hit"] is False
            assert any("San Marzano" in e["content"] for e in first["l3"])
            assert (await inspect(runner, "alice-chat", question))["prefetch"]["cache"]["hit"] is True
            for user in ("alice", "bob", "dave"):
                await memory.scope(user, user).remember("city", f"{user}ville")

            # Turns in the three chats at once, a burst of three in one of them (its turn lock).
            sent = {"alice-chat": ["my cat is called Pixel"], "bob-chat": ["hi", "ticket-000250 is open", "thanks"],
                    "dave-chat": ["hello"]}

            async def converse(chat: str) -> list[dict]:
                return [await runner.run(chat, text, user_id=chat.split("-")[0], now=NOW.timestamp() + n)
                        for n, text in enumerate(sent[chat])]

            states = dict(zip(sent, await asyncio.gather(*(converse(chat) for chat in sent))))
            for chat, chat_states in states.items():
                for state, text in zip(chat_states, sent[chat]):
                    assert state["reply"] == f"re: {text}"
                    assert not any(state["degraded"].values()), state["degraded"]
                    assert not state["prefetch"]["failed"] and not state["prefetch"]["timed_out"]
            # L1 was read from the cluster into each chat's prompt.
            for request in fake.requests:
                user = next(u for u in ("alice", "bob", "dave") if request["messages"][-1]["content"] in
                            sent[f"{u}-chat"])
                assert f"{user}ville" in request["messages"][0]["content"]
            assert await measurement_hooks(memory).settle() == 0  # the outbox written to L3 behind the replies

            await check_what_each_layer_holds(runner, sent, question, url)
        finally:
            await runner.aclose()

    keys = cluster_keys(url)
    assert len(set(keys.values())) == 3  # GOAT's keys are on every master
    assert not [key for key in keys if b":lock:" in key]  # every lease released
    # Keys a script or a transaction touches together (keys built inside Lua too: a cache entry
    # from its scope's generation, a checkpoint from its thread's index) carry a hash tag; a key
    # without one would be hashed whole, apart from its kin. (Redis checks the slot of a key
    # built inside Lua only when it lives on another node, so this is checked here.)
    tagged = [key for key in keys if key.startswith((b"goat:l2:", b"goat:turns:", b"goat:cache:",
                                                     b"goat:lex:", b"goat:ckpt:"))]
    assert tagged and all(hash_tag(key) != key for key in tagged)
    for chat in CHATS:
        assert keys[f"goat:l2:{{{chat}}}".encode()] == keys[f"goat:turns:{{{chat}}}".encode()]
        assert f"goat:ckpt:{{{chat}}}:checkpoints".encode() in keys
    assert warnings_seen() == []


@pytest.mark.slow
async def test_the_next_start_completes_a_turn_and_writes_the_outbox_a_dead_process_left(
    cluster_settings, embeddings, warnings_seen
):
    with FakeOpenAI(responder=echo) as fake:
        settings = configured(cluster_settings, fake)
        await crash_after_the_reply(settings, embeddings, "dave-chat")
        # …and another chat's turn parked in the outbox, as the dead process left it.
        parked = Exchange("bob-chat", "bob", 1, NOW.timestamp(), "the Zorblax key is under the mat", "noted")
        with redis.RedisCluster.from_url(cluster_settings.redis.url) as client:
            client.hset(OUTBOX_KEY, parked.id, json.dumps({**asdict(parked), "now": NOW.timestamp()}))

        restarted = make_runner(settings, embeddings)
        try:
            assert await restarted.recover() == ["dave-chat"]
            memory = restarted.services.memory
            assert await measurement_hooks(memory).settle() == 0
            completed, working, _ = await memory.working("dave-chat", 10)
            assert completed == 1 and [m["content"] for m in working] == [
                "said just before the crash", "re: said just before the crash"]
            store = await memory._backends.l3.episodic()
            assert [e["id"] for e in store.get_by_ids(["dave-chat"], [archive_id("dave-chat", 1)])] == [
                archive_id("dave-chat", 1)]
            [(hit, _, _)] = await memory._finding.reads.lexical_search(["bob-chat"], "Zorblax mat", 5, 1.0)
            assert hit["id"] == parked.id and hit["content"].startswith("user: the Zorblax key")
            assert await memory._journal.unfinished() == [] and await restarted.recover() == []
            async with memorys_redis(memory) as client:
                assert await client.hlen(OUTBOX_KEY) == 0
        finally:
            await restarted.aclose()
    assert warnings_seen() == []
