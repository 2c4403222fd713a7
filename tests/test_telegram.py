"""The Telegram bot: the real python-telegram-bot client against a loopback Bot API server
(bench/support/fakes/telegram_server.py) and the loopback model server, on real Redis and Chroma."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import chromadb
import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from bot.telegram import EDIT_NOT_KEPT, HELP, build_application
from graph.replies import MODEL_UNREACHABLE
from bot.telegram_running import running as receiving
from bot.telegram_messages import MESSAGE_LIMIT, split_message
from bot.webhook import SECRET_HEADER, shared_secret
from conftest import free_port, memorys_redis, wait_for
from bench.support.fakes import FakeOpenAI
from bench.support.fakes.telegram_server import FakeTelegram
from graph.settings import Settings, Telegram
from memory.encoders.embeddings import LocalEmbeddings
from memory.facade import Memory, measurement_hooks
from memory.turns import archive_id
from test_cli import GOAT, HANG_GUARD, goat, goat_env, ok, servers_left
from test_graph import make_runner, with_model

pytestmark = pytest.mark.slow

TOKEN = "123456:TEST-TOKEN-telegram-4b2c"
ALICE, BOB, STRANGER = 111001, 222002, 999009
GROUP = -100555


def bot_settings(settings: Settings, fake: FakeOpenAI, telegram: FakeTelegram, allowed=(ALICE, BOB)) -> Settings:
    return with_model(settings, fake).model_copy(update={"telegram": Telegram(
        token=TOKEN, api_url=telegram.base_url, allowed_users=tuple(allowed), edit_interval=0.05)})


@asynccontextmanager
async def running(settings: Settings, embeddings: LocalEmbeddings, webhook: str | None = None,
                  port: int = 0) -> AsyncIterator:
    """The bot of `goat bot` (its runner, its application, its way of receiving updates)."""
    runner = make_runner(settings, embeddings)
    await runner.services.memory.connect(warm=True)
    try:
        async with receiving(build_application(runner, settings), settings, webhook=webhook, port=port, poll_timeout=1):
            yield runner
    finally:
        await runner.aclose()


async def until(telegram: FakeTelegram, predicate) -> None:
    await asyncio.to_thread(telegram.wait_for, predicate)


async def turn_done(runner, chat_id: int) -> None:
    """The reply is out before its turn is saved: wait for the turn by taking the chat after it."""
    async with runner.services.memory.turn(str(chat_id)):
        pass


def echo(request: dict) -> str:
    return f"You said: {request['messages'][-1]['content']}."


async def test_messages_are_answered_in_their_own_chats_which_stay_apart(settings, embeddings):
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings):
            telegram.send(ALICE, ALICE, "My locker number is 4471.")
            await until(telegram, lambda: telegram.chat(ALICE) == ["You said: My locker number is 4471.."])
            telegram.send(BOB, BOB, "What is my locker number?")
            await until(telegram, lambda: telegram.chat(BOB) == ["You said: What is my locker number?."])
        assert "4471" not in json.dumps(fake.requests[-1])  # Bob's turn saw nothing of Alice's chat
        assert telegram.methods("sendChatAction") and telegram.methods("setMyCommands")
        assert {c["command"] for c in telegram.methods("setMyCommands")[0]["commands"]} >= {
            "start", "help", "facts", "remember", "forget", "search", "why", "stats", "reset", "export", "forget_me"}


async def test_a_long_reply_arrives_in_ordered_parts_under_the_limit(settings, embeddings):
    paragraphs = [f"Paragraph {n}: " + "the quick brown fox jumps over the lazy dog. " * 20 for n in range(11)]
    long_reply = "\n\n".join(paragraphs)
    assert len(long_reply) > 10_000
    with FakeOpenAI() as fake, FakeTelegram(TOKEN) as telegram:
        fake.reply(long_reply)
        async with running(bot_settings(settings, fake, telegram), embeddings):
            telegram.send(ALICE, ALICE, "Tell me a long story.")
            await until(telegram, lambda: " ".join(" ".join(telegram.chat(ALICE)).split()) == " ".join(long_reply.split()))
        parts = telegram.chat(ALICE)
        assert len(parts) == 3 and all(len(part) <= MESSAGE_LIMIT for part in parts)
        assert all(part.startswith("Paragraph") for part in parts)  # cut between paragraphs


def test_split_message_cuts_at_paragraphs_then_sentences():
    text = ("A sentence here. " * 300).strip()
    parts = split_message(text, limit=1000)
    assert all(len(p) <= 1000 and p.endswith(".") for p in parts) and " ".join(parts) == text
    assert split_message("short") == ["short"]


async def test_a_stranger_is_refused_once_with_their_id_and_nothing_of_theirs_is_stored(settings, embeddings, redis_url):
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            telegram.send(STRANGER, STRANGER, "Hello, who are you? My secret is zebra-0042.")
            telegram.send(STRANGER, STRANGER, "/facts")
            telegram.send(ALICE, ALICE, "Hi there.")
            await until(telegram, lambda: telegram.chat(ALICE) == ["You said: Hi there.."])
            data_dir = Path(runner.services.settings.data_dir)
        [refusal] = telegram.chat(STRANGER)
        assert str(STRANGER) in refusal and "GOAT_ALLOWED_USERS" in refusal
        assert not fake.requests or all("zebra-0042" not in json.dumps(r) for r in fake.requests)
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(count=1000):
        assert str(STRANGER).encode() not in key, key
    client.close()
    chroma = chromadb.PersistentClient(path=str(data_dir / "chroma"), settings=chromadb.Settings(anonymized_telemetry=False))
    assert all(c.metadata.get("chat_id") != str(STRANGER) for c in chroma.list_collections())


def refusals(telegram: FakeTelegram, chat_id: int) -> list[str]:
    return [text for text in telegram.chat(chat_id) if "GOAT_ALLOWED_USERS" in text]


async def test_a_stranger_in_a_group_is_refused_once_and_only_for_what_the_bot_would_answer(settings, embeddings):
    """What the bot would not answer anyone (a message not addressed to it, an edit, a command that
    may be another bot's) gets a stranger nothing, not even the refusal; addressed, they are refused
    once. None of it is a turn, while an allowed user's messages in the same group are answered."""
    group = -100999
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            chatter = telegram.send(group, STRANGER, "Lunch at noon? My code is zebra-0042.", chat_type="group")
            telegram.edit(chatter, "@goat_test_bot lunch at noon? My code is zebra-0042.")
            telegram.send(group, STRANGER, "/frobnicate zebra-0042", chat_type="group")
            telegram.send(group, STRANGER, "/facts@another_bot", chat_type="group")
            telegram.send(group, ALICE, "@goat_test_bot lunch at noon?", chat_type="group")
            await until(telegram, lambda: "You said: lunch at noon?." in telegram.chat(group))
            assert telegram.chat(group) == ["You said: lunch at noon?."]
            first = telegram.send(group, STRANGER, "@goat_test_bot who are you? zebra-0042", chat_type="group")
            await until(telegram, lambda: refusals(telegram, group))
            telegram.send(group, STRANGER, "@goat_test_bot hello? zebra-0042", chat_type="group")
            telegram.send(group, ALICE, "@goat_test_bot and dessert?", chat_type="group")
            await until(telegram, lambda: telegram.chat(group)[-1:] == ["You said: and dessert?."])
            await turn_done(runner, group)
            _, working, _ = await runner.services.memory.working(str(group), 10)
        [refusal] = refusals(telegram, group)
        assert str(STRANGER) in refusal
        [refused] = [call for call in telegram.methods("sendMessage") if call["text"] == refusal]
        assert refused["reply_parameters"]["message_id"] == first["message_id"]
        assert telegram.chat(group) == ["You said: lunch at noon?.", refusal, "You said: and dessert?."]
        assert len(fake.requests) == 2 and all("zebra-0042" not in json.dumps(r) for r in fake.requests)
    assert [m["content"] for m in working] == [
        "lunch at noon?", "You said: lunch at noon?.", "and dessert?", "You said: and dessert?."]


async def test_a_strangers_command_is_refused_and_no_command_of_theirs_runs(settings, embeddings, redis_url):
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings):
            telegram.send(STRANGER, STRANGER, "/facts")
            await until(telegram, lambda: telegram.chat(STRANGER))
            telegram.send(STRANGER, STRANGER, "/remember city=Oslo")
            telegram.send(STRANGER, STRANGER, "/facts")
            telegram.send(ALICE, ALICE, "Hi there.")
            await until(telegram, lambda: telegram.chat(ALICE) == ["You said: Hi there.."])
        # Stopped: every update fetched before Alice's was handled by then.
        [refusal] = telegram.chat(STRANGER)
        assert str(STRANGER) in refusal and "GOAT_ALLOWED_USERS" in refusal
    import redis

    with redis.Redis.from_url(redis_url) as client:
        assert not [key for key in client.scan_iter(count=1000) if str(STRANGER).encode() in key]  # no fact kept


