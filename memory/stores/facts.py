"""L1 facts: small curated key -> value facts about a user, always in the prompt."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from redis.asyncio import Redis

from memory.errors import FactsFull
from memory.prompt.blocks import facts_block
from memory.prompt.tokens import count_unremembered
from memory.redis_clients import named_after
from memory.turns import is_blank


@runtime_checkable
class FactsStore(Protocol):
    """Where a user's facts live: Letta's core memory, or Redis when no Letta is set up."""

    async def get_all(self, user_id: str) -> dict[str, str]: ...

    async def upsert(self, user_id: str, key: str, value: str) -> None: ...

    async def delete(self, user_id: str, key: str) -> bool:
        """True if the fact existed."""
        ...

    async def clear(self, user_id: str) -> None: ...

    async def check(self) -> str:
        """What the store's server says it is (raises when it is unreachable)."""
        ...


class RedisFactsStore:
    """Facts as one Redis hash per user."""

    def __init__(self, redis: Redis, prefix: str = "goat") -> None:
        self._redis = redis
        self._prefix = prefix

    async def get_all(self, user_id: str) -> dict[str, str]:
        facts = await self._redis.hgetall(self._key(user_id))
        return {_text(key): _text(value) for key, value in facts.items()}

    async def upsert(self, user_id: str, key: str, value: str) -> None:
        await self._redis.hset(
            self._key(user_id), clean_fact_text(key, "fact key"), clean_fact_text(value, "fact value")
        )

    async def delete(self, user_id: str, key: str) -> bool:
        return bool(await self._redis.hdel(self._key(user_id), clean_fact_text(key, "fact key")))

    async def clear(self, user_id: str) -> None:
        await self._redis.delete(self._key(user_id))

    async def users(self) -> set[str]:
        """The users who keep facts here."""
        return await named_after(self._redis, self._key(""))

    async def check(self) -> str:
        await self._redis.ping()
        return "reachable"

    def _key(self, user_id: str) -> str:
        return f"{self._prefix}:facts:{user_id}"


async def upsert_within(store: FactsStore, user_id: str, key: str, value: str, max_tokens: int) -> int:
    """Upsert one of the user's facts, unless the facts block would then take more than
    ``max_tokens`` (``FactsFull``, nothing written). Returns the block's tokens with it."""
    key, value = clean_fact_text(key, "fact key"), clean_fact_text(value, "fact value")
    # Not remembered among the counts of turns' texts: a refused block may be megabytes.
    [tokens] = count_unremembered([facts_block({**await store.get_all(user_id), key: value})])
    if tokens > max_tokens:
        raise FactsFull(
            f"refused: with this fact the known-facts block would take {tokens} tokens, over its "
            f"limit of {max_tokens}; shorten the value or forget a fact that no longer matters"
        )
    await store.upsert(user_id, key, value)
    return tokens


def clean_fact_text(text: str, what: str) -> str:
    """``text`` trimmed, or a ValueError naming ``what`` when it is not a string that shows
    something (only white space or zero-width characters show nothing)."""
    if not isinstance(text, str) or is_blank(text):
        raise ValueError(f"{what} must be a non-empty string, got {text!r}")
    return text.strip()


def _text(raw: str | bytes) -> str:
    """Works whether or not the client was created with decode_responses=True."""
    return raw.decode() if isinstance(raw, bytes) else raw
