"""A person's data: everything of a user exported as one document, or forgotten.

What a user wrote is found by their id: L1 facts are theirs; a chat only they wrote to is
theirs whole (L2, L3, word index, import records, cached searches); in a chat they share,
their L3 entries carry their ``user_id`` and so do their L2 messages (saved with it), and
only those are taken out — the word index of such a chat is rebuilt from what remains.
The graph's checkpoints are the graph's: the caller deletes the threads of the chats named
in :class:`Forgotten`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from memory.stores.archive import Archive
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import RedisBackend
from memory.stores.chat_users import chats_of_user, drop_chat_users, drop_user_from, users_of_chat
from memory.errors import BackendUnavailable
from memory.turns import iso_time

T = TypeVar("T")


@dataclass(frozen=True)
class Forgotten:
    """What a forget removed."""

    facts: int = 0  # L1 facts deleted
    chats: list[str] = field(default_factory=list)  # chats dropped whole
    shared: list[str] = field(default_factory=list)  # chats kept for others, the user's part taken out
    entries: int = 0  # L3 entries deleted from shared chats
    messages: int = 0  # L2 messages deleted from shared chats


async def _chroma(l3: L3Backend, call: Callable[..., T], *args: Any) -> T:
    """A Chroma call whose failure says it was Chroma's (its client raises its transport's errors)."""
    try:
        return await l3.call(call, *args)
    except Exception as exc:
        raise BackendUnavailable("chroma", f"{type(exc).__name__}: {exc}") from exc


async def forget_chat(redis: RedisBackend, l3: L3Backend, archive: Archive, chat_id: str) -> None:
    """Drop the chat's L2, L3, word index, import records and cached searches."""
    store = await l3.episodic()
    await _chroma(l3, store.delete_chat, chat_id)
    await archive.indexer.forget_index(chat_id)
    await (await redis.working()).clear(chat_id)
    await redis.invalidate_searches_of(chat_id, await drop_chat_users(redis, chat_id), delete=True)


async def forget_user(redis: RedisBackend, l3: L3Backend, archive: Archive, user_id: str) -> Forgotten:
    """Delete everything of the user: see the module's docstring. Safe to run again after a
    failure: what is left of the user is found the same way."""
    if await archive.flush():  # a turn of theirs still in the outbox would be written after
        raise BackendUnavailable("chroma", f"the archive cannot be written ({l3.problem or 'unreachable'})")
    store, working = await l3.episodic(), await redis.working()
    whole, shared, entries, messages = [], [], 0, 0
    for chat_id in await chats_of_user(redis, user_id):
        others = await users_of_chat(redis, chat_id) - {user_id}
        if not others:
            await forget_chat(redis, l3, archive, chat_id)
            whole.append(chat_id)
            continue
        theirs = [hit["id"] for hit in await _chroma(l3, store.entries, chat_id, user_id)]
        await _chroma(l3, store.delete_entries, chat_id, theirs)
        messages += await working.remove_user(chat_id, user_id)
        await archive.indexer.rebuild_index(chat_id)
        await drop_user_from(redis, chat_id, user_id)
        await redis.invalidate_searches_of(chat_id, others | {user_id}, delete=True)
        shared.append(chat_id)
        entries += len(theirs)
    facts = await redis.facts()
    deleted_facts = len(await facts.get_all(user_id))
    await facts.clear(user_id)
    return Forgotten(deleted_facts, whole, shared, entries, messages)


async def export_user(redis: RedisBackend, l3: L3Backend, user_id: str, chat_id: str | None = None) -> dict[str, Any]:
    """The user's facts, and per chat (theirs, or only ``chat_id`` if it is one of theirs) their
    L2 messages and L3 entries verbatim: the whole chat when only they wrote to it, else what is
    theirs."""
    store, working = await l3.episodic(), await redis.working()
    chats = []
    for chat in [chat_id] if chat_id else await chats_of_user(redis, user_id):
        users = await users_of_chat(redis, chat)
        if user_id not in users:  # a chat they never wrote to holds nothing of theirs
            continue
        alone = users == {user_id}
        l2 = [m for m in await working.messages(chat) if alone or m.get("user_id") == user_id]
        archived = await _chroma(l3, store.entries, chat, None if alone else user_id)
        chats.append({
            "chat_id": chat,
            "l2": [{k: v for k, v in m.items() if k != "tokens"} for m in l2],
            "l3": [{"id": e["id"], "time": iso_time(e["timestamp"]), "content": e["content"], "metadata": e["metadata"]}
                   for e in sorted(archived, key=lambda e: (e["timestamp"], e["id"]))],
        })
    return {
        "user_id": user_id,
        "exported_at": iso_time(time.time()),
        "facts": await (await redis.facts()).get_all(user_id),
        "chats": chats,
    }