async def test_remember_then_the_fact_is_in_the_next_prompt_and_export_holds_the_turns(settings, embeddings):
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            telegram.send(ALICE, ALICE, "/remember city=Porto")
            await until(telegram, lambda: telegram.chat(ALICE) == ["Noted: city = Porto"])
            telegram.send(ALICE, ALICE, "Where do I live?")
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 2)
            await turn_done(runner, ALICE)
            assert "city: Porto" in fake.requests[-1]["messages"][0]["content"]
            telegram.send(ALICE, ALICE, "/export")
            await until(telegram, lambda: telegram.documents)
        [document] = telegram.documents
        exported = json.loads(document["content"])
        assert document["filename"] == f"goat-export-{ALICE}.json" and exported["facts"] == {"city": "Porto"}
        [chat] = exported["chats"]
        assert [m["content"] for m in chat["l2"]] == ["Where do I live?", "You said: Where do I live?."]


async def test_forget_me_asks_then_leaves_nothing_of_the_user(settings, embeddings, redis_url):
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            telegram.send(ALICE, ALICE, "My passport is AX-99213.")
            telegram.send(BOB, BOB, "My bike code is 5512.")
            telegram.send(GROUP, BOB, "@goat_test_bot I bring the cake.", chat_type="group")
            telegram.send(GROUP, ALICE, "@goat_test_bot I bring AX-99213 too.", chat_type="group")
            await until(telegram, lambda: [len(telegram.chat(chat)) for chat in (ALICE, BOB, GROUP)] == [1, 1, 2])
            for chat in (ALICE, BOB, GROUP):
                await turn_done(runner, chat)
            telegram.send(ALICE, ALICE, "/remember blood=AB-negative")
            telegram.send(ALICE, ALICE, "/forget_me")
            await until(telegram, lambda: any("/forget_me yes" in m for m in telegram.chat(ALICE)))
            telegram.send(ALICE, ALICE, "/forget_me yes")
            await until(telegram, lambda: telegram.chat(ALICE)[-1].startswith("Done"))
            assert await measurement_hooks(runner.services.memory).settle() == 0
            bob = await runner.services.memory.admin.export(str(BOB))
            data_dir = Path(runner.services.settings.data_dir)
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        value = {"string": client.get, "list": lambda k: client.lrange(k, 0, -1), "hash": client.hgetall,
                 "set": client.smembers, "zset": lambda k: client.zrange(k, 0, -1)}[kind](key)
        assert str(ALICE).encode() not in key and b"AX-99213" not in repr(value).encode(), key
        assert b"AB-negative" not in repr(value).encode(), key
        assert f'"user_id": "{ALICE}"'.encode() not in repr(value).encode(), key  # her messages, their links
    client.close()
    chroma = chromadb.PersistentClient(path=str(data_dir / "chroma"), settings=chromadb.Settings(anonymized_telemetry=False))
    for collection in chroma.list_collections():
        stored = chroma.get_collection(collection.name).get(include=["documents", "metadatas"])
        assert all(m.get("user_id") != str(ALICE) for m in stored["metadatas"])
        assert not any("AX-99213" in d for d in stored["documents"])
    assert {c["chat_id"]: [m["content"] for m in c["l2"]] for c in bob["chats"]} == {
        str(BOB): ["My bike code is 5512.", "You said: My bike code is 5512.."],
        str(GROUP): ["I bring the cake.", "You said: I bring the cake.."]}  # the group keeps Bob's part


