"""`goat bot --webhook`: several workers behind one load balancer, sharing Redis.

Telegram allows one ``getUpdates`` consumer per token, so workers past one receive updates
by webhook. A worker acknowledges an update only once it is in Redis, in its chat's inbox
(ordered by update id, a repeated delivery ignored), so a worker that dies loses nothing:
Telegram retries what was not acknowledged, and what was is in the inbox. Whichever worker
holds a chat's inbox lease drains it in order, one update after the other; a worker that
dies mid-turn stops renewing its lease, and another worker's sweep takes the chat over once
the lease has expired. A turn whose reply went out before its worker died is not answered
again: its update is marked answered once the reply's first message is in the chat (before
its last edit), and the worker taking over completes that turn from its checkpoint instead.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

from graph.runner import TurnRunner
from memory.stores import ChatLocks

log = logging.getLogger(__name__)

PREFIX = "goat:inbox"
PENDING_KEY = f"{PREFIX}:pending"  # chats whose inbox may hold updates: what a sweep looks at
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_KEY = f"{PREFIX}:secret"  # the webhook's secret token when none is configured, shared by every worker
NO_CHAT = "-"  # updates without a chat (inline queries, polls) share one inbox

# KEYS: the chat's update ids (sorted set), the updates (hash), the updates handled (sorted set,
# by when). ARGV: update id, the update's JSON. An update queued or handled is not queued again.
# Handled updates are remembered by id, not as "the highest id done": an id far ahead of the
# chat's (a forged one) would make every later real update look done, and the chat fall silent.
_ADD = """
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
return 1
"""
# KEYS: as _ADD, plus the update answered. ARGV: the update id now handled, now (ms), how long
# handled ids are remembered (ms): longer than Telegram redelivers an unacknowledged update.
_DONE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return 1
"""
HANDLED_KEPT_MS = 48 * 3600 * 1000  # Telegram keeps an unacknowledged update for 24 h
# An inbox orders its updates by a sorted set's score, a double: exact for integers up to 2**53.
MAX_UPDATE_ID = 2**53


def _keys(chat: str) -> list[str]:
    # One hash tag per chat: the scripts' keys share a Redis Cluster slot.
    return [f"{PREFIX}:{{{chat}}}:{part}" for part in ("ids", "updates", "handled", "answered")]


class Inbox:
    """Each chat's updates in Redis, in update-id order, until a worker has handled them."""

    def __init__(self, redis: Redis, lease_seconds: float) -> None:
        self._redis = redis
        self.leases = ChatLocks(redis, PREFIX, lease_seconds)
        self._add = redis.register_script(_ADD)
        self._done = redis.register_script(_DONE)

    async def put(self, update: dict[str, Any], chat: str) -> None:
        """Queue the update (its JSON) in the chat's inbox, once however often it is delivered."""
        await self._add(keys=_keys(chat)[:3], args=[update["update_id"], json.dumps(update)])
        await self._redis.sadd(PENDING_KEY, chat)  # after the update: a sweep that saw none re-adds it

    async def head(self, chat: str) -> tuple[int, dict[str, Any]] | None:
        """The chat's oldest update not yet handled, with its id."""
        ids, updates, *_ = _keys(chat)
        while first := await self._redis.zrange(ids, 0, 0):
            raw = await self._redis.hget(updates, first[0])
            if raw is not None:
                return int(first[0]), json.loads(raw)
            # Handled between the two reads (a worker's done() takes both at once): the next one.
        return None

    async def done(self, chat: str, update_id: int) -> None:
        await self._done(keys=_keys(chat), args=[update_id, int(time.time() * 1000), HANDLED_KEPT_MS])

    async def mark_answered(self, chat: str, update_id: int) -> None:
        """The update's reply is going out: a worker taking the chat over must not answer it again."""
        await self._redis.set(_keys(chat)[3], update_id)

    async def answered(self, chat: str, update_id: int) -> bool:
        return (await self._redis.get(_keys(chat)[3])) == str(update_id).encode()

    async def pending_chats(self) -> list[str]:
        """Chats that may have updates waiting; those found empty are dropped from the list."""
        chats = [chat.decode() for chat in await self._redis.smembers(PENDING_KEY)]
        waiting = []
        for chat in chats:
            # A chat with updates is never taken off the list, not even for a moment: a sweep
            # stopped there (its worker killed, Redis failing) would leave it to nobody.
            if not await self._redis.zcard(_keys(chat)[0]):
                await self._redis.srem(PENDING_KEY, chat)
                if not await self._redis.zcard(_keys(chat)[0]):
                    continue
                await self._redis.sadd(PENDING_KEY, chat)  # queued meanwhile: listed again
            waiting.append(chat)
        return waiting


async def shared_secret(redis: Redis) -> str:
    """The webhook's secret token when the operator set none: made once, strong, and kept in
    Redis, so every worker behind the webhook checks (and registers) the same one."""
    await redis.set(SECRET_KEY, secrets.token_urlsafe(32), nx=True)  # Telegram takes [A-Za-z0-9_-]{1,256}
    return (await redis.get(SECRET_KEY)).decode()


