"""The L2.5 cache as a question's search reads it: what the question found when the scope was last
asked it (:class:`CachedFindings`), this process's hints of which questions it will likely find there
(:class:`CachedQuestions`): those are neither embedded nor searched by words ahead of their
lookup, and one question's place there (:class:`QuestionInCache`): its lookup, and its search
filed after a miss."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.exceptions import RedisError

from memory.encoders.encoder import Encoder
from memory.retrieval.finding.scale import Scale
from memory.stores.archive_encoder import ArchiveEncoder
from memory.stores.chat_users import chats_of_user
from memory.stores.redis_backend import RedisBackend, cache_scope_key
from memory.turns import CacheLookup, Hit

_QUESTIONS_CACHED = 4096  # questions this process last found in the L2.5 cache or filed there, at most


@dataclass(frozen=True)
class CachedFindings:
    """What a question's search found, as the L2.5 cache keeps it: the nearest entries by meaning,
    those by words (None: not searched by words), both with their distances on the question's
    scale, and the scale itself, so that a question asked again is neither encoded nor searched.
    The scope's writes and forgets invalidate it with the entries it names (access counts
    excepted: they may be as old as the cache's TTL)."""

    thematic: list[Hit]
    words: list[Hit] | None
    scale: Scale

    def record(self) -> dict:
        return {"thematic": self.thematic, "words": self.words, "scale": self.scale.record()}

    @classmethod
    def of_record(cls, record: dict, encoder: Encoder) -> CachedFindings:
        return cls(record["thematic"], record["words"], Scale.of_record(record["scale"], encoder))


class CachedQuestions:
    def __init__(self, redis: RedisBackend, encoder: ArchiveEncoder) -> None:
        self.redis, self.encoder = redis, encoder  # the cache, the queries' encoder (a scale's spaces)
        # Questions (their text's hash: a message may be long) whose last lookup in the L2.5 cache
        # found them, or whose search was filed there: asked again, they are likely found there
        # again, and are neither embedded nor searched by words ahead of the lookup.
        self._likely_cached: dict[int, None] = {}

    def likely_cached(self, text: str) -> bool:
        """Whether the question ``text`` was last found in the L2.5 cache, or filed there, by this
        process: a hint (another process's writes may have invalidated it since)."""
        return hash(text) in self._likely_cached

    def note_cached(self, text: str, cached: bool) -> None:
        """Record whether the question ``text`` was found in (or filed to) the L2.5 cache."""
        key = hash(text)
        self._likely_cached.pop(key, None)
        if cached:
            self._likely_cached[key] = None
            while len(self._likely_cached) > _QUESTIONS_CACHED:
                self._likely_cached.pop(next(iter(self._likely_cached)))

    def forget(self) -> None:
        """The L2.5 cache was emptied: no question is likely found there any more."""
        self._likely_cached.clear()

    async def look_up(self, scope_key: str, digest: str) -> tuple[CachedFindings | None, str | None]:
        """What the question of ``digest`` found when it was last searched in this scope, if the
        L2.5 cache holds it, and the scope's generation it was looked up under (None: the cache
        did not answer, and nothing is to be written to it)."""
        cache = await self.redis.cache()
        try:
            record, generation = await cache.lookup(scope_key, digest)
        except RedisError:
            return None, None
        encoder = (await self.encoder.embeddings()).encoder
        try:
            return (None if record is None else CachedFindings.of_record(record, encoder)), generation
        except (KeyError, TypeError, ValueError):  # written by another version: searched, and written again
            return None, generation


class QuestionInCache:
    """One question's search as the L2.5 cache keeps it (under its scope's key and its digest):
    looked up as it is made, and filed by :meth:`file` after a miss, for the question asked again.

    Args:
        questions: the cache, and this process's hints of what it holds.
        text: the question.
        digest: its search's key in the cache (``SearchCache.digest`` of the question and how it
            is searched).
        chat_id, user_id, scope: whose memory (``memory.scope``).
    """

    def __init__(self, questions: CachedQuestions, text: str, digest: str, chat_id: str, user_id: str,
                 scope: str) -> None:
        self._questions, self._text, self._digest = questions, text, digest
        self._scope_key = cache_scope_key(chat_id, user_id, scope)
        self.likely_found = questions.likely_cached(text)  # the hint, before this lookup notes what it finds
        self.lookup: CacheLookup | None = None  # how the lookup went (None: not looked up)
        self._missed_under: str | None = None  # the scope's generation it missed under (None: not to be filed)
        self.found = asyncio.ensure_future(self._look_up(chat_id, user_id if scope == "user" else None))

    async def _look_up(self, chat_id: str, user_id: str | None) -> CachedFindings | None:
        if user_id is not None and chat_id not in await chats_of_user(self._questions.redis, user_id):
            # A chat the user never wrote to: a "user:" cache entry covers the user's chats only
            # (their writes and forgets invalidate it), so a search that also covers this one
            # is not cached, or the user's other chats would be served this chat's entries,
            # forgotten ones included.
            return None
        searched, generation = await self._questions.look_up(self._scope_key, self._digest)
        self.lookup = {"hit": searched is not None, "key": self._digest}
        if generation is not None:
            self._questions.note_cached(self._text, searched is not None)
        if searched is None:
            self._missed_under = generation
        return searched

    async def file(self, searched: CachedFindings | None) -> None:
        """After a miss, file what the question's search found, under the generation the miss was
        read under (a write or forget since then leaves it unread).

        Args:
            searched: what the thematic searches found, with the scale; None: they did not finish.
        """
        if self._missed_under is not None and searched is not None:
            cache = await self._questions.redis.cache()
            cache.put_behind(self._scope_key, self._digest, searched.record(), self._missed_under)
            self._questions.note_cached(self._text, True)