async def test_an_unreachable_model_is_named_and_the_message_is_kept(settings, embeddings, caplog):
    """The user is told the model cannot be reached and that their message is kept, which it is:
    the next turn's model sees it; the operator's log names the cause, without the API key."""
    configured_key = "test-key"  # bot_settings' key (with_model): the model's error echoes it
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        for _ in range(2):  # the client retries once
            fake.fail(status=500, message=f"the model is down (key {configured_key})")
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            telegram.send(ALICE, ALICE, "My train leaves at 7:40 from platform 9.")
            await until(telegram, lambda: telegram.chat(ALICE) == [MODEL_UNREACHABLE])
            telegram.send(ALICE, ALICE, "When does it leave?")
            await until(telegram, lambda: telegram.chat(ALICE)[-1] == "You said: When does it leave?.")
            await turn_done(runner, ALICE)
            memory = runner.services.memory
            completed, working, _ = await memory.working(str(ALICE), 10)
            assert await measurement_hooks(memory).settle() == 0
            store = await memory._backends.l3.episodic()
            archived = [entry["content"] for entry in sorted(store.entries(str(ALICE)), key=lambda e: e["id"])]
    assert "My train leaves at 7:40 from platform 9." in json.dumps(fake.requests[-1]["messages"])
    assert completed == 2 and [m["content"] for m in working] == [
        "My train leaves at 7:40 from platform 9.", "When does it leave?", "You said: When does it leave?."]
    assert archived == ["user: My train leaves at 7:40 from platform 9.",
                        "user: When does it leave?\nassistant: You said: When does it leave?."]
    [failure] = [r.getMessage() for r in caplog.records if r.name == "bot.telegram" and r.levelno == logging.WARNING]
    assert "OpenAIAPIError: Error code: 500 - the model is down" in failure and configured_key not in failure


