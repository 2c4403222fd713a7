"""Forgotten means gone from disk: after each kind of forget (`goat forget-user`, `/forget` of a fact,
MCP `delete_memory`, `/reset`), the forgotten text is in no file of the data folder, embedded Redis
and Chroma alike (their append-only file, snapshot, write-ahead log, freed pages…); with a Redis
server and a Chroma server, what the README promises there. Real servers, the real encoder; the
model is the loopback fake."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from pathlib import Path

import chromadb
import pytest
from chromadb.api.models.Collection import Collection

from bot import commands
from bot.commands import Asker
from bot.mcp_server import MemoryServer
from conftest import memorys_redis, system_redis, wait_for
from memory.facade import measurement_hooks
from bench.support.fakes import FakeOpenAI
from graph.checkpoint import DEFAULT_PREFIX
from graph.runner import TurnRunner
from graph.settings import Settings, load_settings
from memory.encoders.embeddings import LocalEmbeddings
from memory.stores.erasure import ReadersWriterLock
from memory.turns import ImportedTurn, archive_id
from test_cli import goat, goat_env, ok
from test_graph import make_runner, with_model
from test_mcp import data, stdio_session

pytestmark = pytest.mark.slow

MARKER = "zebracorn-4711"  # the forgotten text
KEPT = "quokkaferry-2208"  # someone else's, or what the forget keeps: still there after
ANA, BOB = "ana-5150", "bob-3344"


def files_holding(folder: Path, text: str = MARKER) -> list[str]:
    """The files under ``folder`` whose bytes hold ``text`` (UTF-8), relative to it."""
    needle = text.encode()
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")
                  if path.is_file() and needle in path.read_bytes())


def write_where_hnswlib_sets_nothing(chroma: Path, text: str = MARKER) -> list[str]:
    """Write ``text`` over the bytes hnswlib writes without setting them, in every vector index
    under ``chroma``: each vector's length (GOAT's spaces, l2 and ip, keep none) and the slots past
    the last entry. That is where its files held fragments of whatever the process had freed (a
    repeated word was in ``length.bin`` in 5 of 6 runs). Returns the files written, as
    :func:`files_holding` names them."""
    written = []
    for header in chroma.glob("*/header.bin"):
        _, _, _, entries, entry_bytes = struct.unpack("<iQQQQ", header.read_bytes()[:36])
        for name, start in (("length.bin", 0), ("data_level0.bin", entries * entry_bytes)):
            path = header.parent / name
            unset = path.stat().st_size - start
            if unset >= len(text):
                with path.open("r+b") as file:
                    file.seek(start)
                    file.write((text.encode() * unset)[:unset])
                written.append(str(path.relative_to(chroma.parent)))
    return sorted(written)


def exchange(user_id: str, key: str, said: str, at: int) -> ImportedTurn:
    return ImportedTurn(key, user_id, tuple({"role": role, "content": text, "timestamp": at, "user_id": user_id}
                                            for role, text in (("user", said), ("assistant", "Noted."))))


def test_forget_user_leaves_nothing_of_theirs_in_any_file(tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    """Ana's own chat, her part of a shared chat (imported, and a live turn: a checkpoint), her fact
    and a snapshot Redis wrote before (as servers of earlier versions did): all gone from disk."""
    data_dir = tmp_path / "data"
    env = goat_env(data_dir)
    transcript = tmp_path / "history.jsonl"
    lines = [("ana-chat", ANA, f"My locker code is {MARKER}."), ("family", ANA, f"Grandma's {MARKER} recipe."),
             ("family", BOB, f"My bike is a {KEPT}.")]
    transcript.write_text("".join(
        json.dumps({"chat_id": chat, "user_id": user, "role": role, "content": text, "timestamp": 1_760_000_000 + n})
        + "\n" for n, (chat, user, said) in enumerate(lines) for role, text in (("user", said), ("assistant", "Ok."))))
    ok(goat("import", transcript, env=env, cwd=tmp_path))

    async def live_turn_and_snapshot() -> None:
        with FakeOpenAI() as fake:
            fake.reply(f"I will remember {MARKER}.")
            runner = make_runner(with_model(load_settings(environ=env), fake), embeddings)
            try:
                await runner.services.memory.scope(ANA, ANA).remember("locker", MARKER)
                await runner.run("family", f"Again: {MARKER}.", user_id=ANA)
                assert await measurement_hooks(runner.services.memory).settle() == 0
                async with memorys_redis(runner.services.memory) as redis:
                    await redis.save()
            finally:
                await runner.aclose()

    asyncio.run(live_turn_and_snapshot())
    assert {"redis/appendonly.aof", "redis/dump.rdb", "chroma/chroma.sqlite3"} <= set(files_holding(data_dir))

    ok(goat("forget-user", ANA, "--yes", env=env, cwd=tmp_path))
    assert files_holding(data_dir) == []
    # Bob's turn is kept, and found where it is: the search sees through the rewritten files.
    assert {"redis/appendonly.aof", "chroma/chroma.sqlite3"} <= set(files_holding(data_dir, KEPT))
    assert files_holding(data_dir, ANA) == []  # nor is her id anywhere


async def test_forget_of_a_fact_leaves_it_in_no_file(tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    data_dir = tmp_path / "data"
    runner = make_runner(Settings(data_dir=data_dir), embeddings)  # embedded Redis and Chroma
    try:
        asker = Asker(runner, "ana-chat", ANA)
        assert await commands.remember(asker, f"locker={MARKER}") == f"Noted: locker = {MARKER}"
        assert await commands.remember(asker, f"bike={KEPT}") == f"Noted: bike = {KEPT}"
        wait_for(lambda: files_holding(data_dir) == ["redis/appendonly.aof"], "the fact in Redis's append-only file")
        assert await commands.forget(asker, "locker") == "Forgot locker."
        assert files_holding(data_dir) == []  # when the command answers, with Redis still running
        assert files_holding(data_dir, KEPT) == ["redis/appendonly.aof"]
    finally:
        await runner.aclose()
    assert files_holding(data_dir) == []


async def test_a_forget_zeroes_what_hnswlib_wrote_without_setting_it_and_the_index_still_answers(
        tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    data_dir = tmp_path / "data"
    env = goat_env(data_dir)
    transcript = tmp_path / "history.jsonl"
    transcript.write_text("".join(
        json.dumps({"chat_id": chat, "user_id": user, "role": role, "content": text, "timestamp": 1_760_000_000 + n})
        + "\n" for n, (chat, user, said) in enumerate([("ana-chat", ANA, "My locker is by the gym."),
                                                         ("family", BOB, f"My bike is a {KEPT}.")])
        for role, text in (("user", said), ("assistant", "Ok."))))
    ok(goat("import", transcript, env=env, cwd=tmp_path))
    stray = write_where_hnswlib_sets_nothing(data_dir / "chroma")
    assert len(stray) == 4 and set(stray) <= set(files_holding(data_dir)), stray  # two chats, two files each

    ok(goat("forget-user", ANA, "--yes", env=env, cwd=tmp_path))
    assert files_holding(data_dir) == []
    runner = make_runner(Settings(data_dir=data_dir), embeddings)
    try:  # Bob's chat is read from the files just zeroed
        assert KEPT in await commands.search(Asker(runner, "family", BOB), "bike")
    finally:
        await runner.aclose()


async def test_a_process_zeroes_what_hnswlib_wrote_without_setting_it_when_it_closes(
        tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    """What the index writes after a forget may hold a fragment of the forgotten text that the
    process freed before: the process that wrote it zeroes it when it closes."""
    data_dir = tmp_path / "data"
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(Settings(data_dir=data_dir), fake), embeddings)
        try:
            await runner.run("ana-chat", "My locker is by the gym.", user_id=ANA)
            assert await measurement_hooks(runner.services.memory).settle() == 0
            assert write_where_hnswlib_sets_nothing(data_dir / "chroma") == [
                str(path.relative_to(data_dir)) for path in sorted((data_dir / "chroma").glob("*/*.bin"))
                if path.name in ("data_level0.bin", "length.bin")]
        finally:
            await runner.aclose()
    assert files_holding(data_dir) == []


def test_in_the_default_data_folder_an_import_and_a_forget_end_cleanly_and_erase(tmp_path: Path) -> None:
    """With nothing set, the data folder is ``.goat`` under the working directory, a relative
    path: the commands that write or forget, and their closing, end without an error, and what
    was forgotten is in no file of it."""
    env = goat_env(tmp_path)
    del env["GOAT_DATA_DIR"]
    transcript = tmp_path / "history.jsonl"
    transcript.write_text("".join(json.dumps({"chat_id": "ana-chat", "user_id": ANA, "role": role, "content": text,
                                              "timestamp": 1_760_000_000}) + "\n"
                                  for role, text in (("user", f"My locker code is {MARKER}."), ("assistant", "Ok."))))
    imported = ok(goat("import", transcript, env=env, cwd=tmp_path))
    assert "Traceback" not in imported.stderr, imported.stderr
    forgotten = ok(goat("forget-user", ANA, "--yes", env=env, cwd=tmp_path))
    assert "Traceback" not in forgotten.stderr, forgotten.stderr
    assert (tmp_path / ".goat" / "chroma").is_dir() and files_holding(tmp_path / ".goat") == []


async def redis_holding(runner: TurnRunner, text: str = MARKER) -> list[str]:
    """The Redis keys whose name or any value (of every type GOAT writes) holds ``text``."""
    needle, holding = text.encode(), []
    async with memorys_redis(runner.services.memory) as redis:
        read = {b"string": lambda key: redis.get(key), b"list": lambda key: redis.lrange(key, 0, -1),
                b"hash": lambda key: redis.hgetall(key), b"set": lambda key: redis.smembers(key),
                b"zset": lambda key: redis.zrange(key, 0, -1), b"none": lambda key: redis.get(key)}  # gone meanwhile
        async for key in redis.scan_iter(count=1000):
            value = await read[await redis.type(key)](key)
            items = [value] if isinstance(value, bytes) else [*value.items()] if isinstance(value, dict) else value or []
            flat = [part for item in items for part in (item if isinstance(item, tuple) else (item,))]
            if needle in key or any(needle in part for part in flat):
                holding.append(key.decode())
    return sorted(holding)


def checkpoint_keys(keys: list[str]) -> list[str]:
    return [key for key in keys if key.startswith(f"{DEFAULT_PREFIX}:")]


def test_holding_alone_gives_up_after_its_timeout_and_those_waiting_to_share_go_on() -> None:
    """The close's zeroing waits for a Chroma call a deadline abandoned, for a while: zeroing
    beside a write could zero its new entries."""
    lock = ReadersWriterLock()
    sharing, release = threading.Event(), threading.Event()

    def share() -> None:
        with lock.shared():
            sharing.set()
            release.wait(60)

    holder = threading.Thread(target=share)
    holder.start()
    assert sharing.wait(60)
    with pytest.raises(TimeoutError), lock.alone(timeout=0.05):
        pass
    with lock.shared():  # not held back by the one that gave up
        pass
    release.set()
    holder.join()
    with lock.alone(timeout=60):
        pass


def leave_the_marker_at_each_index_write(monkeypatch: pytest.MonkeyPatch, chroma: Path) -> list[str]:
    """Have each write of entries to Chroma leave the marker where hnswlib sets nothing, as soon
    as Chroma's write returns (a chat's first write made its vector index, and in a full run of
    the suite that index held a fact forgotten meanwhile). Returns the files written, as writes
    come."""
    written: list[str] = []
    upsert = Collection.upsert

    def upsert_leaving_the_marker(collection: Collection, *args, **kwargs) -> None:
        upsert(collection, *args, **kwargs)
        written.extend(write_where_hnswlib_sets_nothing(chroma))

    monkeypatch.setattr(Collection, "upsert", upsert_leaving_the_marker)
    return written


async def test_forget_of_a_fact_the_last_turn_used_leaves_it_in_no_checkpoint(
        tmp_path: Path, embeddings: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last turns' checkpoints hold the facts and the prompt they read: /forget cuts the fact out
    of them, and so out of Redis's files; /why of the last turn still answers. The process held the
    fact in memory while its archive wrote the vector index: the bytes hnswlib wrote there without
    setting them are zeroed too (a new index held the fact in a full run of the suite), and so are
    those of an index it makes after the forget (a chat's first write), by its archive's write,
    while the process runs on."""
    data_dir = tmp_path / "data"
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(Settings(data_dir=data_dir), fake), embeddings)
        try:
            asker = Asker(runner, "ana-chat", ANA)
            await commands.remember(asker, f"locker={MARKER}")
            await commands.remember(asker, f"bike={KEPT}")
            await runner.run("ana-chat", "What do you know about me?", user_id=ANA)
            await runner.run("ana-chat", "Thanks.", user_id=ANA)
            assert checkpoint_keys(await redis_holding(runner)), "the turns' state holds the fact"
            assert await measurement_hooks(runner.services.memory).settle() == 0
            assert write_where_hnswlib_sets_nothing(data_dir / "chroma")
            assert await commands.forget(asker, "locker") == "Forgot locker."
            assert await redis_holding(runner) == []
            assert files_holding(data_dir) == []
            assert checkpoint_keys(await redis_holding(runner, KEPT))  # the fact kept stays in them
            assert (await runner.last_turn("ana-chat")).diagnosis()["turn"] == 2

            indexes = set((data_dir / "chroma").glob("*/header.bin"))
            written = leave_the_marker_at_each_index_write(monkeypatch, data_dir / "chroma")
            await runner.run("ana-notes", "Let me start a new list.", user_id=ANA)
            assert await measurement_hooks(runner.services.memory).settle() == 0
            assert set((data_dir / "chroma").glob("*/header.bin")) > indexes and written  # the chat's new index
            assert files_holding(data_dir) == []
            assert "new list" in await commands.search(Asker(runner, "ana-notes", ANA), "list")  # the zeroed index answers
        finally:
            await runner.aclose()


