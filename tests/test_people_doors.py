"""A speaker on every message, through every door: a Telegram export's members each a person of
their own (a bot's lines the assistant's), forgotten by their id from every file; the Store's
and MCP's writes taking a name, shown by `goat inspect`; the web showing a name, escaped. Real
Redis, Chroma and encoder; `goat` as a subprocess where a user runs it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_cli import goat, goat_env, ok
from test_erasure import files_holding
from test_mcp import data, stdio_session

from graph.server.store import GoatStore
from graph.settings import load_settings
from memory.encoders.embeddings import LocalEmbeddings
from memory.facade import Memory
from memory.turns import Working
from bench.support.exports import TelegramChat, telegram_message, write_telegram

pytestmark = pytest.mark.slow

ANA, BO, CARLA, HELPER = 111_001, 222_002, 333_003, 444_004  # HELPER: a bot, Ana's chat with it in her export
FAMILY = "-4004"  # the Bot API's id of the basic group 4004
T0 = 1_760_000_000
CAKE = "I'll bring the cake, chocolate."  # Carla's, forgotten with her
CARLA_NAME = "Carla Quokkaferry"  # in no other text: found in a file only where Carla's name was kept


def family_export(path: Path) -> Path:
    """Ana's account: the Family group of three people and her bot, which speaks there too."""
    said = [telegram_message(1, T0, ANA, "Who brings what on Sunday?", name="Ana"),
            telegram_message(2, T0 + 60, BO, "I'll bring the lemonade.", name="Bo"),
            telegram_message(3, T0 + 120, CARLA, CAKE, name=CARLA_NAME),
            telegram_message(4, T0 + 180, HELPER, "Noted: Bo lemonade, Carla the cake.", name="Helper"),
            telegram_message(5, T0 + 240, ANA, "And I'll bring the plates.", name="Ana")]
    bot_chat = [telegram_message(1, T0 - 600, ANA, "Hi", name="Ana"),
                telegram_message(2, T0 - 590, HELPER, "Hello! Add me to your groups.", name="Helper")]
    return write_telegram(path, [TelegramChat("Family", "private_group", 4_004, said),
                                 TelegramChat("Helper", "bot_chat", HELPER, bot_chat)], owner=ANA)


def working(env: dict[str, str], embeddings: LocalEmbeddings, chat_id: str) -> Working:
    """The chat's L2 and its people, read through memory's door on the data folder `goat` wrote."""

    async def read() -> Working:
        memory = Memory(load_settings(environ=env), embeddings=embeddings)
        try:
            return await memory.working(chat_id, 100)
        finally:
            await memory.aclose()

    return asyncio.run(read())


def exported(env: dict[str, str], cwd: Path, user_id: int) -> dict:
    """`goat export --user`'s chats of the person, by chat id."""
    return {chat["chat_id"]: chat for chat in
            json.loads(ok(goat("export", "--user", str(user_id), env=env, cwd=cwd)).stdout)["chats"]}