async def told_locker_4471(telegram: FakeTelegram, runner):
    """Alice tells the bot her locker number; returns her message, once its turn is answered
    and archived (in Chroma and the word index: what an edit changes)."""
    locker = telegram.send(ALICE, ALICE, "My locker number is 4471.")
    await until(telegram, lambda: telegram.chat(ALICE) == ["Noted."])
    await turn_done(runner, ALICE)
    assert await measurement_hooks(runner.services.memory).settle() == 0
    return locker


async def test_an_edit_memory_cannot_take_says_the_earlier_version_stays(tmp_path, embeddings):
    """An edit that cannot be stored (here: the archive was re-embedded with another encoder since
    the bot started, so it may no longer write) gets a line saying so, not "send that again",
    and what its turn stored stays whole."""
    own = Settings(data_dir=tmp_path / "data")  # its own Redis: the encoder record is the archive's
    chat = str(ALICE)
    with FakeOpenAI(responder=lambda request: "Noted.") as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(own, fake, telegram), embeddings) as runner:
            memory = runner.services.memory
            locker = await told_locker_4471(telegram, runner)
            e5_settings = Settings(data_dir=tmp_path / "data", embeddings={"model": "e5-small"})
            async with Memory(e5_settings) as other:
                await other.admin.reembed()
            telegram.edit(locker, "My locker number is 5582.")
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 2)
            _, working, _ = await memory.working(chat, 10)
    assert telegram.chat(ALICE) == ["Noted.", EDIT_NOT_KEPT]
    assert [m["content"] for m in working] == ["My locker number is 4471.", "Noted."]


async def test_an_edit_replaces_what_its_turn_stored_and_runs_no_turn(settings, embeddings):
    """An edited message is no new turn: its text replaces the stored one in L2, in its turn's L3
    entry (embedded afresh, the reply kept) and in the word index, before the chat's next turn.
    An edited command is not run again."""
    chat = str(ALICE)
    with FakeOpenAI(responder=lambda request: "Noted.") as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            memory = runner.services.memory
            locker = await told_locker_4471(telegram, runner)
            command = telegram.send(ALICE, ALICE, "/help")
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 2)
            telegram.edit(locker, "My locker number is 5582.")
            telegram.edit(command, "/facts")
            telegram.send(ALICE, ALICE, "Which locker is mine?")  # handled after the edits, in arrival order
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 3)
            await turn_done(runner, ALICE)
            assert await measurement_hooks(memory).settle() == 0
            _, working, _ = await memory.working(chat, 10)
            store, index = await memory._backends.l3.episodic(), await memory._backends.redis.lexical_index()
            # Through the memory's pool, as the bot reads: the edit's erasure of Chroma's files
            # may still be running, and holds them alone.
            (edited, edited_vector), (_, next_vector) = sorted(await memory._backends.l3.run_blocking(
                store.get_with_vectors, [chat], [archive_id(chat, 1), archive_id(chat, 2)]), key=lambda e: e[0]["id"])
            by_old_number, by_new_number = await index.search(chat, "4471", 5), await index.search(chat, "5582", 5)
            centroid = (await index.entries.centroid([chat])).mean
        # As the line of a chat that holds English alone is embedded.
        [embedded] = embeddings.encoder.encode(["user: My locker number is 5582.\nassistant: Noted."],
                                               every_language=False)
    assert len(fake.requests) == 2 and "4471" not in json.dumps(fake.requests[-1]) and "5582" in json.dumps(
        fake.requests[-1])
    assert telegram.chat(ALICE) == ["Noted.", HELP, "Noted."]
    assert [m["content"] for m in working] == ["My locker number is 5582.", "Noted.", "Which locker is mine?", "Noted."]
    assert edited["content"] == "user: My locker number is 5582.\nassistant: Noted."
    assert np.allclose(edited_vector, embedded, atol=1e-5)
    assert by_old_number == [] and [(found, np.allclose(vector, embedded, atol=2e-3))
                                    for found, _, vector in by_new_number] == [(archive_id(chat, 1), True)]
    assert np.allclose(centroid, (edited_vector + next_vector) / 2, atol=1e-5)


async def test_flood_control_and_refused_formatting_are_retried(settings, embeddings):
    with FakeOpenAI() as fake, FakeTelegram(TOKEN) as telegram:
        fake.reply("Use *bold for emphasis.")  # an unbalanced Markdown marker: Telegram refuses it
        telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
        async with running(bot_settings(settings, fake, telegram), embeddings):
            telegram.send(ALICE, ALICE, "/help")
            await until(telegram, lambda: telegram.chat(ALICE))  # sent after the advised delay
            telegram.send(ALICE, ALICE, "How do I emphasise?")
            await until(telegram, lambda: telegram.chat(ALICE)[-1] == "Use *bold for emphasis.")
            telegram.send(ALICE, ALICE, sticker={"file_id": "s1", "file_unique_id": "u1", "type": "regular",
                                                 "width": 512, "height": 512, "is_animated": False, "is_video": False})
            await until(telegram, lambda: telegram.chat(ALICE)[-1] == "I can only read text for now.")


