"""HeardConversation: memory's door for a group's own conversation, heard where the group asked
to be listened to (``Memory.heard``): the group's choice and its retention, the lines heard, and
their erasure once older than the retention.

A line heard is durable once :meth:`HeardConversation.keep` returns (a face confirms the update
to its client only then): it waits in the chat's list in Redis. Behind the conversation, lines
are written in batches, as a turn's message without a reply is: in L2 (a turn each, with its
speaker and the client's message id, linked so that an edit finds it) and in L3 through the
outbox, so recall, forget and export treat them as any line of the chat. A turn of the chat
writes the lines waiting first (``Memory.turn``), so it reads them; an edit waits in line behind
the message it edits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass

from memory.copies import TurnCopies
from memory.entries import ChatEntries
from memory.errors import BackendUnavailable
from memory.prompt.tokens import count_tokens
from memory.stores.archive import Archive
from memory.stores.chat_owners import ChatOwners
from memory.stores.chat_users import users_of_chat
from memory.stores.erasure import DataFolderErasure
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import PREFIX, RedisBackend, is_redis_failure
from memory.stores.working import MessageLink
from memory.turns import Exchange, Message, Standing, Writers, archived_texts

log = logging.getLogger(__name__)

WAITING_CHATS_KEY = f"{PREFIX}:heard:chats"  # chats whose lines may wait to be written
LISTENING_KEY = f"{PREFIX}:listen"  # chat -> the group's choice and retention (JSON)
_BATCH_PAUSE_S = 0.5  # lines gathered this long before a batch is written: one write for a burst
_BATCH_LINES = 500  # lines of one chat written in one step at most


@dataclass(frozen=True)
class HeardLine:
    """A message heard in a group, or the new text of one (``edited``)."""

    ref: str  # the message's id in its client (Telegram's message id)
    user_id: str
    text: str
    at: float  # when it was said (unix seconds)
    name: str | None = None  # the speaker's display name then
    edited: bool = False


@dataclass(frozen=True)
class Listening:
    """A group's own choice: whether it is listened to (None: it never said) and for how many days
    its lines are kept (None: as the deployment keeps them)."""

    on: bool | None = None
    days: float | None = None


class HeardConversation:
    def __init__(self, redis: RedisBackend, l3: L3Backend, erasure: DataFolderErasure, archiver: Archive,
                 entries: ChatEntries, owners: ChatOwners, copies: TurnCopies,
                 hold: Callable[..., AbstractAsyncContextManager[bool]]) -> None:
        """``hold(chat_id, wait=…)``: the chat held as a turn holds it (its lease)."""
        self._redis, self._l3, self._erasure, self._archiver = redis, l3, erasure, archiver
        self._entries, self._owners, self._copies, self._hold = entries, owners, copies, hold
        self._writer: asyncio.Task | None = None
        self._wanted = asyncio.Event()

    # ---- the group's choice -------------------------------------------------------------

    async def listening(self, chat_id: str) -> Listening:
        raw = await (await self._redis.client()).hget(LISTENING_KEY, chat_id)
        return Listening(**json.loads(raw)) if raw else Listening()

    async def choose(self, chat_id: str, choice: Listening) -> None:
        """Record the group's choice (both fields, as given)."""
        await (await self._redis.client()).hset(LISTENING_KEY, chat_id, json.dumps(asdict(choice)))

    async def choices(self) -> dict[str, Listening]:
        """Every group's choice, by chat."""
        found = await (await self._redis.client()).hgetall(LISTENING_KEY)
        return {chat.decode(): Listening(**json.loads(raw)) for chat, raw in found.items()}

    # ---- lines heard ----------------------------------------------------------------------

    async def keep(self, chat_id: str, line: HeardLine) -> None:
        """Keep a line heard (or an edit of one): durable in Redis once this returns, written to
        L2 and L3 behind the conversation."""
        async with (await self._redis.client()).pipeline(transaction=False) as pipe:
            pipe.rpush(await self._waiting_key(chat_id), json.dumps(asdict(line)))
            pipe.sadd(WAITING_CHATS_KEY, chat_id)
            await pipe.execute()
        self.wake()

    async def write_held(self, chat_id: str) -> list[str]:
        """Write the chat's lines waiting, in order (the chat held by the caller): messages in
        batches, each edit once the lines before it are written.

        Returns:
            The texts edits replaced: the caller erases them once the chat is free
            (``ChatEntries.erase_replaced``).
        """
        redis, key, replaced = await self._redis.client(), await self._waiting_key(chat_id), []
        while raw := await redis.lrange(key, 0, _BATCH_LINES - 1):
            lines = [HeardLine(**json.loads(item)) for item in raw]
            said = next((n for n, line in enumerate(lines) if line.edited), len(lines))
            if said:
                await self._write_said(chat_id, lines[:said], key)
            else:
                edit = lines[0]
                try:
                    replaced += await self._entries.edit_held(chat_id, edit.ref, edit.user_id, edit.text) or []
                except Exception as exc:
                    if is_redis_failure(exc):
                        raise
                    # L3 cannot take it now: it waits, and the lines behind it with it (a turn goes on).
                    log.warning("a heard edit waits: %s: %s", type(exc).__name__, exc)
                    break
                await redis.lpop(key)
        return replaced

    async def _write_said(self, chat_id: str, lines: list[HeardLine], key: str) -> None:
        """Messages heard, as turns of one message each: the L3 outbox first (its ids are the
        turns', so writing it again after a crash adds nothing), then L2, links and the list's
        head in one step."""
        working = await self._redis.working()
        await self._owners.enter(chat_id, Writers(frozenset(line.user_id for line in lines), Standing.VOUCHED))
        completed = await working.completed_turns(chat_id)
        numbered = list(enumerate(lines, start=completed + 1))
        await self._archiver.later([Exchange(chat_id, line.user_id, turn, line.at, line.text, None, line.name,
                                             heard=True) for turn, line in numbered], time.time())
        stored = [(_message(line), line.ref, MessageLink(turn, line.at, len(line.text), line.user_id, heard=True))
                  for turn, line in numbered]
        if not await working.append_heard(chat_id, completed, stored, key):
            raise RuntimeError(f"chat {chat_id}'s turns moved while it was held")

    async def _waiting_key(self, chat_id: str) -> str:
        return f"{PREFIX}:heard:{(await self._redis.working()).tag(chat_id)}"

    async def write_all(self, *, wait: bool = True) -> None:
        """Write every chat's lines waiting, each chat held in turn (without ``wait``, a chat held
        by a turn is left to it), then erase what edits replaced."""
        redis = await self._redis.client()
        for chat_id in sorted(member.decode() for member in await redis.smembers(WAITING_CHATS_KEY)):
            replaced: list[str] = []
            async with self._hold(chat_id, wait=wait) as held:
                if not held:
                    continue
                replaced = await self.write_held(chat_id)
                # Off the list once empty; a line kept meanwhile puts it back (kept: list, then set).
                if not await redis.llen(await self._waiting_key(chat_id)):
                    await redis.srem(WAITING_CHATS_KEY, chat_id)
                    if await redis.llen(await self._waiting_key(chat_id)):
                        await redis.sadd(WAITING_CHATS_KEY, chat_id)
            await self._entries.erase_replaced(chat_id, replaced)

    def wake(self) -> None:
        """Have the lines waiting written soon, by this process's writer (started if needed)."""
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            self._wanted = asyncio.Event()
            self._writer = loop.create_task(self._write_behind(), name="goat-heard-writer")
        self._wanted.set()

    async def _write_behind(self) -> None:
        while True:
            await self._wanted.wait()
            await asyncio.sleep(_BATCH_PAUSE_S)  # a burst's lines gathered into one write
            self._wanted.clear()
            try:
                await self.write_all(wait=False)
            except Exception as exc:  # noqa: BLE001 — the lines stay in Redis: tried again
                log.warning("heard lines not written now: %s: %s", type(exc).__name__, exc)
                self._wanted.set()
                continue
            if await (await self._redis.client()).scard(WAITING_CHATS_KEY):
                self._wanted.set()  # a chat a turn held, or lines kept meanwhile

    async def aclose(self) -> None:
        """Stop the writer, then write what waits (what cannot be written stays for the next start)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            try:
                await self.write_all()
            except Exception as exc:  # noqa: BLE001 — kept in Redis for the next process
                log.warning("heard lines left for the next start: %s: %s", type(exc).__name__, exc)

    # ---- retention ----------------------------------------------------------------------------

    async def erase_before(self, chat_id: str, before: float) -> int:
        """Erase the chat's heard lines said before ``before`` (unix seconds) from L2, L3, the word
        index, the cached searches and the chat's copies, then from the data folder's files, as a
        forget erases. The chat's turns addressed to the bot stay.

        Returns:
            How many lines were erased.
        """
        async with self._hold(chat_id):
            await self.write_held(chat_id)
            if await self._archiver.flush():
                raise BackendUnavailable("chroma", f"the archive cannot be written ({self._l3.problem or 'unreachable'})")
            store = await self._l3.episodic()
            old = [hit for hit in await self._l3.call(store.entries, chat_id)
                   if hit["metadata"].get("heard") and hit["timestamp"] < before]
            removed = await (await self._redis.working()).remove_heard_before(chat_id, before)
            if old:
                await self._l3.call(store.delete_entries, chat_id, [hit["id"] for hit in old])
                await self._archiver.indexer.rebuild_index(chat_id)
            await self._redis.invalidate_searches_of(chat_id, await users_of_chat(self._redis, chat_id), delete=True)
        texts = {*removed, *(text for hit in old for text in archived_texts(hit["content"]))}
        if texts:
            await self._copies.cut([chat_id], texts)
            await self._erasure.erase_deleted(l3=True)
        return max(len(old), len(removed))


def _message(line: HeardLine) -> Message:
    message = Message(role="user", content=line.text, timestamp=line.at, user_id=line.user_id, heard=True,
                      tokens=count_tokens(line.text))
    if line.name:
        message["name"] = line.name
    return message
