"""The L2.5 cache as a question's search reads it: what the question found when the scope was last
asked it (:class:`Searched`), and this process's hints of which questions it will likely find
there (:class:`CachedQuestions`): those are neither embedded nor searched by words ahead of
their lookup."""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import RedisError

from memory.encoders.encoder import Encoder
from memory.retrieval.scale import Scale
from memory.stores.archive_encoder import ArchiveEncoder
from memory.stores.redis_backend import RedisBackend
from memory.turns import Hit

_QUESTIONS_CACHED = 4096  # questions this process last found in the L2.5 cache or filed there, at most


@dataclass(frozen=True)
class Searched:
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
    def of_record(cls, record: dict, encoder: Encoder) -> Searched:
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

    async def look_up(self, scope_key: str, digest: str) -> tuple[Searched | None, str | None]:
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
            return (None if record is None else Searched.of_record(record, encoder)), generation
        except (KeyError, TypeError, ValueError):  # written by another version: searched, and written again
            return None, generation
