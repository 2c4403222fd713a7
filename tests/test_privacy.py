"""A user's data: `goat export` hands it over, `goat forget-user` deletes it from Redis and
Chroma (facts, their chats, their part of a shared chat, cached searches, word index, graph
checkpoints) and leaves everyone else's whole. Real Redis (embedded, and a Redis Cluster) and
Chroma, the installed console script, a live turn through the graph with the loopback model."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import chromadb
import pytest

from conftest import chroma_server, free_port, memorys_redis
from memory.facade import measurement_hooks
from bench.support.fakes import FakeOpenAI
from graph.settings import Settings, load_settings
from memory.errors import ForgetUnfinished
from memory.encoders.embeddings import LocalEmbeddings
from test_cli import goat, goat_env, ok
from test_graph import make_runner, with_model

pytestmark = pytest.mark.slow

ANA, BOB = "ana-7731", "bob-4420"
ANA_SAYS = ["My passport number is AX-99213.", "I am allergic to penicillin.", "Grandma's recipe uses saffron-77."]
TRANSCRIPT = [
    ("ana-chat", ANA, ANA_SAYS[0], "Noted."), ("ana-chat", ANA, ANA_SAYS[1], "Understood."),
    ("bob-chat", BOB, "My bike lock code is 5512.", "Saved."),
    ("family", ANA, ANA_SAYS[2], "Sounds delicious."), ("family", BOB, "I will bring the cake on Sunday.", "Great."),
]
ANA_LIVE = "Remember that my dentist is Dr. Quillfeather."


def transcript(tmp_path: Path) -> Path:
    path = tmp_path / "history.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for n, (chat, user, said, reply) in enumerate(TRANSCRIPT):
            for role, text in (("user", said), ("assistant", reply)):
                out.write(json.dumps({"chat_id": chat, "user_id": user, "role": role, "content": text,
                                      "timestamp": 1_760_000_000 + 60 * n}) + "\n")
    return path


async def seed(settings: Settings, embeddings: LocalEmbeddings) -> None:
    """Facts of both, and a live turn of Ana's in the shared chat (L2 with her id, a checkpoint)."""
    with FakeOpenAI() as fake:
        fake.reply("I will remember your dentist.")
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            memory = runner.services.memory
            await memory.scope(ANA, ANA).remember("blood_type", "AB-negative")
            await memory.scope(BOB, BOB).remember("team", "Porto")
            await runner.run("family", ANA_LIVE, user_id=ANA)
            assert await measurement_hooks(memory).settle() == 0
        finally:
            await runner.aclose()


async def redis_dump(settings: Settings) -> dict[bytes, bytes]:
    """Every key of the data folder's Redis, with its value rendered as bytes."""
    from memory.facade import Memory

    memory = Memory(settings)
    try:
        async with memorys_redis(memory) as redis:
            dump = {}
            async for key in redis.scan_iter(count=1000):
                kind = (await redis.type(key)).decode()
                value = {"string": lambda: redis.get(key), "list": lambda: redis.lrange(key, 0, -1),
                         "hash": lambda: redis.hgetall(key), "set": lambda: redis.smembers(key),
                         "zset": lambda: redis.zrange(key, 0, -1)}[kind]
                dump[key] = repr(await value()).encode()
        return dump
    finally:
        await memory.aclose()


def chroma_dump(data_dir: Path) -> list[tuple[str, dict]]:
    client = chromadb.PersistentClient(path=str(data_dir / "chroma"), settings=chromadb.Settings(anonymized_telemetry=False))
    return [(document, metadata) for collection in client.list_collections()
            for document, metadata in zip(*(lambda got: (got["documents"], got["metadatas"]))(
                client.get_collection(collection.name).get(include=["documents", "metadatas"])))]


@pytest.fixture(params=["embedded", "cluster"])
def redis_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Where the goat commands keep Redis: the data folder's embedded server, or a Redis Cluster."""
    if request.param == "embedded":
        return {}
    return {"GOAT_REDIS_URL": request.getfixturevalue("cluster_url"), "GOAT_REDIS__CLUSTER": "true"}


