"""A group heard whole where it asks for it (bot/telegram_groups.py, memory/heard.py): the real
python-telegram-bot client against the loopback Bot API (bench/support/fakes/telegram_server.py) and the
loopback model, on real Redis, Chroma and encoder."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis
from conftest import free_port
from test_cli import GOAT, goat, ok
from test_erasure import files_holding
from test_telegram import ALICE, BOB, STRANGER, TOKEN, bot_env, bot_settings, echo, running, turn_done, until

from bot.telegram_groups import DAY_S, PRIVACY_ON, GroupListening, notice
from bot.webhook import SECRET_HEADER
from memory.facade import measurement_hooks
from bench.support.fakes import FakeOpenAI
from bench.support.fakes.telegram_server import FakeTelegram
from graph.settings import Settings

pytestmark = pytest.mark.slow

LISTENING, QUIET = -100777, -100888
ANNA, CARL = "Anna", "Carl"  # ALICE's and the stranger's names; BOB is Bob
VENUE = "The venue should be the boathouse by the lake, it has room for forty."
SMALL_TALK = ["Who is coming on Saturday?", "I can bring two chairs.", "Does anyone have a speaker?",
              "I'll ask my cousin for one.", "Should we start at six?", "Six works for me.", "Seven is better.",
              "Let's say half past six then.", "Who brings the drinks?", "I can do lemonade."]
PEOPLE = [(ALICE, ANNA), (BOB, "Bob"), (STRANGER, CARL)]


def thirty_lines() -> list[tuple[int, str, str]]:
    """30 lines of three members, none addressed to the bot; Anna's 12th is about the venue."""
    lines = [(*PEOPLE[n % 3], SMALL_TALK[n % len(SMALL_TALK)] + f" ({n})") for n in range(30)]
    lines[12] = (ALICE, ANNA, VENUE)
    return lines


def said(telegram: FakeTelegram, chat: int, lines: list[tuple[int, str, str]]) -> list[dict]:
    return [telegram.send(chat, user, text, chat_type="group", first_name=name) for user, name, text in lines]


async def asked(telegram: FakeTelegram, runner, chat: int, user: int, name: str, text: str) -> None:
    """A member mentions the bot; returns once its reply is sent and its turn stored."""
    replies = len(telegram.chat(chat))
    telegram.send(chat, user, f"@goat_test_bot {text}", chat_type="group", first_name=name)
    await until(telegram, lambda: len(telegram.chat(chat)) > replies)
    await turn_done(runner, chat)


def keys_naming(url: str, chat: int) -> list[bytes]:
    with redis.Redis.from_url(url) as client:
        return [key for key in client.scan_iter(count=1000) if str(chat).encode() in key]


async def test_a_listening_group_is_recalled_by_speaker_and_a_quiet_one_keeps_nothing(settings, embeddings, redis_url):
    """/listen on from a member who is no administrator is refused; from one it starts, with the
    notice. 30 lines nobody addressed to the bot, then "@bot what did Anna say about the venue?":
    the prompt holds Anna's line under her name, and the reply is sent. The same 30 lines in a
    group that never opted in store nothing. /listen off stops the hearing and keeps what was heard."""
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        telegram.administrators[LISTENING] = {ALICE}
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            telegram.send(LISTENING, BOB, "/listen on", chat_type="group", first_name="Bob")
            await until(telegram, lambda: telegram.chat(LISTENING))
            telegram.send(LISTENING, ALICE, "/listen on", chat_type="group", first_name=ANNA)
            await until(telegram, lambda: len(telegram.chat(LISTENING)) == 2)
            said(telegram, QUIET, thirty_lines())
            said(telegram, LISTENING, thirty_lines())
            await asked(telegram, runner, LISTENING, BOB, "Bob", "what did Anna say about the venue?")
            prompt = fake.requests[-1]["messages"]
            telegram.send(LISTENING, ALICE, "/listen off", chat_type="group", first_name=ANNA)
            await until(telegram, lambda: len(telegram.chat(LISTENING)) == 4)
            telegram.send(LISTENING, STRANGER, "Not heard any more.", chat_type="group", first_name=CARL)
            await asked(telegram, runner, LISTENING, ALICE, ANNA, "anything new?")
            completed, heard, people = await runner.services.memory.working(str(LISTENING), 100)
            assert await measurement_hooks(runner.services.memory).settle() == 0
            archived, _ = await runner.services.memory.entries.page(str(LISTENING), 1000)
    refused, started, reply, stopped, _ = telegram.chat(LISTENING)
    assert refused == "Only the group's administrators can change what I keep of it."
    assert started == notice(0.0)
    assert reply == "You said: Bob: what did Anna say about the venue?."
    assert f"Anna: {VENUE}" in [message["content"] for message in prompt]
    assert stopped.startswith("I stopped listening")
    assert keys_naming(redis_url, QUIET) == [] and len(fake.requests) == 2
    assert people == {str(ALICE): ANNA, str(BOB): "Bob", str(STRANGER): CARL}
    assert completed == 32 and [m["content"] for m in heard[:30]] == [text for _, _, text in thirty_lines()]
    assert "Not heard any more." not in json.dumps(heard) + json.dumps(archived)
    assert sum(1 for entry in archived if entry["metadata"].get("heard")) == 30
    [venue] = [entry for entry in archived if VENUE in entry["content"]]
    assert venue["metadata"]["name"] == ANNA and venue["metadata"]["user_id"] == str(ALICE)


