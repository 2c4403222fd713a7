"""L1 facts in Letta, on a real Letta 0.11.7 server the suite starts (its environment built by
``scripts/letta-server.sh``): an agent per user (one shared with ``memory.scope = "global"``),
writes serialised across workers, a turn that loses Letta losing only L1, and the commands
that read or delete a person's data reaching the facts there too."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path

import httpx
import pytest

from bench.support.fakes import FakeOpenAI
from graph.settings import Settings
from memory.encoders.embeddings import LocalEmbeddings
from memory.facade import Memory
from memory.errors import FactsFull
from memory.stores.letta import AGENT_PREFIX, BLOCK, agent_name
from test_cli import goat, goat_env, ok
from test_graph import make_runner, with_model
from conftest import free_port, letta_server

pytestmark = pytest.mark.slow


def fresh_user() -> str:
    """The session shares one Letta server: each test its own users."""
    return f"user:{uuid.uuid4().hex[:8]}"  # a character Letta refuses in names, on purpose


def on_letta(settings: Settings, url: str, **memory: str) -> Settings:
    return settings.model_copy(update={
        "letta": settings.letta.model_copy(update={"url": url}),
        "memory": settings.memory.model_copy(update=memory),
    })


def agents_named(url: str, name: str) -> list[dict]:
    return [a for a in httpx.get(f"{url}/v1/agents/", params={"name": name}).json() if a["name"] == name]


def block_of(url: str, agent: dict) -> dict:
    block = httpx.get(f"{url}/v1/agents/{agent['id']}/core-memory/blocks/{BLOCK}").json()
    return json.loads(block["value"])


def make_agent(url: str, name: str, facts: dict) -> dict:
    return httpx.post(f"{url}/v1/agents/", json={
        "name": name, "memory_blocks": [{"label": BLOCK, "value": json.dumps(facts)}],
        "model": "letta/letta-free", "embedding": "letta/letta-free", "include_base_tools": False,
    }).raise_for_status().json()


async def test_a_users_facts_live_in_the_facts_block_of_their_own_agent(settings, letta_url):
    ana, bob = fresh_user(), fresh_user()
    memory = Memory(on_letta(settings, letta_url))
    try:
        assert await memory.scope(ana, ana).facts() == {}
        assert agents_named(letta_url, agent_name(ana)) == []  # reading makes no agent
        await memory.scope(ana, ana).remember("city", "Porto")
        await memory.scope(ana, ana).remember("dog", "Rex, a beagle — “Rexy”")
        await memory.scope(bob, bob).remember("city", "Brașov")
        await memory.scope(ana, ana).remember("city", "Lisbon")  # upsert by key

        assert await memory.scope(ana, ana).facts() == {"city": "Lisbon", "dog": "Rex, a beagle — “Rexy”"}
        assert await memory.scope(bob, bob).facts() == {"city": "Brașov"}
        [agent] = agents_named(letta_url, agent_name(ana))
        assert block_of(letta_url, agent) == {"city": "Lisbon", "dog": "Rex, a beagle — “Rexy”"}

        with pytest.raises(FactsFull, match="over its limit of 500"):
            await memory.scope(ana, ana).remember("essay", "word " * 600)
        assert "essay" not in block_of(letta_url, agent)

        assert await memory.scope(ana, ana).forget_fact("dog") is True
        assert await memory.scope(ana, ana).forget_fact("dog") is False
        assert block_of(letta_url, agent) == {"city": "Lisbon"}
        assert await memory.scope(bob, bob).facts() == {"city": "Brașov"}
    finally:
        await memory.aclose()


async def test_two_workers_upserting_different_keys_for_one_user_keep_every_key(settings, letta_url, embeddings):
    # Letta has no compare-and-set: without the lease, a read-change-write loses the other
    # worker's keys, and two first writes make two agents of one name.
    user = fresh_user()
    workers = [Memory(on_letta(settings, letta_url), embeddings=embeddings) for _ in range(2)]
    try:
        await asyncio.gather(*(worker.scope(user, user).remember(f"key{w}-{n}", f"value {w}.{n}")
                               for n in range(6) for w, worker in enumerate(workers)))
        expected = {f"key{w}-{n}": f"value {w}.{n}" for n in range(6) for w in range(2)}
        assert [await worker.scope(user, user).facts() for worker in workers] == [expected, expected]
        assert len(agents_named(letta_url, agent_name(user))) == 1
    finally:
        await asyncio.gather(*(worker.aclose() for worker in workers))


async def test_global_scope_keeps_every_user_in_one_shared_agent_and_apart(settings, letta_url):
    ana, bob = fresh_user(), fresh_user()
    memory = Memory(on_letta(settings, letta_url, scope="global"))
    try:
        await memory.scope(ana, ana).remember("city", "Porto")
        await memory.scope(bob, bob).remember("city", "Brașov")
        assert await memory.scope(ana, ana).facts() == {"city": "Porto"}
        assert await memory.scope(bob, bob).facts() == {"city": "Brașov"}
        assert agents_named(letta_url, agent_name(ana)) == []
        [shared] = agents_named(letta_url, AGENT_PREFIX)
        block = block_of(letta_url, shared)
        assert block[ana] == {"city": "Porto"} and block[bob] == {"city": "Brașov"}

        await memory.admin.forget_user(ana)
        assert ana not in block_of(letta_url, shared) and await memory.scope(bob, bob).facts() == {"city": "Brașov"}
    finally:
        await memory.aclose()


async def test_an_agent_deleted_by_another_worker_is_looked_up_again(settings, letta_url, embeddings):
    user = fresh_user()
    first, second = (Memory(on_letta(settings, letta_url), embeddings=embeddings) for _ in range(2))
    try:
        await first.scope(user, user).remember("city", "Porto")  # the first worker now knows the agent's id
        await second.admin.forget_user(user)
        assert agents_named(letta_url, agent_name(user)) == []
        assert await first.scope(user, user).facts() == {}
        await second.scope(user, user).remember("city", "Lisbon")  # a new agent under the same name
        assert await first.scope(user, user).facts() == {"city": "Lisbon"}
        await first.scope(user, user).remember("dog", "Rex")
        assert await second.scope(user, user).facts() == {"city": "Lisbon", "dog": "Rex"}
    finally:
        await first.aclose()
        await second.aclose()


async def test_agents_made_twice_under_one_name_are_read_and_written_as_one(settings, letta_url, embeddings):
    # Another client (or a worker before the lease existed) made two agents of one name:
    # every worker picks the same one.
    user = fresh_user()
    make_agent(letta_url, agent_name(user), {"city": "Porto"})
    make_agent(letta_url, agent_name(user), {"city": "Lisbon"})
    first, second = (Memory(on_letta(settings, letta_url), embeddings=embeddings) for _ in range(2))
    try:
        seen = await first.scope(user, user).facts()
        assert seen in ({"city": "Porto"}, {"city": "Lisbon"}) and await second.scope(user, user).facts() == seen
        await first.scope(user, user).remember("dog", "Rex")
        assert await second.scope(user, user).facts() == {**seen, "dog": "Rex"}
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_fact_promoted_in_a_turn_is_in_letta_and_in_the_next_prompt(settings, letta_url, embeddings):
    user = fresh_user()
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(on_letta(settings, letta_url), fake), embeddings)
        try:
            fake.reply_tool_calls([{"name": "promote_memory", "arguments": {"key": "dog", "value": "Rex, a beagle"}}])
            fake.reply("Noted: Rex.")
            await runner.run("dog-chat", "My dog is Rex, a beagle.", user_id=user)
            assert block_of(letta_url, agents_named(letta_url, agent_name(user))[0]) == {"dog": "Rex, a beagle"}

            fake.reply("Rex!")
            state = await runner.run("dog-chat", "What is my dog called?", user_id=user)
            assert state["facts"] == {"dog": "Rex, a beagle"} and "Rex, a beagle" in state["identity"]
            assert not state["degraded"]["load_identity"]
        finally:
            await runner.aclose()


async def test_letta_stalling_then_gone_costs_only_l1_and_its_return_brings_it_back(
        settings, embeddings, tmp_path):
    user = fresh_user()
    home, port = tmp_path / "letta", free_port()
    with FakeOpenAI() as fake:
        runner = None
        try:
            with letta_server(home, port) as server:
                runner = make_runner(with_model(on_letta(settings, server.url), fake), embeddings)
                await runner.services.memory.scope(user, user).remember("city", "Porto")
                fake.reply("Hello from Porto.")
                assert (await runner.run("c", "hi", user_id=user))["facts"] == {"city": "Porto"}

                os.kill(server.process.pid, signal.SIGSTOP)  # Letta stops answering mid-conversation
                fake.reply("Still here.")
                stalled = await runner.run("c", "are you there?", user_id=user)
                os.kill(server.process.pid, signal.SIGCONT)
                assert stalled["reply"] == "Still here." and stalled["facts"] == {}
                assert "did not answer within the turn's deadline (0.5 s)" in stalled["degraded"]["load_identity"]
                assert "city" not in stalled["identity"]

            fake.reply("Still here, without facts.")
            gone = await runner.run("c", "and now?", user_id=user)
            assert gone["reply"] == "Still here, without facts." and gone["facts"] == {}
            assert "facts store unavailable (ConnectError" in gone["degraded"]["load_identity"]
            completed, messages, _ = await runner.services.memory.working("c", 20)
            assert completed == 3 and [m["content"] for m in messages][-2:] == ["and now?", "Still here, without facts."]

            with letta_server(home, port):  # back at the same address, with its data
                fake.reply("Welcome back.")
                # A deadline no restarted server misses on a busy host: what comes back is checked here, not how fast.
                back = await runner.run("c", "hello again", user_id=user, overrides={"prefetch.timeout": 10})
                assert back["facts"] == {"city": "Porto"} and not back["degraded"]["load_identity"]
        finally:
            if runner is not None:
                await runner.aclose()


def test_doctor_checks_the_letta_it_is_given(tmp_path: Path, letta_url: str) -> None:
    env = goat_env(tmp_path / "data", GOAT_LETTA_URL=letta_url)
    lines = ok(goat("doctor", env=env, cwd=tmp_path)).stdout.splitlines()
    [facts] = [line for line in lines if " facts: " in line]
    assert facts.startswith("[ok]") and f"Letta at {letta_url}" in facts and "Letta 0.11.7, reachable" in facts


def test_export_and_forget_user_reach_the_facts_in_letta(tmp_path: Path, letta_url: str,
                                                         embeddings: LocalEmbeddings) -> None:
    user, other = fresh_user(), fresh_user()
    env = goat_env(tmp_path / "data", GOAT_LETTA_URL=letta_url)

    async def remember() -> None:
        memory = Memory(Settings(data_dir=tmp_path / "data", letta={"url": letta_url}), embeddings=embeddings)
        try:
            await memory.scope(user, user).remember("blood_type", "AB-negative")
            await memory.scope(other, other).remember("team", "Porto")
        finally:
            await memory.aclose()

    asyncio.run(remember())
    exported = json.loads(ok(goat("export", "--user", user, env=env, cwd=tmp_path)).stdout)
    assert exported["facts"] == {"blood_type": "AB-negative"}

    ok(goat("forget-user", user, "--yes", env=env, cwd=tmp_path))
    assert agents_named(letta_url, agent_name(user)) == []
    assert json.loads(ok(goat("export", "--user", user, env=env, cwd=tmp_path)).stdout)["facts"] == {}
    assert json.loads(ok(goat("export", "--user", other, env=env, cwd=tmp_path)).stdout)["facts"] == {"team": "Porto"}


def test_bench_times_l1_from_redis_and_from_letta_on_the_same_turns(tmp_path: Path, letta_url: str) -> None:
    env = goat_env(tmp_path / "data", GOAT_LETTA_URL=letta_url)
    out = tmp_path / "results"
    printed = ok(goat("bench", "--sections", "facts", "--turns", "3", "--out", out, env=env, cwd=tmp_path)).stdout

    runs = json.loads((out / "facts.json").read_text())["runs"]
    assert list(runs) == ["redis", "letta"]
    assert all(run["load_identity_ms"]["n"] == 3 and run["upsert_ms"]["n"] == 10 for run in runs.values())
    assert "| redis | 3 |" in printed and "| letta | 3 |" in printed
    bench_agents = [a for a in httpx.get(f"{letta_url}/v1/agents/", params={"limit": 1000}).json()
                    if a["name"].startswith(f"{AGENT_PREFIX}-goat-bench-")]
    assert bench_agents == []  # its throw-away user was forgotten
