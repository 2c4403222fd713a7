"""One chat's turns, one at a time: in arrival order inside a process, exclusive across processes.

Inside a process, a FIFO asyncio lock per chat keeps arrival order (a chat's turn number
and L2 order depend on it) and lets different chats run concurrently. Across worker
processes sharing one Redis, a short lease (``SET NX PX`` with a random token, renewed every
third of it while the turn runs) keeps two workers off the same chat; a worker that dies
stops renewing, so its lease expires and the chat is free again after at most
``lease_seconds``. A lease this process could not release (Redis went away mid-turn and came
back with it) is released by the process's next turn of the chat instead of waited out.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from redis.asyncio import Redis

log = logging.getLogger(__name__)

# Delete or extend the lease only if it is still ours (it may have expired and been taken).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_FIRST_RETRY_SECONDS = 0.002
_LONGEST_RETRY_SECONDS = 0.1


class ChatLocks:
    def __init__(self, redis: Redis, prefix: str, lease_seconds: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._lease_ms = int(lease_seconds * 1000)
        self._local: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}
        self._unreleased: dict[str, str] = {}  # lock key -> this process's token still on it
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)

    @asynccontextmanager
    async def hold(self, chat_id: str, *, wait: bool | float = True) -> AsyncIterator[bool]:
        """Hold the chat for the block. With ``wait=False``, only if nobody holds it now; with a
        number, if it is free within that many seconds (a dead holder's lease runs out in
        ``lease_seconds``): otherwise the block gets False (and holds nothing)."""
        if wait is False and chat_id in self._local:
            yield False
            return
        async with self._local_turn(chat_id):
            token = secrets.token_hex(16)
            key = self._key(chat_id)
            await self._release_left_over(key)
            patience = None if wait is True else float(wait)
            if not await self._acquire(key, token, patience):
                yield False
                return
            ended = asyncio.Event()
            renewal = asyncio.create_task(self._keep_renewing(key, token, ended))
            try:
                yield True
            finally:
                # The flag ends the renewals even when the cancellation is swallowed (on Python
                # 3.11, redis-py's wait_for drops one that lands as a command completes).
                ended.set()
                renewal.cancel()
                try:
                    await renewal
                except asyncio.CancelledError:
                    if asyncio.current_task().cancelling():  # this turn is cancelled too, not only the renewal
                        raise
                try:
                    await self._release(keys=[key], args=[token])
                except Exception:  # noqa: BLE001 — Redis away: the next turn here releases it
                    self._unreleased[key] = token

    async def held(self, chat_id: str) -> bool:
        """Whether some process holds the chat now."""
        return bool(await self._redis.exists(self._key(chat_id)))

    def _key(self, chat_id: str) -> str:
        return f"{self._prefix}:lock:{{{chat_id}}}"

    def held_locally(self) -> int:
        """Chats with a turn running or waiting in this process (a bounded count, for tests)."""
        return len(self._local)

    def holders(self, chat_id: str) -> int:
        """This process's holders of the chat, the one holding it and those waiting (for tests)."""
        return self._waiting.get(chat_id, 0)

    @asynccontextmanager
    async def _local_turn(self, chat_id: str) -> AsyncIterator[None]:
        # asyncio.Lock wakes waiters first-come first-served; the entry is dropped with its
        # last user, so the table holds only active chats.
        lock = self._local.setdefault(chat_id, asyncio.Lock())
        self._waiting[chat_id] = self._waiting.get(chat_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[chat_id] -= 1
            if not self._waiting[chat_id]:
                del self._waiting[chat_id], self._local[chat_id]

    async def _release_left_over(self, key: str) -> None:
        # Called with the chat held in this process: no turn of ours is using that lease.
        if (token := self._unreleased.get(key)) is not None:
            with suppress(Exception):  # still unreachable: taking the lease fails next, saying so
                await self._release(keys=[key], args=[token])
                del self._unreleased[key]

    async def _acquire(self, key: str, token: str, patience: float | None) -> bool:
        # Another worker holds the chat: its turn takes as long as a turn does, so
        # back off from milliseconds towards a tenth of a second.
        wait, give_up = _FIRST_RETRY_SECONDS, None if patience is None else time.monotonic() + patience
        while not await self._redis.set(key, token, nx=True, px=self._lease_ms):
            if give_up is not None and time.monotonic() >= give_up:
                return False
            await asyncio.sleep(wait)
            wait = min(wait * 2, _LONGEST_RETRY_SECONDS)
        return True

    async def _keep_renewing(self, key: str, token: str, ended: asyncio.Event) -> None:
        while not ended.is_set():
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                renewed = await self._renew(keys=[key], args=[token, self._lease_ms])
            except Exception as exc:  # noqa: BLE001 — Redis away for a moment: the turn decides its own fate
                log.warning("could not renew the turn lock %s: %s", key, type(exc).__name__)
                continue
            if not renewed:
                # Expired (this worker stalled past the lease): another may run the chat now.
                log.warning("lost the turn lock %s while the turn was still running", key)
                return
