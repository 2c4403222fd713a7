"""Who wrote to which chat, kept in Redis both ways (each user's chats, each chat's users), and
so which chats' L3 a turn sees: its own, its user's, or every chat; and whose each chat is (its
owners, by what right: the rule is ``memory/stores/chat_owners.py``'s)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import PREFIX, RedisBackend
from memory.stores.facts import RedisFactsStore
from memory.redis_clients import named_after


async def scope_chats(redis: RedisBackend, l3: L3Backend, chat_id: str, user_id: str, scope: str) -> list[str]:
    """Which chats' L3 a turn may see: its own, its user's, or every chat."""
    if scope == "chat":
        return [chat_id]
    if scope == "user":
        return sorted({chat_id, *await chats_of_user(redis, user_id)})
    store = await l3.episodic()
    return await l3.run_blocking(store.chat_ids)


async def add_chat_users(redis: RedisBackend, chat_id: str, user_ids: set[str]) -> set[str]:
    """Record that these users wrote to the chat; returns every user of the chat."""
    async with (await redis.client()).pipeline(transaction=False) as pipe:
        add_chat_users_to(pipe, chat_id, user_ids)
        pipe.smembers(_chat_users_key(chat_id))
        *_, members = await pipe.execute()
    return {member.decode() for member in members}


def add_chat_users_to(pipe: Any, chat_id: str, user_ids: Collection[str]) -> None:
    """``add_chat_users``'s writes, queued on a pipeline the caller runs."""
    for user_id in user_ids:
        pipe.sadd(_user_chats_key(user_id), chat_id)
    pipe.sadd(_chat_users_key(chat_id), *user_ids)


HELD, CLAIMED = "held", "claimed"  # how an owner holds a chat: as one of its own, or by a claim alone


class Owners(NamedTuple):
    held_by: dict[str, str]  # each owner, HELD or CLAIMED
    recorded: bool  # False: none were recorded, and the chat's users hold it


async def owners_of(redis: RedisBackend, chat_ids: Collection[str]) -> dict[str, Owners]:
    """Each chat's owners. A chat whose owners were never recorded (written before they were, or
    by LangGraph's server alone) is held by everyone who wrote to it."""
    async with (await redis.client()).pipeline(transaction=False) as pipe:
        for chat_id in chat_ids:
            pipe.hgetall(_chat_owners_key(chat_id))
            pipe.smembers(_chat_users_key(chat_id))
        replies = iter(await pipe.execute())
    found = {}
    for chat_id, recorded, users in zip(chat_ids, replies, replies):
        held_by = {user.decode(): how.decode() for user, how in recorded.items()}
        found[chat_id] = Owners(held_by or {user.decode(): HELD for user in users}, bool(held_by))
    return found


async def holds(redis: RedisBackend, chat_id: str, user_id: str) -> bool:
    """Whether the user is recorded as holding the chat as one of its own (not by a claim alone)."""
    return await (await redis.client()).hget(_chat_owners_key(chat_id), user_id) == HELD.encode()


async def add_owners(redis: RedisBackend, chat_id: str, held_by: dict[str, str]) -> None:
    """Record these owners of the chat, each as one of its users; a user's first place in it drops
    their scope's cached searches, which did not cover the chat."""
    users = list(held_by)
    async with (await redis.client()).pipeline(transaction=False) as pipe:
        pipe.hset(_chat_owners_key(chat_id), mapping=held_by)
        add_chat_users_to(pipe, chat_id, users)
        _, *joined, _ = await pipe.execute()
    if newcomers := {user for user, added in zip(users, joined) if added}:
        await redis.invalidate_searches_of(chat_id, newcomers)


async def chats_of_user(redis: RedisBackend, user_id: str) -> list[str]:
    """The chats the user wrote to (from the start of their first turn there)."""
    return sorted(m.decode() for m in await (await redis.client()).smembers(_user_chats_key(user_id)))


async def users_and_chats(redis: RedisBackend) -> tuple[list[str], list[str]]:
    """The users who wrote to a chat or keep facts in Redis, and the chats with a user: each
    sorted (L3's chats are Chroma's to tell)."""
    client = await redis.client()
    users = await named_after(client, _user_chats_key(""))
    if isinstance(facts := await redis.facts(), RedisFactsStore):
        users |= await facts.users()
    return sorted(users), sorted(await named_after(client, _chat_users_key("")))


async def users_of_chat(redis: RedisBackend, chat_id: str) -> set[str]:
    return {m.decode() for m in await (await redis.client()).smembers(_chat_users_key(chat_id))}


async def drop_user_from(redis: RedisBackend, chat_id: str, user_id: str) -> None:
    """The user no longer writes to the chat (their part of it was forgotten)."""
    async with (await redis.client()).pipeline(transaction=False) as pipe:
        pipe.srem(_user_chats_key(user_id), chat_id)
        pipe.srem(_chat_users_key(chat_id), user_id)
        pipe.hdel(_chat_owners_key(chat_id), user_id)
        await pipe.execute()


async def drop_chat_users(redis: RedisBackend, chat_id: str) -> set[str]:
    """Forget who wrote to the chat (with its L3 and import records); returns who did."""
    users = await users_of_chat(redis, chat_id)
    async with (await redis.client()).pipeline(transaction=False) as pipe:
        for user_id in users:
            pipe.srem(_user_chats_key(user_id), chat_id)
        # One key a command: in a cluster the two live in different slots.
        pipe.delete(_chat_users_key(chat_id))
        pipe.delete(_chat_owners_key(chat_id))
        pipe.delete(f"{PREFIX}:imported:{chat_id}")
        await pipe.execute()
    return users


def _user_chats_key(user_id: str) -> str:
    return f"{PREFIX}:user_chats:{user_id}"


def _chat_users_key(chat_id: str) -> str:
    return f"{PREFIX}:chat_users:{chat_id}"


def _chat_owners_key(chat_id: str) -> str:
    return f"{PREFIX}:chat_owners:{chat_id}"
