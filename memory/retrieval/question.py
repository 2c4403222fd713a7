"""One question's search under way (:class:`Question`): the parts the recall pipeline's
mechanisms share (the scope's chats, the L2.5 cache's lookup, the query's scale) and its
thematic searches by meaning and by words, each started once, filed in the L2.5 cache for the
question asked again. It is made with L3's reads (:class:`~memory.retrieval.search.L3Search`),
the work started ahead of its turn (:class:`~memory.retrieval.ahead.Ahead`) and the L2.5
cache's hints (:class:`~memory.retrieval.cached_questions.CachedQuestions`): :class:`Searching`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from contextlib import suppress
from typing import TypeVar

import numpy as np

from memory.retrieval.scale import Scale
from memory.retrieval.ahead import Ahead
from memory.retrieval.cached_questions import CachedQuestions, Searched
from memory.retrieval.futures import may_go_unread, succeeded
from memory.retrieval.search import WORD_SCAN_CHARS, L3Search, WordHit
from memory.stores.archive_encoder import ArchiveEncoder
from memory.stores.cache import SearchCache
from memory.stores.chat_users import chats_of_user, scope_chats
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import RedisBackend, cache_scope_key
from memory.turns import CacheLookup, Hit

T = TypeVar("T")


@dataclass(frozen=True)
class Searching:
    """What every question is searched with: L3's reads, the work started ahead of turns (a
    message's vector, its chat's centroid and word search), and the L2.5 cache's hints."""

    reads: L3Search
    ahead: Ahead
    cached: CachedQuestions

    @classmethod
    def over(cls, redis: RedisBackend, l3: L3Backend, encoder: ArchiveEncoder) -> Searching:
        """Args: the indexes and cache, Chroma, the queries' encoder."""
        reads = L3Search(redis, l3, encoder)
        return cls(reads, Ahead(redis, encoder, reads), CachedQuestions(redis, encoder))


