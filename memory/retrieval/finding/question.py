"""One question's search under way (:class:`Question`): the parts the recall pipeline's
mechanisms share (the scope's chats, the L2.5 cache's lookup, the query's scale) and its
thematic searches by meaning and by words, each started once, filed in the L2.5 cache for the
question asked again. It is made with L3's reads (:class:`~memory.retrieval.finding.search.L3Reads`),
the work started ahead of its turn (:class:`~memory.retrieval.finding.ahead.Ahead`) and the L2.5
cache's hints (:class:`~memory.retrieval.finding.cached_questions.CachedQuestions`): :class:`QuestionServices`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from contextlib import suppress
from typing import TypeVar

import numpy as np

from memory.retrieval.finding.scale import Scale
from memory.retrieval.finding.ahead import Ahead
from memory.retrieval.finding.cached_questions import CachedQuestions, QuestionInCache, CachedFindings
from memory.retrieval.finding.futures import may_go_unread, settle, succeeded
from memory.retrieval.finding.search import WORD_SCAN_CHARS, L3Reads, WordHit
from memory.stores.archive_encoder import ArchiveEncoder
from memory.stores.cache import SearchCache
from memory.stores.chat_users import scope_chats
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import RedisBackend
from memory.turns import CacheLookup, Hit

T = TypeVar("T")


@dataclass(frozen=True)
class QuestionServices:
    """What every question is searched with: L3's reads, the work started ahead of turns (a
    message's vector, its chat's centroid and word search), and the L2.5 cache's hints."""

    reads: L3Reads
    ahead: Ahead
    cached: CachedQuestions

    @classmethod
    def over(cls, redis: RedisBackend, l3: L3Backend, encoder: ArchiveEncoder) -> QuestionServices:
        """Args: the indexes and cache, Chroma, the queries' encoder."""
        reads = L3Reads(redis, l3, encoder)
        return cls(reads, Ahead(redis, encoder, reads), CachedQuestions(redis, encoder))


class Question:
    """One question's search under way, which the recall's mechanisms share: the scope's chats,
    the question's earlier search looked up in the L2.5 cache, its scale, and its thematic
    searches (by meaning and by words), each started once. A question the scope was asked before
    is neither embedded nor searched again; one that was not has its findings filed by
    :meth:`finish`, for the question asked again.

    Args:
        services: what it is searched with.
        text: the question.
        chat_id, user_id, scope: whose memory (``memory.scope``).
        k: how many entries each search keeps.
        by_meaning: whether it is searched by meaning (it names something).
        words_share: the word search's ``lexical_max_df_share``; None: not searched by words.
    """

    def __init__(self, services: QuestionServices, text: str, chat_id: str, user_id: str, scope: str, k: int,
                 by_meaning: bool, words_share: float | None) -> None:
        self.reads, self.ahead = services.reads, services.ahead
        self.text, self.k, self.words_share = text, k, words_share
        self.chats = asyncio.ensure_future(scope_chats(services.reads.redis, services.reads.l3, chat_id, user_id,
                                                       scope))
        # The L2.5 cache keeps a search by meaning (with its words and its scale): a question searched
        # so is looked up there at once, under the question and how it is searched.
        self._in_cache = (QuestionInCache(services.cached, text, SearchCache.digest(text, k=k, words=words_share),
                                          chat_id, user_id, scope) if by_meaning else None)
        self._lookup = None if self._in_cache is None else self._in_cache.found
        # Most questions: embedded, measured and searched beside the lookup, not after it: its round
        # trip then waits in front of none of them, and a hit after all leaves them unused. One this
        # process found or filed there lately is measured only once the lookup has missed: a hit then
        # spends no encoding (~2 ms of a core, beside the turn's other work).
        self._started_ahead = self._in_cache is not None and not self._in_cache.likely_found
        if self._started_ahead:
            self.ahead.embed_ahead(text, chat_id)
        self._measured = may_go_unread(asyncio.ensure_future(self.ahead.measure_once_read(
            text, self.chats, chat_id, None if self._started_ahead else self._lookup)))
        self.scale = asyncio.ensure_future(self._question_scale())
        self.by_meaning = asyncio.ensure_future(self._by_meaning()) if by_meaning else None
        self.by_words = asyncio.ensure_future(self._by_words()) if words_share is not None else None

    @property
    def cache(self) -> CacheLookup | None:
        """How the question's lookup in the L2.5 cache went (None: not looked up)."""
        return None if self._in_cache is None else self._in_cache.lookup

    async def _asked_before(self) -> CachedFindings | None:
        with suppress(Exception):  # reported by the thematic search, which awaits the lookup too
            return None if self._lookup is None else await self._lookup
        return None

    async def _question_scale(self) -> Scale:
        # The scale filed with the question's earlier search, else the one measured for it: the
        # measure is None only when the lookup found the search, and then so did _asked_before
        # (both take a failed lookup for a miss).
        if (searched := await self._asked_before()) is not None:
            return searched.scale
        scale = await self._measured
        assert scale is not None
        return scale

    async def _nearest(self, scale: Awaitable[Scale]) -> list[Hit]:
        # Shielded: cancelling a search started ahead must not cancel what the others share.
        return await self.reads.search(await asyncio.shield(self.chats), await asyncio.shield(scale), self.k)

    async def _unless_found_before(self, found_before: Callable[[], Awaitable[T | None]],
                                   search: Callable[[], Awaitable[T]]) -> T:
        """What the question's earlier search found (``found_before``, None: nothing), else
        ``search``'s; for a question likely not asked before, started beside the lookup and
        dropped if found there after all."""
        ahead = asyncio.ensure_future(search()) if self._started_ahead else None
        try:
            if (found := await found_before()) is not None:
                return found
            return await (ahead if ahead is not None else search())
        finally:
            if ahead is not None:  # found in the cache after all, or this search was abandoned:
                settle(ahead)  # its failure is this list's only when it was waited for (above)

    async def _by_meaning(self) -> list[Hit]:
        async def found_before() -> list[Hit] | None:
            searched = await self._lookup  # its failure is this list's
            return None if searched is None else searched.thematic

        scale = self._measured if self._started_ahead else self.scale
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
        for future in filter(None, (self.chats, self._lookup, self.scale, self._measured)):
            settle(future)
        if self._in_cache is not None:
            await self._in_cache.file(self._searched())

    def _searched(self) -> CachedFindings | None:
        """What the thematic searches found, with the scale (None: they did not finish)."""
        if not (succeeded(self.by_meaning) and succeeded(self.scale)):
            return None
        words = self.by_words.result() if succeeded(self.by_words) else None  # None: searched when asked again
        return CachedFindings(self.by_meaning.result(), words, self.scale.result())