def test_a_telegram_group_imports_as_three_people_and_the_bots_lines_as_the_assistants(
        tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    env = goat_env(tmp_path / "data")

    result = ok(goat("import", family_export(tmp_path / "result.json"), env=env, cwd=tmp_path))
    family = working(env, embeddings, FAMILY)
    carlas = exported(env, tmp_path, CARLA)[FAMILY]
    table = ok(goat("inspect", "--chat", FAMILY, "--user", str(ANA), "Who brings the chocolate cake?", env=env,
                    cwd=tmp_path)).stdout  # as /why shows a turn

    assert result.stdout.splitlines()[0] == "7 messages, 5 turns: 5 imported, 0 already there"
    assert family.people == {str(ANA): "Ana", str(BO): "Bo", str(CARLA): CARLA_NAME}  # the bot is no person
    assert [(m["role"], m["user_id"], m.get("name")) for m in family.messages] == [
        ("user", str(ANA), "Ana"), ("user", str(BO), "Bo"), ("user", str(CARLA), CARLA_NAME),
        ("assistant", str(CARLA), None),  # the bot's answer, kept in Carla's turn as a live reply is
        ("user", str(ANA), "Ana")]
    [entry] = carlas["l3"]
    assert (entry["metadata"]["user_id"], entry["metadata"]["name"]) == (str(CARLA), CARLA_NAME)
    assert entry["content"] == f"user: {CAKE}\nassistant: Noted: Bo lemonade, Carla the cake."
    assert f"{CARLA_NAME}: {CAKE} ⏎ assistant: Noted" in table  # her line named, as the model is shown it
    helper = working(env, embeddings, str(ANA))  # Ana's chat with her bot, under her id as `goat bot` keeps it
    assert [(m["role"], m["content"]) for m in helper.messages] == [
        ("user", "Hi"), ("assistant", "Hello! Add me to your groups.")]


def test_forget_user_of_a_group_member_leaves_none_of_their_words_in_any_file(
        tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    data_dir = tmp_path / "data"
    env = goat_env(data_dir)
    ok(goat("import", family_export(tmp_path / "result.json"), env=env, cwd=tmp_path))
    assert {"redis/appendonly.aof", "chroma/chroma.sqlite3"} <= set(files_holding(data_dir, CAKE))

    forgotten = ok(goat("forget-user", str(CARLA), "--yes", env=env, cwd=tmp_path))

    assert "Traceback" not in forgotten.stderr, forgotten.stderr
    assert files_holding(data_dir, CAKE) == [] and files_holding(data_dir, CARLA_NAME) == []
    for kept in ("I'll bring the lemonade.", "And I'll bring the plates."):  # the others' lines stay
        assert {"redis/appendonly.aof", "chroma/chroma.sqlite3"} <= set(files_holding(data_dir, kept)), kept
    family = working(env, embeddings, FAMILY)
    assert family.people == {str(ANA): "Ana", str(BO): "Bo"}
    assert [m["content"] for m in family.messages] == [
        "Who brings what on Sunday?", "I'll bring the lemonade.", "And I'll bring the plates."]
    assert exported(env, tmp_path, CARLA) == {}


def test_a_private_chat_of_two_people_imports_as_one_chat_of_two_people(
        tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    env = goat_env(tmp_path / "data")
    path = write_telegram(tmp_path / "result.json", [TelegramChat("Bo", "personal_chat", BO, [
        telegram_message(1, T0, ANA, "Is the boiler code still 7391?", name="Ana"),
        telegram_message(2, T0 + 60, BO, "Yes, 7391.", name="Bo")])])

    ok(goat("import", path, env=env, cwd=tmp_path))
    chat = working(env, embeddings, str(BO))  # a private chat: under the other person's id, as before

    assert chat.people == {str(ANA): "Ana", str(BO): "Bo"}
    assert [(m["role"], m["user_id"], m["name"]) for m in chat.messages] == [
        ("user", str(ANA), "Ana"), ("user", str(BO), "Bo")]  # no assistant


def inspected(env: dict[str, str], cwd: Path, chat: str, user: str, message: str) -> list[dict]:
    """The entries `goat inspect --json` injects for ``message``."""
    [report] = [json.loads(line) for line in ok(goat("inspect", "--chat", chat, "--user", user, "--json", message,
                                                     env=env, cwd=cwd)).stdout.splitlines()]
    return report["l3"]


def test_a_note_put_through_the_store_with_a_name_shows_it_and_a_bad_name_is_refused(
        tmp_path: Path, embeddings: LocalEmbeddings) -> None:
    env = goat_env(tmp_path / "data")
    settings = load_settings(environ=env)

    async def put() -> dict:
        memory = Memory(settings, embeddings=embeddings)
        store = GoatStore(memory, settings.server)
        try:
            await store.aput(("chats", "garden", "memories"), "key-note",
                             {"text": "The spare house key is under the blue flower pot.", "user_id": "ana",
                              "name": "Ana Lima"})
            for bad in ("", "x" * 201, 7):
                with pytest.raises(ValueError, match="name"):
                    await store.aput(("chats", "garden", "memories"), "bad-note", {"text": "Hi", "name": bad})
            assert await store.aget(("chats", "garden", "memories"), "bad-note") is None
            return (await store.aget(("chats", "garden", "memories"), "key-note")).value
        finally:
            await memory.aclose()

    value = asyncio.run(put())
    [entry] = [e for e in inspected(env, tmp_path, "garden", "ana", "Where is the spare house key?")
               if e["id"] == "key-note"]

    assert value["name"] == "Ana Lima" and entry["name"] == "Ana Lima"


async def test_an_exchange_archived_over_mcp_with_a_name_shows_it(tmp_path: Path) -> None:
    env = goat_env(tmp_path / "data")
    async with stdio_session(env, tmp_path, chat="boat", user="u-ana") as session:
        archived = data(await session.call_tool("archive_turn", {
            "user": "Our boat is moored at slip 43C.", "assistant": "Noted: slip 43C.", "name": "Ana <b>Lima</b>"}))
        refused = await session.call_tool("archive_turn", {"user": "x", "assistant": "y", "name": " "})
        listed = data(await session.call_tool("list_memories", {}))["memories"]

    entries = await asyncio.to_thread(inspected, env, tmp_path, "boat", "u-ana", "Where is our boat moored?")
    assert archived["archived"] and refused.is_error and "name is empty" in refused.content[0].text
    assert [m["name"] for m in listed] == ["Ana <b>Lima</b>"]
    assert [e["name"] for e in entries if e["id"] == archived["id"]] == ["Ana <b>Lima</b>"]