async def test_in_a_group_the_bot_answers_only_when_mentioned_in_a_reply_to_that_message(settings, embeddings):
    group = -100123
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            telegram.send(group, ALICE, "Lunch at noon, everyone?", chat_type="group")
            asked = telegram.send(group, BOB, "@goat_test_bot what time is lunch?", chat_type="group")
            await until(telegram, lambda: telegram.chat(group) == ["You said: what time is lunch?."])
            await turn_done(runner, group)
            completed, _, _ = await runner.services.memory.working(str(group), 10)
            command = telegram.send(group, BOB, "/stats", chat_type="group")
            await until(telegram, lambda: len(telegram.chat(group)) == 2)
        assert completed == 1  # the unaddressed message was not a turn
        [answer, stats] = telegram.methods("sendMessage")
        assert answer["reply_parameters"]["message_id"] == asked["message_id"]
        assert stats["reply_parameters"]["message_id"] == command["message_id"]  # a command's answer too


async def test_an_unknown_command_gets_the_command_list(settings, embeddings):
    group = -100321
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings):
            telegram.send(ALICE, ALICE, "/frobnicate now")
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 1)
            telegram.send(group, ALICE, "/frobnicate@another_bot", chat_type="group")  # not ours to answer
            telegram.send(group, ALICE, "/frobnicate", chat_type="group")  # may be another bot's: not answered
            named = telegram.send(group, ALICE, "/frobnicate@goat_test_bot", chat_type="group")
            await until(telegram, lambda: len(telegram.chat(group)) == 1)
        listed = f"I have no /frobnicate command. These are mine:\n{HELP}"
        assert telegram.chat(ALICE) == telegram.chat(group) == [listed]
        assert telegram.methods("sendMessage")[-1]["reply_parameters"]["message_id"] == named["message_id"]
        assert fake.requests == []


async def test_stats_is_a_table_telegram_renders_and_names_no_server_path(settings, embeddings):
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            telegram.send(ALICE, ALICE, "/stats")
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 1)
            telegram.send(ALICE, ALICE, "Hello there.")
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 2)
            await turn_done(runner, ALICE)
            telegram.send(ALICE, ALICE, "/stats")
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 3)
            data_dir = str(Path(runner.services.settings.data_dir).resolve())
        empty, _, table = telegram.chat(ALICE)
        sent = [call for call in telegram.methods("sendMessage") if call["text"].startswith("<pre>")]
    assert [call["parse_mode"] for call in sent] == ["HTML", "HTML"]  # a fixed-width block: columns aligned
    assert empty.startswith("no turns recorded yet in the turn log")
    assert "latency ms" in table and "p50" in table and "total" in table
    assert data_dir not in empty + table and "turns.jsonl" not in empty + table


async def test_commands_that_show_a_persons_data_never_post_it_into_a_group(settings, embeddings):
    """Alice's facts, export, recalled lines, searches and forgetting are hers: asked in a group,
    the bot answers in the group only that she should ask privately; privately, it answers."""
    group = -100777
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            memory = runner.services.memory
            await memory.scope(str(ALICE), str(ALICE)).remember("diagnosis", "private-marker-7781")
            telegram.send(ALICE, ALICE, "My salary is private-marker-7781 a year.")
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 1)
            await turn_done(runner, ALICE)
            asked = ["/facts", "/export", "/why", "/search salary", "/forget_me", "/forget_me yes",
                     "/facts@goat_test_bot"]
            for n, command in enumerate(asked, start=1):
                telegram.send(group, ALICE, command, chat_type="group")
                await until(telegram, lambda n=n: len(telegram.chat(group)) == n)
            assert all(text.startswith("That shows your own data") for text in telegram.chat(group))
            assert not any("private-marker" in text for text in telegram.chat(group))
            assert telegram.methods("sendDocument") == []
            assert await memory.scope(str(ALICE), str(ALICE)).facts() == {"diagnosis": "private-marker-7781"}  # nothing forgotten
            telegram.send(ALICE, ALICE, "/facts")  # the positive control: privately, it answers
            await until(telegram, lambda: telegram.chat(ALICE)[-1:] == ["diagnosis: private-marker-7781"])