def listening(configured: Settings) -> Settings:
    """The settings with the group listened to by the operator's choice."""
    return configured.model_copy(update={"telegram": configured.telegram.model_copy(
        update={"listen_groups": (LISTENING,)})})


def listening_settings(tmp_path: Path, fake: FakeOpenAI, telegram: FakeTelegram) -> Settings:
    """A bot with its own data folder (its embedded Redis's files in it), the group listened to."""
    return listening(bot_settings(Settings(data_dir=tmp_path / "data"), fake, telegram))


async def test_an_edit_rewrites_a_heard_line_and_forget_me_erases_a_members_lines_from_every_file(tmp_path, embeddings):
    """Carl, whom the bot does not serve, is heard; his edit rewrites his line (the next turn reads
    it, and the earlier text is gone from every file once the bot has stopped); his /forget_me, in
    private, after a restart, leaves none of his words in any file, and the others' lines stay."""
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        configured = listening_settings(tmp_path, fake, telegram)
        async with running(configured, embeddings) as runner:
            [booking, _] = said(telegram, LISTENING, [(STRANGER, CARL, "I'll book Luigi's, code walnut-7731."),
                                                     (BOB, "Bob", "Great, I bring lemonade-4410.")])
            telegram.edit(booking, "I'll book Luigi's, code maple-2290.")
            await asked(telegram, runner, LISTENING, ALICE, ANNA, "who books the table?")
        asked_with = json.dumps(fake.requests[-1])
        edited_away = files_holding(tmp_path / "data", "walnut-7731")
        async with running(configured, embeddings) as runner:
            memory = runner.services.memory
            telegram.send(STRANGER, STRANGER, "/export")  # his, though the bot does not serve him
            await until(telegram, lambda: telegram.documents)
            telegram.send(STRANGER, STRANGER, "/forget_me")
            await until(telegram, lambda: len(telegram.chat(STRANGER)) == 1)
            telegram.send(STRANGER, STRANGER, "/forget_me yes")
            await until(telegram, lambda: telegram.chat(STRANGER)[-1].startswith("Done"))
            assert await measurement_hooks(memory).settle() == 0
            _, left, _ = await memory.working(str(LISTENING), 100)
            forgotten = files_holding(tmp_path / "data", "Luigi")
    assert "Carl: I'll book Luigi's, code maple-2290." in asked_with and "walnut-7731" not in asked_with
    assert edited_away == []
    [carls] = json.loads(telegram.documents[0]["content"])["chats"]
    assert [m["content"] for m in carls["l2"]] == ["I'll book Luigi's, code maple-2290."]
    assert [m["content"] for m in left][:1] == ["Great, I bring lemonade-4410."]
    assert forgotten == [] and files_holding(tmp_path / "data", "Luigi") == []


