"""The turn journal in Redis: which chats have a turn in flight (for recovery after a crash),
and the turn numbers given to imported exchanges (so a repeated import rewrites, never adds)."""

from __future__ import annotations

from typing import NamedTuple

from memory.stores.redis_backend import PREFIX, RedisBackend
from memory.turns import ImportedTurn

IN_FLIGHT_KEY = f"{PREFIX}:turns_in_flight"
FORGETTING_KEY = f"{PREFIX}:users_being_forgotten"  # a forget a backend failure interrupted stays listed


class ImportNumbers(NamedTuple):
    numbers: list[int]  # each exchange's turn
    completed: int  # the chat's completed turns: those at or below it are written
    edited: list[int]  # which exchanges (their index) rewrite a written turn


class TurnJournal:
    def __init__(self, redis: RedisBackend) -> None:
        self._redis = redis

    async def begin(self, chat_id: str) -> bool:
        """Note that a turn of this chat is running; True if an earlier turn never finished."""
        return not await (await self._redis.client()).sadd(IN_FLIGHT_KEY, chat_id)

    async def end(self, chat_id: str) -> None:
        await (await self._redis.client()).srem(IN_FLIGHT_KEY, chat_id)

    async def unfinished(self) -> list[str]:
        return sorted(m.decode() for m in await (await self._redis.client()).smembers(IN_FLIGHT_KEY))

    async def forget_begins(self, user_id: str) -> None:
        await (await self._redis.client()).sadd(FORGETTING_KEY, user_id)

    async def forget_ends(self, user_id: str) -> None:
        await (await self._redis.client()).srem(FORGETTING_KEY, user_id)

    async def unfinished_forgets(self) -> list[str]:
        """Users whose forget was interrupted (a backend failed): the next forget finishes it."""
        return sorted(m.decode() for m in await (await self._redis.client()).smembers(FORGETTING_KEY))

    async def import_numbers(self, chat_id: str, turns: list[ImportedTurn]) -> ImportNumbers:
        """The turn number of each imported exchange, allocated once and remembered by digest,
        so an interrupted or repeated import rewrites the same turns instead of adding new ones;
        an exchange of a new digest whose ref was imported before is that turn, edited since.

        Returns:
            The numbers, the chat's completed turns (those numbers at or below it are already
            written) and the edited exchanges among them (their digest is recorded once the
            turn is rewritten: :meth:`record_imported`).
        """
        redis = await self._redis.client()
        key = _imported_key(chat_id)
        fields = list(dict.fromkeys([*(t.digest for t in turns), *(_ref_field(t.ref) for t in turns if t.ref)]))
        given = dict(zip(fields, await redis.hmget(key, fields))) if fields else {}
        completed = await (await self._redis.working()).completed_turns(chat_id)
        next_turn = max([completed, *(int(n) for n in given.values() if n is not None)]) + 1
        numbers, edited, new = [], [], {}
        for index, turn in enumerate(turns):
            ref = _ref_field(turn.ref) if turn.ref else None
            if (known := given[turn.digest] or new.get(turn.digest)) is not None:
                number = int(known)
            elif ref and given[ref] is not None:  # a message of it was edited since it was imported
                number = int(given[ref])
            else:
                number, next_turn = next_turn, next_turn + 1
            if known is None and number <= completed:
                edited.append(index)
            elif known is None:
                new[turn.digest] = number
            if ref and given[ref] is None:
                new[ref] = number
            numbers.append(number)
        if new:
            await redis.hset(key, mapping=new)
        return ImportNumbers(numbers, completed, edited)

    async def record_imported(self, chat_id: str, turns: dict[str, int]) -> None:
        """Remember imported exchanges' turn numbers by digest (``turns``: digest -> number)."""
        if turns:
            await (await self._redis.client()).hset(_imported_key(chat_id), mapping=turns)

    async def forget_imported(self, chat_id: str, turn: int) -> None:
        """Drop what numbered ``turn`` (an entry deleted by id): the exchange, imported or archived
        again, is written again rather than taken as written before."""
        redis, key = await self._redis.client(), _imported_key(chat_id)
        numbering = [digest async for digest, given in redis.hscan_iter(key) if int(given) == turn]
        if numbering:
            await redis.hdel(key, *numbering)


def _imported_key(chat_id: str) -> str:
    return f"{PREFIX}:imported:{chat_id}"


def _ref_field(ref: str) -> str:
    """Where an exchange's ref is kept beside the digests (hexadecimal: none begins with "@")."""
    return f"@{ref}"