async def test_webhook_mode_rejects_an_update_with_a_wrong_secret(settings, embeddings, caplog):
    caplog.set_level(logging.INFO, logger="bot.telegram")
    port = free_port()
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        configured = bot_settings(settings, fake, telegram)
        configured = configured.model_copy(update={"telegram": configured.telegram.model_copy(
            update={"webhook_secret": SecretStr("s3cret-hook-0123456789")})})
        async with running(configured, embeddings, webhook="https://bot.example/hook", port=port):
            update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "Hello by webhook.",
                                                  "chat": {"id": ALICE, "type": "private"},
                                                  "from": {"id": ALICE, "is_bot": False, "first_name": "a"}}}
            async with httpx.AsyncClient() as client:
                wrong = await client.post(f"http://127.0.0.1:{port}/hook", json=update,
                                          headers={"X-Telegram-Bot-Api-Secret-Token": "guess"})
                assert wrong.status_code == 403
                right = await client.post(f"http://127.0.0.1:{port}/hook", json=update,
                                          headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-hook-0123456789"})
                assert right.status_code == 200
            await until(telegram, lambda: telegram.chat(ALICE) == ["You said: Hello by webhook.."])
        assert telegram.methods("setWebhook")[0]["secret_token"] == "s3cret-hook-0123456789"
    [started] = [record.getMessage() for record in caplog.records if record.name == "bot.telegram"]
    assert started == (f"goat bot: webhook, listening on 127.0.0.1:{port}; model fake-model; 2 allowed user(s); "
                       f"data folder {Path(configured.data_dir).resolve()}")


def webhook_update(update_id: int, chat: int, user: int, text: str) -> dict:
    return {"update_id": update_id, "message": {"message_id": update_id % 10**9, "date": 0, "text": text,
                                                "chat": {"id": chat, "type": "private"},
                                                "from": {"id": user, "is_bot": False, "first_name": "a"}}}


async def test_webhook_mode_without_a_configured_secret_is_never_open(settings, embeddings):
    """No GOAT_TELEGRAM_WEBHOOK_SECRET: a strong secret is made, shared through Redis by every
    worker, and registered with Telegram; a stranger posting an allowed user's /export without
    it gets 403 and nothing."""
    port = free_port()
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        configured = bot_settings(settings, fake, telegram)
        assert configured.telegram.webhook_secret is None
        async with running(configured, embeddings, webhook="https://bot.example/hook", port=port) as runner:
            [registered] = telegram.methods("setWebhook")
            secret = registered["secret_token"]
            assert len(secret) >= 32
            async with memorys_redis(runner.services.memory) as redis:
                assert await shared_secret(redis) == secret  # another worker's
            forged = webhook_update(1, STRANGER, ALICE, "/export")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.post("/hook", json=forged)).status_code == 403
                assert (await client.post("/hook", json=forged, headers={SECRET_HEADER: ""})).status_code == 403
                hello = webhook_update(2, ALICE, ALICE, "Hello by webhook.")
                assert (await client.post("/hook", json=hello, headers={SECRET_HEADER: secret})).status_code == 200
            await until(telegram, lambda: telegram.chat(ALICE) == ["You said: Hello by webhook.."])
        assert telegram.chat(STRANGER) == [] and telegram.methods("sendDocument") == []


@asynccontextmanager
async def posting_as_telegram(settings: Settings, embeddings: LocalEmbeddings
                              ) -> AsyncIterator[tuple[FakeTelegram, httpx.AsyncClient]]:
    """The bot served by webhook, and a client that posts to it as Telegram does (its secret)."""
    port = free_port()
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings, webhook="https://bot.example/hook",
                           port=port):
            secret = telegram.methods("setWebhook")[0].get("secret_token", "")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={SECRET_HEADER: secret}) as client:
                yield telegram, client


async def test_an_update_id_far_ahead_of_the_chats_cannot_silence_it(settings, embeddings):
    async with posting_as_telegram(settings, embeddings) as (telegram, client):
        far = webhook_update(10**15, ALICE, ALICE, "An update id from nowhere.")
        assert (await client.post("/hook", json=far)).status_code == 200
        await until(telegram, lambda: len(telegram.chat(ALICE)) == 1)
        for update_id in (7, 8):
            real = webhook_update(update_id, ALICE, ALICE, f"Real message {update_id}.")
            assert (await client.post("/hook", json=real)).status_code == 200
        await until(telegram, lambda: len(telegram.chat(ALICE)) == 3)
        assert (await client.post("/hook", json=real)).status_code == 200  # a redelivery: not again
        after = webhook_update(9, ALICE, ALICE, "Real message 9.")
        assert (await client.post("/hook", json=after)).status_code == 200
        await until(telegram, lambda: len(telegram.chat(ALICE)) == 4)
    assert telegram.chat(ALICE)[1:] == [f"You said: Real message {n}.." for n in (7, 8, 9)]


async def test_an_update_id_no_inbox_can_hold_is_refused_not_retried_forever(settings, embeddings):
    """A 503 makes Telegram deliver the update again and again: an update id that is no integer,
    or one past what an inbox orders exactly, is refused with 400, and the chat goes on."""
    async with posting_as_telegram(settings, embeddings) as (telegram, client):
        for update_id in (True, 10**400, -1, 2**53 + 1, "7", 7.0):
            unusable = {**webhook_update(1, ALICE, ALICE, "Never queued."), "update_id": update_id}
            answer = await client.post("/hook", content=json.dumps(unusable),
                                       headers={"Content-Type": "application/json"})
            assert answer.status_code == 400, (update_id, answer.status_code)
        real = webhook_update(2**53, ALICE, ALICE, "The largest update id an inbox holds.")
        assert (await client.post("/hook", json=real)).status_code == 200
        await until(telegram, lambda: len(telegram.chat(ALICE)) == 1)
    assert telegram.chat(ALICE) == ["You said: The largest update id an inbox holds.."]