async def test_a_retention_of_30_days_erases_the_older_heard_lines_from_every_file_and_keeps_the_newer(
        tmp_path, embeddings):
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(listening_settings(tmp_path, fake, telegram), embeddings) as runner:
            memory = runner.services.memory
            telegram.administrators[LISTENING] = {ALICE}
            telegram.send(LISTENING, ALICE, "/listen keep 30", chat_type="group", first_name=ANNA)
            await until(telegram, lambda: telegram.chat(LISTENING))
            month_ago = int(time.time() - 31 * DAY_S)
            telegram.send(LISTENING, BOB, "The old plan was the quarry-5123 picnic.", chat_type="group",
                          first_name="Bob", date=month_ago)
            telegram.send(LISTENING, BOB, "The new plan is the orchard-8841 picnic.", chat_type="group",
                          first_name="Bob")
            await asked(telegram, runner, LISTENING, ALICE, ANNA, "what is the plan?")
            assert await measurement_hooks(memory).settle() == 0
            goat = GroupListening(memory, runner.services.settings.telegram)
            assert await goat.days(LISTENING) == 30
            assert await goat.expire() == 1
            assert await measurement_hooks(memory).settle() == 0
            _, kept, _ = await memory.working(str(LISTENING), 100)
            data = Path(runner.services.settings.data_dir)
            assert files_holding(data, "quarry-5123") == []
            assert files_holding(data, "orchard-8841")
    assert [m["content"] for m in kept] == ["The new plan is the orchard-8841 picnic.", "what is the plan?",
                                            "You said: Anna: what is the plan?."]


def test_a_bot_killed_after_confirming_heard_lines_loses_none(tmp_path: Path):
    """`goat bot` confirms a heard line's update to Telegram only once the line is kept: killed
    (SIGKILL) right after, nothing is lost; the next process writes what waited."""
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        env = {**bot_env(tmp_path / "data", telegram, fake), "GOAT_TELEGRAM__LISTEN_GROUPS": str(LISTENING)}
        bot = subprocess.Popen([str(GOAT), "bot"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            sent = said(telegram, LISTENING, [(STRANGER, CARL, f"Line {n} of the burst, kiwi-{n}.") for n in range(40)])
            last = telegram.push({"message": {**sent[-1], "message_id": 1, "text": "a marker", "chat": {
                "id": STRANGER, "type": "private"}}})["update_id"]
            telegram.wait_for(lambda: telegram.confirmed >= last - 1, timeout=120)
        finally:
            bot.kill()
            bot.wait(60)
    [chat] = json.loads(ok(goat("export", "--user", str(STRANGER), env=env, cwd=tmp_path)).stdout)["chats"]
    assert [m["content"] for m in chat["l2"]] == [f"Line {n} of the burst, kiwi-{n}." for n in range(40)]


async def test_privacy_mode_hiding_a_listening_groups_messages_is_told_at_start_and_at_listen_on(
        settings, embeddings, caplog):
    """getMe says Telegram sends the bot only what is addressed to it: `goat bot` warns at start,
    naming the groups that listen, and /listen on tells the group's administrator how to fix it."""
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        telegram.reads_all_group_messages = False
        telegram.administrators[QUIET] = {ALICE}
        configured = listening(bot_settings(settings, fake, telegram))
        async with running(configured, embeddings):
            telegram.send(QUIET, ALICE, "/listen on", chat_type="group", first_name=ANNA)
            await until(telegram, lambda: len(telegram.chat(QUIET)) == 2)
            telegram.send(QUIET, ALICE, "/listen", chat_type="group", first_name=ANNA)
            await until(telegram, lambda: len(telegram.chat(QUIET)) == 3)
    [warning] = [r.getMessage() for r in caplog.records if r.name == "bot.telegram" and r.levelno == logging.WARNING]
    assert f"1 group(s) listen ({LISTENING})" in warning and "/setprivacy" in warning
    assert telegram.chat(QUIET) == [notice(0.0), PRIVACY_ON, "I am listening to this group."]


async def test_by_webhook_a_heard_line_is_kept_before_its_update_leaves_the_inbox(settings, embeddings):
    port = free_port()
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        configured = listening(bot_settings(settings, fake, telegram))
        async with running(configured, embeddings, webhook="https://bot.example/hook", port=port):
            secret = telegram.methods("setWebhook")[0]["secret_token"]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={SECRET_HEADER: secret}) as client:
                for update_id, (user, name, text) in enumerate([(STRANGER, CARL, VENUE.replace("boathouse", "mill")),
                                                                 (BOB, "Bob", "@goat_test_bot where is the venue?")]):
                    update = {"update_id": update_id + 1, "message": {
                        "message_id": update_id + 1, "date": int(time.time()), "text": text,
                        "chat": {"id": LISTENING, "type": "supergroup", "title": "group"},
                        "from": {"id": user, "is_bot": False, "first_name": name}}}
                    assert (await client.post("/hook", json=update)).status_code == 200
                await until(telegram, lambda: telegram.chat(LISTENING))
    assert f"Carl: {VENUE.replace('boathouse', 'mill')}" in [m["content"] for m in fake.requests[-1]["messages"]]