async def test_a_fact_the_model_forgets_in_a_turn_is_cut_from_that_turns_checkpoints(
        tmp_path: Path, embeddings: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's forget_fact runs inside a turn that read the fact and checkpoints after: the cut
    waits for the turn to end, and the erase for the turn's archive, whose write made the vector
    index."""
    data_dir = tmp_path / "data"
    written = leave_the_marker_at_each_index_write(monkeypatch, data_dir / "chroma")
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(Settings(data_dir=data_dir), fake), embeddings)
        try:
            await commands.remember(Asker(runner, "ana-chat", ANA), f"locker={MARKER}")
            fake.reply_tool_calls([{"name": "forget_fact", "arguments": {"key": "locker"}}])
            fake.reply("Forgotten.")
            final = await runner.run("ana-chat", "Please forget my locker code.", user_id=ANA)
            assert [result["name"] for result in final["tool_results"]] == ["forget_fact"]
            assert written, "the turn's archive made the vector index"
            assert await runner.services.memory.scope(ANA, ANA).facts() == {}
            assert await redis_holding(runner) == []
            assert files_holding(data_dir) == []
        finally:
            await runner.aclose()


async def test_a_fact_forgotten_while_another_process_runs_a_turn_that_read_it_is_cut_after_that_turn(
        tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    """Two processes on one data folder (two runners, each with its own chat locks): the other's turn
    read the fact, and its model repeats it in a reply that comes after the forget deleted the fact.
    The cut waits for that turn, so its last checkpoints lose the fact too."""
    data_dir = tmp_path / "data"
    asked, answer = threading.Event(), threading.Event()

    def slow_model(body: dict) -> str:
        asked.set()
        answer.wait(60)
        return f"Your locker code is {MARKER}."

    with FakeOpenAI() as fake:
        talking = make_runner(with_model(Settings(data_dir=data_dir), fake), embeddings)
        forgetting = make_runner(with_model(Settings(data_dir=data_dir), fake), embeddings)
        try:
            await commands.remember(Asker(forgetting, "ana-chat", ANA), f"locker={MARKER}")
            fake.responder = slow_model
            turn = asyncio.create_task(talking.run("ana-chat", "What is my locker code?", user_id=ANA))
            await asyncio.to_thread(asked.wait, 60)  # the prompt with the fact is checkpointed
            forget = asyncio.create_task(commands.forget(Asker(forgetting, "ana-chat", ANA), "locker"))
            locks = await forgetting.services.memory._backends.redis.chat_locks()
            while not forget.done() and not locks.holders("ana-chat"):  # done, or waiting for the turn
                await asyncio.sleep(0)
            answer.set()
            await turn
            assert await forget == "Forgot locker."
            assert checkpoint_keys(await redis_holding(talking)) == []  # L2 keeps the reply: said, not a fact
        finally:
            answer.set()
            await talking.aclose()
            await forgetting.aclose()


async def test_a_long_message_edited_leaves_no_copy_a_search_result_shortened(
        tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    """A search result quotes the first 2 000 characters of a long turn, its label first: the edit
    cuts that copy out of the checkpoints of the turn whose search read it."""
    data_dir = tmp_path / "data"
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(Settings(data_dir=data_dir), fake), embeddings)
        try:
            memory = runner.services.memory
            long_message = f"My locker code is {MARKER}. " + "The rest of the day was quiet and long. " * 80
            await runner.run("ana-chat", long_message, user_id=ANA, message_ref="41")
            assert await measurement_hooks(memory).settle() == 0
            fake.reply_tool_calls([{"name": "search_memory", "arguments": {"query": "locker code"}}])
            fake.reply("Found it.")
            final = await runner.run("ana-chat", "What was my locker code?", user_id=ANA)
            [found] = json.loads(final["tool_results"][0]["output"])["results"]
            assert MARKER in found and "…" in found  # shortened
            assert await memory.entries.edit_message("ana-chat", "41", ANA, "My locker code is secret.")
            for forgotten in (MARKER, "quiet and long"):  # a key (cut wherever it is), and plain words
                assert await redis_holding(runner, forgotten) == []
                assert files_holding(data_dir, forgotten) == []
        finally:
            await runner.aclose()


async def test_a_memory_deleted_over_mcp_is_cut_from_the_checkpoints_of_the_turns_that_read_it(
        tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    """The deleted turn is the chat's last but one: its own checkpoints hold its message, the last
    turn's its L2 copy and prompt. MCP's delete_memory leaves it in no key and no file."""
    data_dir = tmp_path / "data"
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(Settings(data_dir=data_dir), fake), embeddings)
        try:
            await runner.run("ana-chat", f"My locker code is {MARKER}.", user_id=ANA)
            await runner.run("ana-chat", f"My bike is a {KEPT}.", user_id=ANA)
            assert await measurement_hooks(runner.services.memory).settle() == 0
            assert checkpoint_keys(await redis_holding(runner))
            server = MemoryServer(runner, "ana-chat", ANA)
            assert await server.delete_memory(archive_id("ana-chat", 1)) == {"deleted": archive_id("ana-chat", 1)}
            assert await redis_holding(runner) == []
            assert files_holding(data_dir) == []
            assert (await runner.last_turn("ana-chat")).diagnosis()["turn"] == 2
            assert "redis/appendonly.aof" in files_holding(data_dir, KEPT)
        finally:
            await runner.aclose()


async def test_a_deleted_long_turn_leaves_no_excerpt_in_the_checkpoints_of_the_turns_that_injected_it(
        tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    """A long reply is injected as its sentences that bear on a later message: the delete cuts
    those sentences out of that turn's checkpoints (its recalls, its prompt), not the whole reply
    alone, which no checkpoint of the later turn holds."""
    data_dir = tmp_path / "data"
    secret = "The lantern maker in Quillby keeps the spare key under the blue heron statue."
    filler = "There are many general things worth weighing when you plan a trip like this one. " * 8
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(Settings(data_dir=data_dir), fake), embeddings)
        try:
            fake.reply(f"{filler}{secret} {filler}")
            await runner.run("ana-chat", "Where can I find the spare key in Quillby?", user_id=ANA)
            for other in ("My sister is moving to Porto in June.", "I planted tomatoes on the balcony."):
                fake.reply("Noted.")
                await runner.run("ana-chat", other, user_id=ANA)
            assert await measurement_hooks(runner.services.memory).settle() == 0
            fake.reply("Under the heron statue.")
            later = await runner.run("ana-chat", "Who keeps the spare key in Quillby, remind me?", user_id=ANA)
            assert any(entry.get("excerpt") and secret in entry["content"] for entry in later["l3"]), later["l3"]
            assert await measurement_hooks(runner.services.memory).settle() == 0
            server = MemoryServer(runner, "ana-chat", ANA)
            assert await server.delete_memory(archive_id("ana-chat", 1)) == {"deleted": archive_id("ana-chat", 1)}
            assert await redis_holding(runner, "blue heron statue") == []
            assert files_holding(data_dir, "blue heron statue") == []
        finally:
            await runner.aclose()


async def test_an_edited_message_leaves_its_earlier_text_in_no_file(tmp_path: Path,
                                                                    embeddings: LocalEmbeddings) -> None:
    """An edit replaces the message where its turn stored it (L2, L3, the word index) and the
    checkpoints that hold it: the earlier text is erased from the files as a forget erases it."""
    data_dir = tmp_path / "data"
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(Settings(data_dir=data_dir), fake), embeddings)
        try:
            memory = runner.services.memory
            await runner.run("ana-chat", f"My locker code is {MARKER}.", user_id=ANA, message_ref="41")
            assert await measurement_hooks(memory).settle() == 0
            wait_for(lambda: {"redis/appendonly.aof", "chroma/chroma.sqlite3"} <= set(files_holding(data_dir)),
                     "the message in Redis's and Chroma's files")
            assert await memory.entries.edit_message("ana-chat", "41", ANA, f"My locker code is {KEPT}.")
            assert await redis_holding(runner) == []
            assert files_holding(data_dir) == []
            assert {"redis/appendonly.aof", "chroma/chroma.sqlite3"} <= set(files_holding(data_dir, KEPT))
            [entry], _ = await memory.entries.page("ana-chat", 10)
            assert KEPT in entry["content"]
        finally:
            await runner.aclose()


async def test_reset_leaves_the_conversation_in_no_file_of_redis(tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    """/reset clears L2: its copy of the turns leaves Redis's files; the archive keeps every turn
    (as /reset says: earlier turns are still recalled)."""
    data_dir = tmp_path / "data"
    runner = make_runner(Settings(data_dir=data_dir), embeddings)
    try:
        memory = runner.services.memory
        await memory.entries.import_turns("ana-chat", [exchange(ANA, "k1", f"My locker code is {MARKER}.", 1_760_000_000)])
        assert await measurement_hooks(memory).settle() == 0
        wait_for(lambda: "redis/appendonly.aof" in files_holding(data_dir), "the turn in Redis's append-only file")
        await commands.reset(Asker(runner, "ana-chat", ANA), "")
        assert files_holding(data_dir / "redis") == []
        # The archive keeps it (and hnswlib's unset bytes may too: nothing was forgotten).
        assert "chroma/chroma.sqlite3" in files_holding(data_dir)
    finally:
        await runner.aclose()


async def test_a_memory_deleted_over_mcp_is_in_no_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = goat_env(data_dir)
    async with stdio_session(env, tmp_path) as session:
        for n, (user, assistant) in enumerate([(f"My locker code is {MARKER}.", "Noted."),
                                               (f"My bike is a {KEPT}.", "Nice.")]):
            data(await session.call_tool("archive_turn", {"user": user, "assistant": assistant,
                                                          "timestamp": f"2026-11-0{n + 1}T10:00:00Z"}))
        wait_for(lambda: {"redis/appendonly.aof", "chroma/chroma.sqlite3"} <= set(files_holding(data_dir)),
                 "the exchange in Redis's and Chroma's files")
        [forgotten] = [memory["id"] for memory in data(await session.call_tool("list_memories", {}))["memories"]
                       if MARKER in memory["text"]]
        assert data(await session.call_tool("delete_memory", {"id": forgotten})) == {"deleted": forgotten}
        assert files_holding(data_dir) == []  # when the call returns, the server still running
        assert {"redis/appendonly.aof", "chroma/chroma.sqlite3"} <= set(files_holding(data_dir, KEPT))


async def test_on_servers_redis_rewrites_its_append_only_file_and_chroma_serves_nothing_of_it(
        tmp_path: Path, embeddings: LocalEmbeddings, chroma_url: str) -> None:
    """The README's promise for servers one runs: a Redis server that keeps an append-only file has
    it rewritten before the forget returns; a Chroma server no longer returns what was deleted (its
    files are its operator's)."""
    redis_dir = tmp_path / "redis-server"
    redis_dir.mkdir()
    # Uncompressed, as the embedded server keeps it: a string the rewrite kept is found by a search.
    with system_redis(redis_dir, "--appendonly", "yes", "--rdbcompression", "no") as redis_url:
        settings = Settings(data_dir=tmp_path / "data", redis={"url": redis_url}, chroma={"url": chroma_url})
        runner = make_runner(settings, embeddings)
        try:
            memory = runner.services.memory
            asker = Asker(runner, "ana-chat", ANA)
            await commands.remember(asker, f"locker={MARKER}")
            await commands.remember(asker, f"bike={KEPT}")
            await memory.entries.import_turns("ana-chat", [exchange(ANA, "k1", f"Bike lock {MARKER}.", 1_760_000_000),
                                                   exchange(ANA, "k2", f"My bike is a {KEPT}.", 1_760_000_060)])
            assert await measurement_hooks(memory).settle() == 0
            wait_for(lambda: files_holding(redis_dir), "the fact and the turn in the server's append-only file")

            assert await commands.forget(asker, "locker") == "Forgot locker."
            entries, _ = await memory.entries.page("ana-chat", 10)
            [forgotten] = [entry["id"] for entry in entries if MARKER in entry["content"]]
            assert await memory.entries.delete("ana-chat", forgotten)
            assert files_holding(redis_dir) == []
            assert files_holding(redis_dir, KEPT)  # the rest stays
            address = chroma_url.rsplit(":", 1)
            chroma = chromadb.HttpClient(host=address[0].removeprefix("http://"), port=int(address[1]),
                                         settings=chromadb.config.Settings(anonymized_telemetry=False))
            served = [document for collection in chroma.list_collections()
                      for document in chroma.get_collection(collection.name).get()["documents"]]
            assert served and not [document for document in served if MARKER in document]
        finally:
            await runner.aclose()


async def test_a_forget_beside_another_process_on_the_data_folder_is_finished_by_the_next(tmp_path: Path) -> None:
    """Chroma's files are not rewritten under another process using the embedded data folder
    (here `goat mcp`). The forget says so in one line and is recorded; the
    next one, alone, erases."""
    data_dir = tmp_path / "data"
    env = goat_env(data_dir)
    transcript = tmp_path / "history.jsonl"
    transcript.write_text("".join(json.dumps({"chat_id": "ana-chat", "user_id": ANA, "role": role, "content": text,
                                              "timestamp": 1_760_000_000}) + "\n"
                                  for role, text in (("user", f"My locker code is {MARKER}."), ("assistant", "Ok."))))
    ok(goat("import", transcript, env=env, cwd=tmp_path))
    async with stdio_session(env, tmp_path) as session:
        data(await session.call_tool("list_facts", {}))  # connected to the data folder's Redis
        refused = await asyncio.to_thread(goat, "forget-user", ANA, "--yes", env=env, cwd=tmp_path)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "other processes use this data folder" in refused.stderr
    assert f"goat forget-user {ANA}" in refused.stderr
    ok(goat("forget-user", ANA, "--yes", env=env, cwd=tmp_path))
    assert files_holding(data_dir) == []