def test_export_then_forget_a_user_and_nothing_of_them_is_left(
    tmp_path: Path, embeddings: LocalEmbeddings, redis_env: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    env = goat_env(data_dir, **redis_env)
    ok(goat("import", transcript(tmp_path), env=env, cwd=tmp_path))
    settings = load_settings(environ=env)
    asyncio.run(seed(settings, embeddings))

    exported = json.loads(ok(goat("export", "--user", ANA, env=env, cwd=tmp_path)).stdout)
    assert exported["user_id"] == ANA and exported["facts"] == {"blood_type": "AB-negative"}
    chats = {chat["chat_id"]: chat for chat in exported["chats"]}
    assert set(chats) == {"ana-chat", "family"}
    assert [m["content"] for m in chats["ana-chat"]["l2"]] == [ANA_SAYS[0], "Noted.", ANA_SAYS[1], "Understood."]
    assert [e["content"] for e in chats["ana-chat"]["l3"]] == [
        f"user: {ANA_SAYS[0]}\nassistant: Noted.", f"user: {ANA_SAYS[1]}\nassistant: Understood."]
    family = json.dumps(chats["family"])
    assert ANA_SAYS[2] in family and ANA_LIVE in family and "cake" not in family  # her part of the shared chat
    only_family = json.loads(ok(goat("export", "--user", ANA, "--chat", "family", env=env, cwd=tmp_path)).stdout)
    assert only_family["chats"] == [chats["family"]]
    # A chat she never wrote to is not hers to export, not even as an empty one.
    assert json.loads(ok(goat("export", "--user", ANA, "--chat", "bob-chat", env=env, cwd=tmp_path)).stdout)["chats"] == []

    refused = goat("forget-user", ANA, env=env, cwd=tmp_path)  # no terminal to confirm on
    assert refused.returncode == 2 and "--yes" in refused.stderr
    forgot = ok(goat("forget-user", ANA, "--yes", env=env, cwd=tmp_path))
    assert "1 fact(s); 1 chat(s) deleted whole (ana-chat); from 1 shared chat(s), 2 L3 entr(ies) and 4 L2 message(s)" \
        in forgot.stdout

    traces = [ANA, *ANA_SAYS, "AX-99213", "penicillin", "saffron", "Quillfeather", "AB-negative"]
    dump = asyncio.run(redis_dump(settings))
    for key, value in dump.items():
        for trace in traces:
            assert trace.encode() not in key and trace.encode() not in value, (trace, key)
    turn_log = data_dir / "logs" / "turns.jsonl"
    assert turn_log.exists() and ANA not in turn_log.read_text()
    stored = chroma_dump(data_dir)
    for document, metadata in stored:
        assert metadata.get("user_id") != ANA and not any(trace in document for trace in traces), document
    # Bob's data is whole: his chat, his part of the shared one, his fact.
    assert sorted(document for document, _ in stored) == [
        "user: I will bring the cake on Sunday.\nassistant: Great.", "user: My bike lock code is 5512.\nassistant: Saved."]
    bob = json.loads(ok(goat("export", "--user", BOB, env=env, cwd=tmp_path)).stdout)
    assert bob["facts"] == {"team": "Porto"}
    assert {chat["chat_id"]: [m["content"] for m in chat["l2"]] for chat in bob["chats"]} == {
        "bob-chat": ["My bike lock code is 5512.", "Saved."], "family": ["I will bring the cake on Sunday.", "Great."]}
    # The shared chat's word index was rebuilt from what remains: Bob's turn is found by its words.
    assert asyncio.run(found_by_words(settings, "family", "cake Sunday saffron recipe")) == [
        "user: I will bring the cake on Sunday.\nassistant: Great."]


async def found_by_words(settings: Settings, chat_id: str, words: str) -> list[str]:
    from memory.facade import Memory

    memory = Memory(settings)
    try:
        return [hit["content"] for hit, _, _ in await memory._finding.reads.lexical_search([chat_id], words, 10, 1.0)]
    finally:
        await memory.aclose()


# ---- forget against turns in flight ---------------------------------------------------------


def until_waiting_or_done(runner, chat_id: str, forget) -> None:
    """From the model's thread: until the forget started meanwhile has finished, or waits for
    the turn holding ``chat_id`` (two holders of it: the turn and the forget)."""
    locks = runner.services.memory._backends.redis._chat_locks
    while not forget.done() and locks.holders(chat_id) < 2:
        time.sleep(0.005)  # polling another thread's progress: there is nothing to await here


async def test_a_turn_in_flight_when_its_user_is_forgotten_leaves_nothing_of_them(settings, embeddings):
    """Ana is forgotten while the model writes her answer: her turn finishes first, then is
    forgotten with the rest; nothing of hers is written back after."""
    loop = asyncio.get_running_loop()
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await runner.run("ana-chat", "My passport number is AX-99213.", user_id=ANA)
            forgets = []

            def forget_meanwhile(_: dict) -> str:
                forgets.append(asyncio.run_coroutine_threadsafe(runner.forget_user(ANA), loop))
                until_waiting_or_done(runner, "ana-chat", forgets[0])
                return "Noted, your new passport AX-55555."

            fake.responder = forget_meanwhile
            await runner.run("ana-chat", "My new passport is AX-55555.", user_id=ANA)
            forgotten = await asyncio.wrap_future(forgets[0])
            memory = runner.services.memory
            assert forgotten.chats == ["ana-chat"]
            assert await measurement_hooks(memory).settle() == 0
            assert (await memory.working("ana-chat", 100))[:2] == (0, [])
            store = await memory._backends.l3.episodic()
            assert store.count("ana-chat") == 0 and await memory.admin.unfinished_forgets() == []
            assert (await runner.last_state("ana-chat")) == {}
        finally:
            await runner.aclose()


async def test_forgetting_one_user_keeps_another_users_turn_in_flight_in_a_shared_chat(settings, embeddings):
    """Bob's turn in the family chat has its reply when Ana is forgotten: it is saved and
    archived whole (before, her forget deleted the chat's checkpoints under it)."""
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            fake.reply("Noted.")
            await runner.run("family", ANA_SAYS[2], user_id=ANA)
            fake.reply("Great, cake it is.")
            forgets = []

            async def forget_ana(reply: str) -> None:  # between Bob's reply and its save
                forgets.append(asyncio.ensure_future(runner.forget_user(ANA)))
                await asyncio.to_thread(until_waiting_or_done, runner, "family", forgets[0])

            bob = await runner.run("family", "I will bring the cake on Sunday.", user_id=BOB, on_reply=forget_ana)
            forgotten = await forgets[0]
            assert forgotten.shared == ["family"] and bob["reply"] == "Great, cake it is."
            memory = runner.services.memory
            assert await measurement_hooks(memory).settle() == 0
            _, working, _ = await memory.working("family", 100)
            assert [m["content"] for m in working] == ["I will bring the cake on Sunday.", "Great, cake it is."]
            store = await memory._backends.l3.episodic()
            assert [e["content"] for e in store.entries("family", None)] == [
                "user: I will bring the cake on Sunday.\nassistant: Great, cake it is."]
        finally:
            await runner.aclose()


async def test_a_forget_cut_short_by_chroma_is_recorded_and_finished_by_the_next(settings, embeddings, tmp_path):
    port, chroma_dir = free_port(), tmp_path / "chroma-server"
    with FakeOpenAI() as fake:
        configured = with_model(settings, fake).model_copy(
            update={"chroma": settings.chroma.model_copy(update={"url": f"http://127.0.0.1:{port}"})})
        runner = make_runner(configured, embeddings)
        try:
            with chroma_server(chroma_dir, port):
                await runner.services.memory.scope(ANA, ANA).remember("blood_type", "AB-negative")
                fake.reply("Noted.")
                await runner.run("ana-chat", ANA_SAYS[1], user_id=ANA)
                assert await measurement_hooks(runner.services.memory).settle() == 0
            with pytest.raises(ForgetUnfinished) as cut:  # Chroma is gone
                await runner.forget_user(ANA)
            assert f"goat forget-user {ANA}" in str(cut.value) and "chroma" in str(cut.value)
            assert await runner.services.memory.admin.unfinished_forgets() == [ANA]
        finally:
            await runner.aclose()
        with chroma_server(chroma_dir, port):
            restarted = make_runner(configured, embeddings)  # its start finishes what was recorded
            try:
                await restarted.recover()
                memory = restarted.services.memory
                assert await memory.admin.unfinished_forgets() == []
                assert await memory.scope(ANA, ANA).facts() == {} and (await memory.working("ana-chat", 10))[:2] == (0, [])
                store = await memory._backends.l3.episodic()
                assert store.count("ana-chat") == 0
            finally:
                await restarted.aclose()
