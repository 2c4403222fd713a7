"""Durable turns: ordering, the turn lock across workers, the L3 outbox, and
what each backend failing mid-way costs — against real Redis and Chroma servers."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import subprocess
from contextlib import suppress
from pathlib import Path

import chromadb
import pytest
from chromadb.errors import NotFoundError
import redis
import redis.asyncio

from conftest import chroma_server, free_port, wait_for
from bench.support.fakes import FakeOpenAI
from graph.settings import Settings
from memory.stores.chat_lock import ChatLocks
from memory.redis_clients import waiting_pool
from memory.stores.redis_server import answers_ping
from memory.stores.episodic import collection_name
from memory.turns import archive_id
from test_chat import goat_chat
from test_cli import GOAT, embedded_redis_pids, goat_env, servers_left
from nodes.state import turn_input
from test_graph import NOW, make_runner, with_model
from test_retrieval import load
from memory.facade import Memory, measurement_hooks


def echo(body: dict) -> str:
    """The fake model answers each message with a reply naming it, so order shows in L2."""
    return "re: " + body["messages"][-1]["content"]


# ---- ordering ----------------------------------------------------------------------


async def test_a_burst_to_one_chat_is_answered_in_order_while_other_chats_interleave(settings, embeddings):
    with FakeOpenAI(responder=echo) as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await runner.services.memory.connect(warm=True)
            sent: dict[str, list[str]] = {"busy": [], "quiet-a": [], "quiet-b": []}
            tasks = []
            for i in range(10):  # ten messages without waiting for a reply, two other chats in between
                for chat_id in ("busy", "quiet-a", "quiet-b") if i % 3 == 0 else ("busy",):
                    text = f"{chat_id} message {i}"
                    sent[chat_id].append(text)
                    tasks.append(asyncio.create_task(runner.run(chat_id, text, now=NOW.timestamp() + i)))
            await asyncio.gather(*tasks)
            assert await measurement_hooks(runner.services.memory).settle() == 0  # L3 is written behind the replies

            for chat_id, messages in sent.items():
                completed, working, _ = await runner.services.memory.working(chat_id, 100)
                assert completed == len(messages)
                assert [m["content"] for m in working] == [t for m in messages for t in (m, f"re: {m}")]
                store = await runner.services.memory._backends.l3.episodic()
                archived = store.get_by_ids([chat_id], [archive_id(chat_id, n) for n in range(1, 20)])
                assert sorted(e["content"] for e in archived) == sorted(
                    f"user: {m}\nassistant: re: {m}" for m in messages)
            assert (await runner.services.memory._backends.redis.chat_locks()).held_locally() == 0
        finally:
            await runner.aclose()


@pytest.mark.slow
async def test_fifty_chats_of_twenty_turns_at_once_are_each_saved_and_archived_once(settings, embeddings):
    """50 concurrent chats × 20 turns against a scripted model — every turn saved and
    archived exactly once, none lost, none crossed between chats (the archive written behind
    the replies, while later turns run)."""
    chats = [f"crowd-{n:02d}" for n in range(50)]
    with FakeOpenAI(responder=echo) as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await runner.services.memory.connect(warm=True)

            async def converse(chat_id: str) -> None:
                for turn in range(1, 21):
                    await runner.run(chat_id, f"{chat_id} says {turn}", now=NOW.timestamp() + turn)

            await asyncio.gather(*(converse(chat_id) for chat_id in chats))
            memory = runner.services.memory
            assert await measurement_hooks(memory).settle() == 0
            store = await memory._backends.l3.episodic()
            for chat_id in chats:
                said = [f"{chat_id} says {turn}" for turn in range(1, 21)]
                completed, working, _ = await memory.working(chat_id, 100)
                assert completed == 20
                assert [m["content"] for m in working] == [t for m in said for t in (m, f"re: {m}")]
                assert store.count(chat_id) == 20
                archived = store.get_by_ids([chat_id], [archive_id(chat_id, n) for n in range(1, 21)])
                assert [e["content"] for e in sorted(archived, key=lambda e: e["metadata"]["turn"])] == [
                    f"user: {m}\nassistant: re: {m}" for m in said]
            assert len(fake.requests) == 1000
        finally:
            await runner.aclose()


# ---- the turn lock across workers ----------------------------------------------------


@pytest.fixture
async def two_workers(redis_url):
    """Two lock tables on two connections: what two worker processes sharing one Redis have."""
    clients = [redis.asyncio.from_url(redis_url) for _ in range(2)]
    prefix = f"lock-test-{os.urandom(4).hex()}"
    yield [ChatLocks(client, prefix, lease_seconds=0.5) for client in clients], clients[0], prefix
    for client in clients:
        await client.aclose()


async def test_a_chat_held_by_one_worker_waits_in_the_other(two_workers):
    (first, second), client, prefix = two_workers
    entered = []

    async def take(locks: ChatLocks, name: str) -> None:
        async with locks.hold("chat"):
            entered.append(name)

    async with first.hold("chat"):
        waiter = asyncio.create_task(take(second, "second"))
        # Longer than the lease: the holder renews it, so the other worker keeps waiting.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), timeout=1.2)
        assert entered == [] and await client.pttl(f"{prefix}:lock:{{chat}}") > 0
    await waiter
    assert entered == ["second"]
    assert not await client.exists(f"{prefix}:lock:{{chat}}")


async def test_a_dead_workers_lock_expires(two_workers):
    (_, second), client, prefix = two_workers
    key = f"{prefix}:lock:{{chat}}"
    await client.set(key, "a worker that died mid-turn", px=300)  # nobody renews it

    async with second.hold("chat"):
        assert (await client.get(key)) != b"a worker that died mid-turn"
    async with second.hold("another chat"):  # different chats never wait for each other
        async with second.hold("a third chat"):
            pass


@pytest.mark.timeout(60)  # before the fix it hung here
async def test_a_turn_ends_when_its_lease_renewal_swallows_the_cancellation(redis_url):
    """Python 3.11's wait_for inside redis-py drops a cancellation that lands as a command
    completes; the lease's renewals stop anyway, so the turn's end is not held up for good."""
    client = redis.asyncio.Redis(connection_pool=waiting_pool(redis_url))  # as the stores connect
    locks = ChatLocks(client, f"lock-test-{os.urandom(4).hex()}", lease_seconds=0.003)  # renewed every ms
    try:
        for turn in range(300):
            async with locks.hold("chat"):
                for _ in range(20):  # the turn's own calls, while renewals run
                    await client.get("x")
        assert locks.held_locally() == 0
    finally:
        await client.aclose()


# ---- the outbox ----------------------------------------------------------------------


async def test_a_close_asked_for_as_the_archiver_starts_a_write_ends_it_once_that_write_is_done(
        settings, embeddings, monkeypatch):
    """The archiver's write clears its wake-up (what woke it is being written): a close asked for
    just before (while the archiver waits for a moment between turns) must still stop it once that
    write ends, not leave it waiting until closing gives up on it (30 s) and cancels it."""
    memory = Memory(settings, embeddings=embeddings)
    archive = memory._archiver
    waiting, release = asyncio.Event(), asyncio.Event()

    async def between_turns() -> None:
        waiting.set()
        await release.wait()

    # Held from the archiver's first cycle (connecting may start one): a cycle already past this
    # wait would take the wake-up below for its own write, and never come here.
    monkeypatch.setattr(archive, "_between_turns", between_turns)
    await memory.connect()
    archive.wake()
    archiver = archive._archiver
    await waiting.wait()  # woken, about to write
    archive._archive_wanted.clear()
    closing = asyncio.ensure_future(memory.aclose())
    await archive._archive_wanted.wait()  # the close has asked the archiver to stop, and waits for it
    release.set()
    await closing
    assert archiver.done() and not archiver.cancelled()  # it stopped by itself once its write ended


async def test_turns_archived_while_chroma_is_down_are_written_once_when_it_is_back(settings, embeddings, tmp_path):
    port = free_port()
    chroma_dir = tmp_path / "chroma-server"
    with FakeOpenAI(responder=echo) as fake:
        with chroma_server(chroma_dir, port) as server:
            configured = with_model(settings, fake).model_copy(
                update={"chroma": settings.chroma.model_copy(update={"url": server.url})})
            runner = make_runner(configured, embeddings)
            try:
                await runner.run("c", "first, while chroma is up", now=NOW.timestamp())
                assert await measurement_hooks(runner.services.memory).settle() == 0  # written behind the reply
            except BaseException:
                await runner.aclose()
                raise
        try:
            down = await runner.run("c", "second, chroma is down", now=NOW.timestamp() + 1)
            assert down["reply"] == "re: second, chroma is down"  # answered without L3
            assert "failed" in down["degraded"]["prefetch"]
            assert down["degraded"]["archive"] == "L3 unreachable: queued in the outbox (1 waiting)"
            assert await measurement_hooks(runner.services.memory).settle() == 1  # still down: it waits
            with chroma_server(chroma_dir, port):
                back = await runner.run("c", "third, chroma is back", now=NOW.timestamp() + 2)
                assert back["degraded"]["archive"] == ""
                assert await measurement_hooks(runner.services.memory).settle() == 0
                store = await runner.services.memory._backends.l3.episodic()
                archived = store.get_by_ids(["c"], [archive_id("c", n) for n in range(1, 10)])
                assert sorted(e["id"] for e in archived) == [archive_id("c", n) for n in (1, 2, 3)]
                assert store.count("c") == 3
                [second] = [e for e in archived if e["id"] == archive_id("c", 2)]
                assert second["content"] == "user: second, chroma is down\nassistant: re: second, chroma is down"
        finally:
            await runner.aclose()


async def test_a_word_index_behind_a_chroma_server_is_caught_up_from_it(settings, embeddings, chroma_url, tmp_path):
    # An archive older than its word index (a new Redis, an index dropped): the catch-up reads
    # the chat's turns back from the Chroma server.
    chat = f"catch-up-{os.urandom(4).hex()}"
    memory = Memory(settings.model_copy(update={"chroma": settings.chroma.model_copy(update={"url": chroma_url})}),
                    embeddings=embeddings)
    try:
        history = [(40 - i / 10, f"ticket-{4000 + i} is about topic {i % 7}", "noted") for i in range(150)]
        await load(memory, tmp_path, chat, history)
        index = await memory._backends.redis.lexical_index()
        await memory._archiver.indexer.forget_index(chat)
        assert await index.indexed_turns(chat) == 0
        await memory._archiver.indexer.sync_index([chat])
        assert await index.indexed_turns(chat) == 150
        found = await memory._finding.reads.lexical_search([chat], "ticket-4149", k=3, max_df_share=0.1)
        assert found[0][0]["id"] == archive_id(chat, 150)
        assert (await memory._backends.l3.episodic()).count(chat) == 150  # nothing written twice
    finally:
        await memory.aclose()


# ---- Redis down at start ----------------------------------------------------------------


def test_goat_chat_with_redis_down_says_which_and_what_to_do(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = goat_env(tmp_path / "data", GOAT_REDIS_URL=url, GOAT_MODEL="fake-model", OPENAI_API_KEY="sk-never-asked")
    result = goat_chat(["hello"], env=env, cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"goat: redis is unavailable: cannot reach {url} (")
    assert line.endswith("— start it or fix GOAT_REDIS_URL")


# ---- Redis lost mid-turn ---------------------------------------------------------------


async def test_redis_lost_mid_turn_fails_the_turn_cleanly_and_the_next_one_works(
        tmp_path: Path, start_embedded, embeddings):
    server = start_embedded(tmp_path / "redis")
    base = Settings(data_dir=tmp_path, redis={"url": server.url})

    # Held while the turn fails, the start lock keeps the server's keeper from starting it again.
    start_lock = open(tmp_path / "redis" / "redis" / "server.lock", "w")

    def lose_redis_then_answer(body: dict) -> str:
        # While the model answers, Redis shuts down (persisting what it has): the reply's
        # checkpoint and the save find it gone. (Its starting thread reaps it: poll, not waitpid.)
        fcntl.flock(start_lock, fcntl.LOCK_EX)
        with suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGTERM)
        wait_for(lambda: not answers_ping(server.url), "redis to shut down")
        return "an answer nobody will see saved"

    with FakeOpenAI(responder=echo) as fake:
        runner = make_runner(with_model(base, fake), embeddings)
        try:
            await runner.run("c", "first turn", now=NOW.timestamp())
            fake.responder = lose_redis_then_answer
            with pytest.raises(Exception) as failure:
                await runner.run("c", "second turn, redis dies", now=NOW.timestamp() + 1)
            assert "redis" in f"{type(failure.value).__module__} {failure.value}".lower()
            [failed] = [json.loads(line) for line in (tmp_path / "logs" / "turns.jsonl").read_text().splitlines()
                        if json.loads(line)["event"] == "turn_failed"]
            assert failed["chat_id"] == "c" and type(failure.value).__name__ in failed["error"]

            start_lock.close()  # Redis comes back, with what it had persisted
            start_embedded(tmp_path / "redis")
            # The failed turn's lease came back with it: short, and released by this process's
            # next turn of the chat rather than waited out (here it would last ten minutes).
            lease = "goat:lock:{c}"
            async with redis.asyncio.from_url(server.url) as client:
                assert 0 < await client.pttl(lease) <= base.redis.chat_lock_seconds * 1000 <= 10_000
                await client.pexpire(lease, 600_000)
            fake.responder = echo
            third = await asyncio.wait_for(runner.run("c", "third turn", now=NOW.timestamp() + 2), 120)
            assert third["turn"] == 2  # the failed turn left no number behind
            lines = [json.loads(line) for line in (tmp_path / "logs" / "turns.jsonl").read_text().splitlines()]
            assert [line["event"] for line in lines] == ["turn", "turn_failed", "turn"]
            assert all(0 <= line["chat_wait_ms"] <= line["wall_ms"] for line in lines)  # the wait is recorded
            completed, working, _ = await runner.services.memory.working("c", 100)
            assert completed == 2
            assert [m["content"] for m in working] == ["first turn", "re: first turn", "third turn", "re: third turn"]
            assert await measurement_hooks(runner.services.memory).settle() == 0
            store = await runner.services.memory._backends.l3.episodic()
            assert store.count("c") == 2
        finally:
            await runner.aclose()


# ---- a process killed between reply and archive ------------------------------------------


async def crash_after_the_reply(settings: Settings, embeddings, chat_id: str) -> None:
    """A turn of ``chat_id`` stopped where a killed process stops: its reply checkpointed, not
    saved or archived (the process that ran it is gone)."""
    first = make_runner(settings, embeddings)
    try:
        graph = await first.graph()
        assert not await first.services.memory._journal.begin(chat_id)
        await graph.ainvoke(turn_input(chat_id, "said just before the crash", now=NOW.timestamp()),
                            {"configurable": {"thread_id": chat_id}}, context=first.context(),
                            interrupt_before=["save"], durability="sync")
    finally:
        await first.aclose()


async def test_a_turn_stopped_after_its_reply_is_saved_and_archived_once_by_the_next_start(settings, embeddings):
    """The checkpoint path of crash recovery, step by step: the turn stops where a killed process
    would (its reply checkpointed, save and archive not run); a new process completes it."""
    with FakeOpenAI(responder=echo) as fake:
        configured = with_model(settings, fake)
        await crash_after_the_reply(configured, embeddings, "c")
        restarted = make_runner(configured, embeddings)
        try:
            assert await restarted.recover() == ["c"]
            memory = restarted.services.memory
            assert await measurement_hooks(memory).settle() == 0
            completed, working, _ = await memory.working("c", 10)
            assert completed == 1
            assert [m["content"] for m in working] == ["said just before the crash", "re: said just before the crash"]
            store = await memory._backends.l3.episodic()
            assert [e["id"] for e in store.get_by_ids(["c"], [archive_id("c", n) for n in (1, 2)])] == [
                archive_id("c", 1)]
            assert await memory._journal.unfinished() == []
            assert await restarted.recover() == []  # nothing is done twice
        finally:
            await restarted.aclose()


def l3_ids(client: chromadb.HttpClient, chat_id: str) -> list[str]:
    try:
        return client.get_collection(collection_name(chat_id)).get()["ids"]
    except NotFoundError:
        return []


@pytest.mark.slow
def test_a_goat_killed_between_reply_and_archive_finishes_the_turn_on_restart(tmp_path, redis_url):
    chat_id = f"crash-{os.urandom(4).hex()}"
    client = redis.Redis.from_url(redis_url)
    with FakeOpenAI(responder=echo) as fake, chroma_server(tmp_path / "chroma") as chroma:
        chroma_client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma.url.rsplit(":", 1)[1]))
        env = goat_env(tmp_path / "data", GOAT_REDIS_URL=redis_url, GOAT_CHROMA_URL=chroma.url,
                       GOAT_MODEL="fake-model", OPENAI_API_KEY="test-key", OPENAI_BASE_URL=fake.base_url,
                       GOAT_PREFETCH__TIMEOUT="0.5", GOAT_REDIS__CHAT_LOCK_SECONDS="2")
        process = subprocess.Popen([str(GOAT), "chat", "--chat", chat_id], env=env, cwd=tmp_path, text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            process.stdin.write("first message\n")
            process.stdin.flush()
            assert process.stdout.readline() == "re: first message\n"
            wait_for(lambda: l3_ids(chroma_client, chat_id) == [archive_id(chat_id, 1)], "turn 1 in L3")
            os.kill(chroma.process.pid, signal.SIGSTOP)  # from here, L3 writes hang
            process.stdin.write("second message\n")
            process.stdin.flush()
            # The reply is produced and saved to L2; its L3 write (by the archive node or, when
            # that ran, by the archiver behind it) cannot land: kill now.
            wait_for(lambda: client.get(f"goat:turns:{{{chat_id}}}") == b"2", "turn 2 in L2")
            process.kill()
            process.wait()
        finally:
            os.kill(chroma.process.pid, signal.SIGCONT)
            if process.poll() is None:
                process.kill()
        collection = chroma_client.get_collection(collection_name(chat_id))
        assert collection.get()["ids"] == [archive_id(chat_id, 1)]  # turn 2 never reached L3

        restarted = goat_chat(["third message"], "--chat", chat_id, env=env, cwd=tmp_path)
        assert restarted.returncode == 0, restarted.stderr
        assert restarted.stdout == "re: third message\n"

        assert sorted(collection.get()["ids"]) == [archive_id(chat_id, n) for n in (1, 2, 3)]
        [second] = collection.get(ids=[archive_id(chat_id, 2)])["documents"]
        assert second == "user: second message\nassistant: re: second message"
        l2 = [json.loads(m)["content"] for m in client.lrange(f"goat:l2:{{{chat_id}}}", 0, -1)]
        assert l2 == ["first message", "re: first message", "second message", "re: second message",
                      "third message", "re: third message"]
        assert not client.sismember("goat:turns_in_flight", chat_id)
    client.close()


def test_a_killed_goat_leaves_no_embedded_redis_behind(tmp_path: Path) -> None:
    """`goat chat` on the default data folder (.goat where it runs), SIGKILLed mid-session: its
    redis-server ends with it instead of holding the data folder for good."""
    data_dir = tmp_path / ".goat"
    with FakeOpenAI(responder=echo) as fake:
        env = goat_env(data_dir, GOAT_MODEL="fake-model", OPENAI_API_KEY="sk-fake-123456", OPENAI_BASE_URL=fake.base_url)
        del env["GOAT_DATA_DIR"]
        chat = subprocess.Popen([str(GOAT), "chat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env, cwd=tmp_path, text=True)
        try:
            chat.stdin.write("Hello there.\n")
            chat.stdin.flush()
            assert "re: Hello there." in chat.stdout.readline()  # a turn ran: its Redis is up
            assert len(embedded_redis_pids(data_dir)) == 1
        finally:
            chat.kill()
            chat.wait()
    try:
        wait_for(lambda: not embedded_redis_pids(data_dir), "the killed goat's redis-server to end")
    finally:
        servers_left(data_dir)