class Question:
    """One question's search under way, which the recall's mechanisms share: the scope's chats,
    the question's earlier search looked up in the L2.5 cache, its scale, and its thematic
    searches (by meaning and by words), each started once. A question the scope was asked before
    is neither embedded nor searched again; one that was not has its findings filed by
    :meth:`finish`, for the question asked again.

    Args:
        searching: what it is searched with.
        text: the question.
        chat_id, user_id, scope: whose memory (``memory.scope``).
        k: how many entries each search keeps.
        by_meaning: whether it is searched by meaning (it names something).
        words_share: the word search's ``lexical_max_df_share``; None: not searched by words.
    """

    def __init__(self, searching: Searching, text: str, chat_id: str, user_id: str, scope: str, k: int,
                 by_meaning: bool, words_share: float | None) -> None:
        self.reads, self.ahead, self.cached = searching.reads, searching.ahead, searching.cached
        self.text, self.chat_id, self.k, self.words_share = text, chat_id, k, words_share
        redis = searching.reads.redis
        self.cache: CacheLookup | None = None  # None: not looked up
        self.chats = asyncio.ensure_future(scope_chats(redis, searching.reads.l3, chat_id, user_id, scope))
        # Under "user", whether the chat is one of the user's: only then are its searches cached.
        self._users_chats = (asyncio.ensure_future(chats_of_user(redis, user_id))
                             if scope == "user" and by_meaning else None)
        self._scope_key = cache_scope_key(chat_id, user_id, scope)
        self._digest = SearchCache.digest(text, k=k, words=words_share)
        # Most questions: embedded and searched by words beside the lookup, not after it.
        self._started_ahead = by_meaning and not self.cached.likely_cached(text)
        if self._started_ahead:
            self.ahead.embed_ahead(text, chat_id)
        self._lookup = asyncio.ensure_future(self._look_up(by_meaning))
        # Measured beside the lookup too, and searched by meaning as soon as measured: the lookup's
        # round trip then waits in front of neither. A hit after all leaves both unused.
        self._measured = may_go_unread(asyncio.ensure_future(self._measure())) if self._started_ahead else None
        self.scale = asyncio.ensure_future(self._question_scale())
        self.by_meaning = asyncio.ensure_future(self._by_meaning()) if by_meaning else None
        self.by_words = asyncio.ensure_future(self._by_words()) if words_share is not None else None

    async def _look_up(self, cached: bool) -> tuple[Searched | None, str | None]:
        if not cached:
            return None, None
        if self._users_chats is not None and self.chat_id not in await self._users_chats:
            # A chat the user never wrote to: a "user:" cache entry covers the user's chats only
            # (their writes and forgets invalidate it), so a search that also covers this one
            # is not cached, or the user's other chats would be served this chat's entries,
            # forgotten ones included.
            return None, None
        searched, generation = await self.cached.look_up(self._scope_key, self._digest)
        self.cache = {"hit": searched is not None, "key": self._digest}
        if generation is not None:
            self.cached.note_cached(self.text, searched is not None)
        return searched, generation

    async def _asked_before(self) -> Searched | None:
        with suppress(Exception):  # reported by the thematic search, which awaits the lookup too
            return (await self._lookup)[0]
        return None

    async def _question_scale(self) -> Scale:
        # Measured only once the L2.5 cache has missed: a hit spends no encoding (~5 ms of a core,
        # beside the turn's other work) on a vector it would not use. A question this process did
        # not find or file there lately is measured ahead all the same, beside the lookup.
        if (searched := await self._asked_before()) is not None:
            return searched.scale
        return await (self._measured if self._measured is not None else self._measure())

    async def _measure(self) -> Scale:
        return await self.ahead.measure(self.text, await self.chats, self.chat_id)

    async def _nearest(self, scale: Awaitable[Scale]) -> list[Hit]:
        # Shielded: cancelling a search started ahead must not cancel what the others share.
        return await self.reads.search(await asyncio.shield(self.chats), await asyncio.shield(scale), self.k)

    async def _unless_found_before(self, found_before: Callable[[], Awaitable[T | None]],
                                   search: Callable[[], Awaitable[T]]) -> T:
        """What the question's earlier search found (``found_before``, None: nothing), else
        ``search``'s; for a question likely not asked before, started beside the lookup and
        dropped if found there after all."""
        # Its failure is this list's only when it is waited for (below).
        ahead = may_go_unread(asyncio.ensure_future(search())) if self._started_ahead else None
        try:
            if (found := await found_before()) is not None:
                return found
            return await (ahead if ahead is not None else search())
        finally:
            if ahead is not None:
                ahead.cancel()  # found in the cache after all, or this search was abandoned

    async def _by_meaning(self) -> list[Hit]:
        async def found_before() -> list[Hit] | None:
            searched, _ = await self._lookup  # its failure is this list's
            return None if searched is None else searched.thematic

        scale = self._measured if self._measured is not None else self.scale
        return await self._unless_found_before(found_before, lambda: self._nearest(scale))

    async def _words_found(self) -> list[WordHit]:
        chats, text = await asyncio.shield(self.chats), self.text[:WORD_SCAN_CHARS]
        if (ahead := self.ahead.words_found_ahead(chats, text, self.k, self.words_share)) is not None:
            return await ahead
        return await self.reads.lexical_search(chats, text, self.k, self.words_share)

    async def _by_words(self) -> list[Hit]:
        """BM25 over the chats' word index, its hits put on the query's scale."""
        async def found_before() -> list[Hit] | None:
            return None if (searched := await self._asked_before()) is None else searched.words

        return await self._unless_found_before(found_before, self._words_on_scale)

    async def _words_on_scale(self) -> list[Hit]:
        if not (found := await self._words_found()):
            return []
        # Shielded: cancelling a search started ahead must not cancel what the others share.
        measured = (await asyncio.shield(self.scale)).of_passages(np.array([stored for _, stored, _ in found]))
        return [{**hit, "distance": float(distance)} for (hit, _, _), distance in zip(found, measured)]

    async def finish(self) -> None:
        """Cancel the shared work nobody waited for, and retrieve the errors of the rest (reported
        through the mechanisms that awaited it); on a cache miss, file what the thematic searches
        found, with the scale, for the question asked again (the words too if they finished)."""
        shared = (self.chats, self._lookup, self.scale, *filter(None, [self._users_chats, self._measured]))
        for future in shared:
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()
        generation = None if self.cache is None or self.cache["hit"] else self._lookup.result()[1]
        if generation is not None and succeeded(self.by_meaning) and succeeded(self.scale):
            words = self.by_words.result() if succeeded(self.by_words) else None  # None: searched when asked again
            searched = Searched(self.by_meaning.result(), words, self.scale.result())
            (await self.reads.redis.cache()).put_behind(self._scope_key, self._digest, searched.record(), generation)
            self.cached.note_cached(self.text, True)

