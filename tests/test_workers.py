"""Several `goat bot --webhook` workers behind one load balancer, sharing one Redis and one Chroma
server: chats interleaved across the workers, an update delivered twice, and a worker killed in
the middle of a turn. Every turn is answered, saved and archived once, in its chat's order.

The load balancer is this test: it posts each update to one worker or the other, as Telegram
would post it to the balancer. Telegram's Bot API is the loopback fake; the model is one fake
per worker, so the test knows which worker a model call came from."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from graph.runner import TurnRunner
from bot.telegram import build_application, taking_in
from bot.webhook import Inbox, WebhookWorker
from bench.support.fakes import FakeOpenAI
from bench.support.fakes.telegram_server import FakeTelegram
from graph.settings import Settings
from memory.facade import Memory, measurement_hooks
from memory.turns import archive_id
from nodes.state import turn_input
from test_cli import GOAT, goat_env
from test_graph import make_runner
from test_telegram import TOKEN, bot_settings, echo
from conftest import free_port, memorys_redis, wait_for

pytestmark = pytest.mark.slow

SECRET = "hook-secret-31-4f9a0c"
# The session's Redis and Chroma are shared with other tests: chats of this run's own.
_BASE = random.randrange(10**6, 10**9)
ANA, BOB, EVE, ZOE, MAX = (_BASE + n for n in range(1, 6))
NAMES = {ANA: "ana", BOB: "bob", EVE: "eve", ZOE: "zoe", MAX: "max"}
CHATS = (ANA, BOB, EVE)  # the two workers' chats
MESSAGES = ["first", "second", "third", "fourth"]
VICTIM = (ANA, "third")  # the turn during which its worker is killed
LEASE_SECONDS = "6"  # how long a dead worker's chats wait for another worker (a loaded host stalls workers for seconds)


def said(chat: int, text: str) -> str:
    return f"{NAMES[chat]}: {text}"


def reply_to(text: str) -> str:
    return f"You said: {text}."


class Model(FakeOpenAI):
    """A worker's model: echoes, except that the victim's message blocks the first time it comes,
    until the test has killed the worker that asked."""

    def __init__(self, name: str, blocked: threading.Event, caught: list[str], release: threading.Event) -> None:
        super().__init__(responder=self._respond)
        self.name, self._blocked, self._caught, self._release = name, blocked, caught, release

    def _respond(self, request: dict) -> str:
        text = request["messages"][-1]["content"]
        if text == said(*VICTIM) and not self._blocked.is_set():
            self._caught.append(self.name)
            self._blocked.set()
            self._release.wait(120)
        return reply_to(text)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def update(update_id: int, chat: int, text: str) -> dict:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": int(time.time()), "text": text,
        "chat": {"id": chat, "type": "private"}, "from": {"id": chat, "is_bot": False, "first_name": NAMES[chat]}}}


def test_two_workers_answer_every_turn_once_in_order_and_take_over_a_killed_ones_chats(
        tmp_path: Path, redis_url: str, chroma_url: str, embeddings) -> None:
    blocked, release, caught = threading.Event(), threading.Event(), []
    ports = {"a": free_port(), "b": free_port()}
    workers: dict[str, subprocess.Popen] = {}
    with FakeTelegram(TOKEN) as telegram, Model("a", blocked, caught, release) as model_a, \
            Model("b", blocked, caught, release) as model_b:
        try:
            for name, model in (("a", model_a), ("b", model_b)):
                env = goat_env(
                    tmp_path / f"data-{name}", GOAT_REDIS_URL=redis_url, GOAT_CHROMA_URL=chroma_url,
                    TELEGRAM_BOT_TOKEN=TOKEN, GOAT_TELEGRAM_API_URL=telegram.base_url,
                    GOAT_TELEGRAM_WEBHOOK_SECRET=SECRET, GOAT_ALLOWED_USERS=",".join(map(str, CHATS)),
                    GOAT_MODEL="fake-model", OPENAI_API_KEY="sk-fake", OPENAI_BASE_URL=model.base_url,
                    GOAT_REDIS__CHAT_LOCK_SECONDS=LEASE_SECONDS, GOAT_TELEGRAM__EDIT_INTERVAL="0.05")
                with (tmp_path / f"worker-{name}.log").open("w") as log:
                    workers[name] = subprocess.Popen(
                        [str(GOAT), "bot", "--webhook", "https://bot.example/hook", "--port", str(ports[name])],
                        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
            for name, port in ports.items():
                wait_for(lambda: listening(port) or workers[name].poll() is not None, f"worker {name} listening")
                assert workers[name].poll() is None, (tmp_path / f"worker-{name}.log").read_text()

            # The balancer: round robin over the workers, each update once, in Telegram's order,
            # chats interleaved; one update is delivered twice (to both workers).
            updates = [update(n, chat, said(chat, text))
                       for n, (text, chat) in enumerate(((t, c) for t in MESSAGES for c in CHATS), start=1)]
            with httpx.Client(headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as balancer:
                for n, sent in enumerate(updates):
                    name = "ab"[n % 2]
                    response = balancer.post(f"http://127.0.0.1:{ports[name]}/hook", json=sent)
                    assert response.status_code == 200, response.text
                    if sent["message"]["text"] == said(BOB, "second"):  # Telegram retries one delivery
                        again = balancer.post(f"http://127.0.0.1:{ports['ab'[(n + 1) % 2]]}/hook", json=sent)
                        assert again.status_code == 200
                    if sent["message"]["text"] == said(*VICTIM):
                        wait_for(blocked.is_set, "the victim's turn to reach a model")
                        # Its worker may still be ending another chat's turn: killed between that
                        # reply reaching Telegram and its update marked answered, it would be answered
                        # twice (README). Only the victim's turn is left open when the worker dies.
                        others = [chat for chat in CHATS if chat != VICTIM[0]]
                        wait_for(lambda: asyncio.run(_handled(redis_url, others)), "the other chats' turns to end")
                        [victim] = caught
                        workers[victim].kill()  # mid-turn: its model call is still open
                        workers[victim].wait()
                        release.set()
                        survivor = "ab"["ab".index(victim) - 1]
                        # The balancer sends the rest to the worker still alive.
                        ports = {name: ports[survivor] for name in ports}

            expected = {chat: [reply_to(said(chat, text)) for text in MESSAGES] for chat in CHATS}
            telegram.wait_for(lambda: all(telegram.chat(chat) == expected[chat] for chat in CHATS), timeout=120)
        finally:
            release.set()
            for process in workers.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in workers.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    assert all(telegram.chat(chat) == expected[chat] for chat in CHATS)  # nothing sent after the wait either
    asyncio.run(_every_turn_saved_and_archived_once(tmp_path, redis_url, chroma_url, embeddings))


async def _handled(redis_url: str, chats: list[int]) -> bool:
    """Whether every update queued for these chats has been handled (their inboxes are empty)."""
    client = Redis.from_url(redis_url)
    try:
        inbox = Inbox(client, 1)
        return all([await inbox.head(str(chat)) is None for chat in chats])
    finally:
        await client.aclose()


async def _every_turn_saved_and_archived_once(tmp_path: Path, redis_url: str, chroma_url: str, embeddings) -> None:
    memory = Memory(Settings(data_dir=tmp_path / "check", redis={"url": redis_url}, chroma={"url": chroma_url}),
                    embeddings=embeddings)
    try:
        assert await measurement_hooks(memory).settle() == 0
        store = await memory._backends.l3.episodic()
        for chat in CHATS:
            completed, messages, _ = await memory.working(str(chat), 100)
            assert completed == len(MESSAGES)
            assert [m["content"] for m in messages] == [
                part for text in MESSAGES for part in (said(chat, text), reply_to(said(chat, text)))]
            assert store.count(str(chat)) == len(MESSAGES)
            archived = store.get_by_ids([str(chat)], [archive_id(str(chat), n) for n in range(1, 8)])
            assert sorted(entry["id"] for entry in archived) == [archive_id(str(chat), n) for n in range(1, 5)]
    finally:
        await memory.aclose()


@asynccontextmanager
async def taking_over(settings: Settings, embeddings) -> AsyncIterator[tuple[TurnRunner, WebhookWorker]]:
    """A worker as `goat bot --webhook` builds it, without its HTTP endpoint: drained by the test."""
    runner = make_runner(settings, embeddings)
    try:
        application = build_application(runner, settings)
        async with application, memorys_redis(runner.services.memory) as redis:
            goat = application.bot_data["goat"]
            goat.inbox = Inbox(redis, 30)
            yield runner, WebhookWorker(application, runner, goat.inbox, secret=None, path="hook", sweep_seconds=15,
                                        take_in=taking_in(application))
    finally:
        await runner.aclose()


async def test_an_update_answered_before_its_worker_died_is_completed_not_answered_again(settings, embeddings):
    # The worker died after its reply went out and before the turn was saved: the reply is in
    # the chat's checkpoint and the update is marked answered. The worker that takes the chat
    # over completes that turn and handles the next update; the model is not asked again.
    chat = str(ZOE)
    first, second = said(ZOE, "first"), said(ZOE, "second")
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        configured = bot_settings(settings, fake, telegram, allowed=(ZOE,))
        dead = make_runner(configured, embeddings)
        try:
            assert not await dead.services.memory._journal.begin(chat)
            await (await dead.graph()).ainvoke(
                turn_input(chat, first, str(ZOE)), {"configurable": {"thread_id": chat}}, context=dead.context(),
                interrupt_before=["save"], durability="sync")
            async with memorys_redis(dead.services.memory) as redis:
                inbox = Inbox(redis, 30)
                await inbox.put(update(1, ZOE, first), chat)
                await inbox.mark_answered(chat, 1)
                await inbox.put(update(2, ZOE, second), chat)
                await inbox.put(update(1, ZOE, first), chat)  # delivered again: not queued twice
        finally:
            await dead.aclose()

        async with taking_over(configured, embeddings) as (runner, worker):
            await worker.drain(chat)
            assert await worker.inbox.head(chat) is None
            assert [r["messages"][-1]["content"] for r in fake.requests] == [first, second]
            assert telegram.chat(ZOE) == [reply_to(second)]
            completed, messages, _ = await runner.services.memory.working(chat, 10)
            assert completed == 2
            assert [m["content"] for m in messages] == [first, reply_to(first), second, reply_to(second)]
            await inbox_after_done_refuses(worker.inbox, chat)


async def test_an_unreadable_update_is_skipped_not_left_holding_its_chat(settings, embeddings):
    chat, text = str(MAX), said(MAX, "after the bad one")
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with taking_over(bot_settings(settings, fake, telegram, allowed=(MAX,)), embeddings) as (_, worker):
            broken = update(1, MAX, "x")
            broken["message"]["date"] = "not a date"  # queued by a worker that did not check it
            await worker.inbox.put(broken, chat)
            await worker.inbox.put(update(2, MAX, text), chat)
            await worker.drain(chat)
            assert await worker.inbox.head(chat) is None
        assert telegram.chat(MAX) == [reply_to(text)]


async def inbox_after_done_refuses(inbox: Inbox, chat: str) -> None:
    """An update already handled, delivered once more (Telegram retries what it saw no 200 for)."""
    await inbox.put(update(2, ZOE, said(ZOE, "second")), chat)
    assert await inbox.head(chat) is None
