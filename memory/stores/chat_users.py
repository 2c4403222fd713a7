"""Who wrote to which chat, kept in Redis both ways (each user's chats, each chat's users), and
so which chats' L3 a turn sees: its own, its user's, or every chat."""

from __future__ import annotations

from typing import Any

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


def add_chat_users_to(pipe: Any, chat_id: str, user_ids: set[str]) -> None:
    """``add_chat_users``'s writes, queued on a pipeline the caller runs."""
    for user_id in user_ids:
        pipe.sadd(_user_chats_key(user_id), chat_id)
    pipe.sadd(_chat_users_key(chat_id), *user_ids)


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
        await pipe.execute()


async def drop_chat_users(redis: RedisBackend, chat_id: str) -> set[str]:
    """Forget who wrote to the chat (with its L3 and import records); returns who did."""
    users = await users_of_chat(redis, chat_id)
    async with (await redis.client()).pipeline(transaction=False) as pipe:
        for user_id in users:
            pipe.srem(_user_chats_key(user_id), chat_id)
        # One key a command: in a cluster the two live in different slots.
        pipe.delete(_chat_users_key(chat_id))
        pipe.delete(f"{PREFIX}:imported:{chat_id}")
        await pipe.execute()
    return users


def _user_chats_key(user_id: str) -> str:
    return f"{PREFIX}:user_chats:{user_id}"


def _chat_users_key(chat_id: str) -> str:
    return f"{PREFIX}:chat_users:{chat_id}"