def bot_env(data_dir: Path, telegram: FakeTelegram, fake: FakeOpenAI) -> dict[str, str]:
    """`goat bot`'s environment: the loopback Bot API and model, alice allowed."""
    return goat_env(data_dir, TELEGRAM_BOT_TOKEN=TOKEN, GOAT_TELEGRAM_API_URL=telegram.base_url,
                    GOAT_ALLOWED_USERS=str(ALICE), GOAT_MODEL="fake-model", OPENAI_API_KEY="sk-fake-123456",
                    OPENAI_BASE_URL=fake.base_url)


class HeldModel:
    """The model's responder: asked, it answers (as ``echo``) once the test lets it, so a turn is
    in flight while the bot is stopped."""

    def __init__(self) -> None:
        self.asked, self.answer = threading.Event(), threading.Event()

    def __call__(self, request: dict) -> str:
        self.asked.set()
        self.answer.wait(HANG_GUARD)
        return echo(request)


def test_goat_bot_answers_a_message_as_a_new_user_runs_it(tmp_path: Path):
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        env = bot_env(tmp_path / "data", telegram, fake)
        with (tmp_path / "bot.stderr").open("w") as errors:
            bot = subprocess.Popen([str(GOAT), "bot"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            telegram.send(ALICE, ALICE, "Hello from a fresh install.")
            telegram.wait_for(lambda: telegram.chat(ALICE) == ["You said: Hello from a fresh install.."], timeout=120)
        finally:
            bot.terminate()  # SIGTERM, as a service manager stops it
            bot.wait(timeout=60)
        logged = (tmp_path / "bot.stderr").read_text()
        assert TOKEN not in logged and "sk-fake-123456" not in logged
        assert "Traceback" not in logged
        assert servers_left(tmp_path / "data") == []  # it stopped the embedded Redis it started
    # One line at start, shown by `goat bot` as it logs (warnings and up, otherwise).
    assert [line for line in logged.splitlines() if line.startswith("INFO bot.telegram")] == [
        f"INFO bot.telegram: goat bot: polling; model fake-model; 1 allowed user(s); "
        f"data folder {(tmp_path / 'data').resolve()}"]


def test_sigterm_mid_turn_stops_a_bot_started_by_a_script_once_the_turn_is_answered_and_stored(tmp_path: Path):
    """`goat bot &` in a script: the shell starts it with Ctrl-C ignored. SIGTERM while a turn waits
    on the model stops it as Ctrl-C at a terminal does: the turn finishes, its reply is sent and
    stored, and the bot exits 0, a service's clean stop, with no traceback."""
    held = HeldModel()
    with FakeOpenAI(responder=held) as fake, FakeTelegram(TOKEN) as telegram:
        env = bot_env(tmp_path / "data", telegram, fake)
        # A job of a non-interactive shell, which reports its pid, then its exit status.
        script = f'"{GOAT}" bot >/dev/null 2>bot.stderr & echo $!; wait $!; echo $?'
        shell = subprocess.Popen(["bash", "-c", script], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        bot = int(shell.stdout.readline())
        try:
            telegram.send(ALICE, ALICE, "The shed code is zebra-4471.")
            wait_for(held.asked.is_set, "the model to be asked", timeout=HANG_GUARD)
            assert ignores_ctrl_c(bot)  # as the shell left it, once it runs (read at the fork, a race)
            os.kill(bot, signal.SIGTERM)
            wait_for(lambda: "Application is stopping" in (tmp_path / "bot.stderr").read_text(),
                     "the bot to begin its stop", timeout=HANG_GUARD)
            held.answer.set()
            returncode = int(shell.stdout.readline())
        finally:
            held.answer.set()
            if shell.poll() is None:
                with suppress(ProcessLookupError):
                    os.kill(bot, signal.SIGKILL)
            shell.wait(HANG_GUARD)
        assert telegram.chat(ALICE) == ["You said: The shed code is zebra-4471.."]
    stopped_cleanly_having_stored("The shed code is zebra-4471.", returncode, (tmp_path / "bot.stderr").read_text(),
                                  env, tmp_path)


def test_a_second_sigterm_while_the_bot_stops_is_logged_and_the_turn_in_flight_is_still_answered_and_stored(
        tmp_path: Path):
    """An operator or a service manager may send SIGTERM twice. The second forces no way out: that
    would drop the turn in flight, whose update the bot's polling has already confirmed to Telegram
    (it is never delivered again), with a traceback from asyncio's shutdown and exit 130. It is
    logged, and the first stop goes on: the turn answered and stored, exit 0."""
    held, errors = HeldModel(), tmp_path / "bot.stderr"
    with FakeOpenAI(responder=held) as fake, FakeTelegram(TOKEN) as telegram:
        env = bot_env(tmp_path / "data", telegram, fake)
        with errors.open("w") as stderr:
            bot = subprocess.Popen([str(GOAT), "bot"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            telegram.send(ALICE, ALICE, "The bike lock code is otter-5530.")
            wait_for(held.asked.is_set, "the model to be asked", timeout=HANG_GUARD)
            bot.send_signal(signal.SIGTERM)
            wait_for(lambda: "Application is stopping" in errors.read_text(), "the bot to begin its stop",
                     timeout=HANG_GUARD)
            bot.send_signal(signal.SIGTERM)
            wait_for(lambda: "SIGTERM again" in errors.read_text() or bot.poll() is not None,
                     "the second SIGTERM to be taken", timeout=HANG_GUARD)
            held.answer.set()
            returncode = bot.wait(HANG_GUARD)
        finally:
            held.answer.set()
            if bot.poll() is None:
                bot.kill()
                bot.wait(HANG_GUARD)
        assert telegram.chat(ALICE) == ["You said: The bike lock code is otter-5530.."]
    stopped_cleanly_having_stored("The bike lock code is otter-5530.", returncode, errors.read_text(), env, tmp_path)


def stopped_cleanly_having_stored(said: str, returncode: int, logged: str, env: dict[str, str], cwd: Path) -> None:
    """A bot in ``cwd`` stopped mid-turn as a service is: exit 0, no traceback, the turn (alice
    saying ``said``, echoed) stored, the embedded servers it started gone."""
    assert returncode == 0, logged
    assert "Traceback" not in logged and "CRITICAL" not in logged
    [chat] = json.loads(ok(goat("export", "--user", str(ALICE), env=env, cwd=cwd)).stdout)["chats"]
    assert [m["content"] for m in chat["l2"]] == [said, echo({"messages": [{"content": said}]})]
    assert servers_left(cwd / "data") == []


def ignores_ctrl_c(pid: int) -> bool:
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":\t" in line)
    return bool(int(status["SigIgn"], 16) & (1 << (signal.SIGINT - 1)))


def test_goat_bot_without_a_token_says_how_to_get_one(tmp_path: Path):
    result = subprocess.run([str(GOAT), "bot"], env=goat_env(tmp_path / "data"), cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "@BotFather" in result.stderr and "TELEGRAM_BOT_TOKEN" in result.stderr


async def test_the_memory_commands(settings, embeddings):
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            for text in ("We planted San Marzano tomatoes on the balcony.", "The deploy failed with error E1234."):
                telegram.send(ALICE, ALICE, text)
                await until(telegram, lambda text=text: telegram.chat(ALICE)[-1:] == [f"You said: {text}."])
                await turn_done(runner, ALICE)
            assert await measurement_hooks(runner.services.memory).settle() == 0

            async def command(text: str) -> str:
                sent = len(telegram.chat(ALICE))
                telegram.send(ALICE, ALICE, text)
                await until(telegram, lambda: len(telegram.chat(ALICE)) > sent)
                return telegram.chat(ALICE)[-1]

            assert await command("/facts") == "I keep no facts about you yet."
            assert (await command("/remember dog=Biscuit")) == "Noted: dog = Biscuit"
            assert await command("/facts") == "dog: Biscuit"
            assert await command("/forget dog") == "Forgot dog."
            assert await command("/forget dog") == "I keep no fact called dog."
            assert "E1234" in await command("/search deploy error")
            why = await command("/why")  # the report goat chat's /why prints, in a fixed-width font
            assert why.startswith(f"» The deploy failed with error E1234.\n  chat {ALICE} · turn 2 · ")
            assert why.endswith("\n  tools called: none")
            assert "p50" in await command("/stats")
            assert (await command("/reset")).startswith("Starting afresh")
            assert (await runner.services.memory.working(str(ALICE), 10))[:2] == (2, [])
            assert "/forget_me" in await command("/help")


async def test_a_restarted_bot_answers_no_update_twice(settings, embeddings):
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        configured = bot_settings(settings, fake, telegram)
        async with running(configured, embeddings):
            telegram.send(ALICE, ALICE, "Before the restart.")
            await until(telegram, lambda: telegram.chat(ALICE) == ["You said: Before the restart.."])
        async with running(configured, embeddings):
            telegram.send(ALICE, ALICE, "After the restart.")
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 2)
        assert telegram.chat(ALICE) == ["You said: Before the restart..", "You said: After the restart.."]
        assert [r["messages"][-1]["content"] for r in fake.requests] == ["Before the restart.", "After the restart."]