class WebhookWorker:
    """One worker: an HTTP endpoint that queues updates, and the draining of chats' inboxes."""

    def __init__(self, application: Application, runner: TurnRunner, inbox: Inbox, *, secret: str,
                 path: str, sweep_seconds: float, take_in: Callable[[Update], Awaitable[None]]) -> None:
        """``take_in(update)``: what the update brings that is kept before the update leaves its
        inbox (a listening group's line), then the handlers run."""
        self.application, self.runner, self.inbox, self._take_in = application, runner, inbox, take_in
        self._secret = secret
        self._sweep_seconds = sweep_seconds
        self._draining: dict[str, asyncio.Task] = {}
        self._stopping = asyncio.Event()
        self.app = Starlette(routes=[Route(f"/{path.lstrip('/')}", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        """An update from Telegram: acknowledged (200) once it is in Redis, refused without the
        secret token (403) or when it is no Telegram update (400), or answered 503 when Redis
        cannot take it, so Telegram retries."""
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), self._secret.encode()):
            return Response(status_code=403)
        try:
            update = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return Response("the body is not JSON", status_code=400)
        except RecursionError:
            return Response("the body is JSON nested too deeply to read", status_code=400)
        update_id = update.get("update_id") if isinstance(update, dict) else None
        # Refused here: queuing it would fail, and the 503 that says so would make Telegram retry it forever.
        if isinstance(update_id, bool) or not isinstance(update_id, int) or not 0 <= update_id <= MAX_UPDATE_ID:
            return Response(f"not a Telegram update (no update_id from 0 to {MAX_UPDATE_ID})", status_code=400)
        try:
            parsed = Update.de_json(update, self.application.bot)  # what the drain will do with it
        except Exception as exc:  # noqa: BLE001 — the library's error for any malformed field
            return Response(f"not a Telegram update ({type(exc).__name__})", status_code=400)
        # The chat the handlers see (bot/telegram.py reads the same effective_chat).
        chat = str(parsed.effective_chat.id) if parsed.effective_chat else NO_CHAT
        try:
            await self.inbox.put(update, chat)
        except Exception as exc:  # noqa: BLE001 — Telegram keeps the update and retries
            log.warning("could not queue update %s: %s", update["update_id"], type(exc).__name__)
            return Response(status_code=503)
        self.drain_soon(chat)
        return Response(status_code=200)

    def drain_soon(self, chat: str) -> None:
        if chat not in self._draining:
            self._draining[chat] = asyncio.create_task(self.drain(chat))
            self._draining[chat].add_done_callback(lambda _: self._draining.pop(chat, None))

    async def drain(self, chat: str) -> None:
        """Handle the chat's queued updates in order, unless another worker holds the chat."""
        # A worker that finds the chat held leaves it to the holder, which looks at the inbox
        # again after letting go: nothing queued meanwhile is left behind.
        try:
            while not self._stopping.is_set() and await self.inbox.head(chat) is not None:
                async with self.inbox.leases.hold(chat, wait=False) as held:
                    if not held:
                        return
                    while not self._stopping.is_set() and (head := await self.inbox.head(chat)) is not None:
                        await self._handle(chat, *head)
        except Exception as exc:  # noqa: BLE001 — the next sweep tries again
            log.warning("draining chat %s stopped: %s", chat, type(exc).__name__)

    async def _handle(self, chat: str, update_id: int, update: dict[str, Any]) -> None:
        if await self.inbox.answered(chat, update_id):
            await self.runner.recover([chat])  # its worker died after the reply: finish that turn
        else:  # the handlers (bot/telegram.py); a failure there is theirs to report
            try:
                parsed = Update.de_json(update, self.application.bot)
            except Exception as exc:  # noqa: BLE001 — unreadable (queued by another version): skipped,
                # never left at the head of the chat's inbox, where it would hold every later update
                log.warning("skipping unreadable update %s of chat %s: %s", update_id, chat, type(exc).__name__)
            else:
                await self._take_in(parsed)
                await self.application.process_update(parsed)
        await self.inbox.done(chat, update_id)

    async def sweep(self) -> None:
        """Now and then, take over the chats whose worker died (their leases have expired)."""
        while not self._stopping.is_set():
            with suppress(Exception):
                for chat in await self.inbox.pending_chats():
                    self.drain_soon(chat)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._sweep_seconds)

    @asynccontextmanager
    async def serving(self, listen: str, port: int) -> AsyncIterator[None]:
        """The endpoint listening (bound before this yields: updates sent at once wait in the
        socket's backlog) and the sweeps running, until the block is left."""
        sock = socket.create_server((listen, port))
        server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off"))
        tasks = [asyncio.create_task(server.serve(sockets=[sock])), asyncio.create_task(self.sweep())]
        try:
            yield
        finally:
            server.should_exit = True
            # The flag ends the sweep even if its cancellation is swallowed (redis-py on 3.11).
            self._stopping.set()
            for task in [*tasks[1:], *self._draining.values()]:
                task.cancel()
            for task in [*tasks, *self._draining.values()]:
                with suppress(asyncio.CancelledError):
                    await task
            sock.close()
