"""A question's search with its stores stood in for: a question likely found in the L2.5 cache
is measured only once its lookup has missed, and a search started ahead that the cache's hit
leaves unused is dropped, its failure reported by no one (nothing waits for it)."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace

from memory.retrieval.finding.ahead import Ahead
from memory.retrieval.finding.cached_questions import CachedQuestions, CachedFindings
from memory.retrieval.finding.question import Question, QuestionServices

SCALE = object()  # a question's scale: passed along, never read here
HIT = {"id": "c1:turn_1", "content": "user: I went to Kyoto.", "distance": 0.2}


def _done(result: object = None, failure: Exception | None = None) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    if failure is not None:
        future.set_exception(failure)
    else:
        future.set_result(result)
    return future


async def test_a_question_likely_cached_is_measured_only_once_its_lookup_has_missed() -> None:
    ahead = Ahead(None, None, SimpleNamespace(l3=SimpleNamespace(run_blocking=None)))
    measured: list[str] = []

    async def measure(text: str, chats: list[str], asked_in: str | None = None) -> object:
        measured.append(text)
        return SCALE

    ahead.measure = measure
    chats = _done(["c1"])
    assert await ahead.measure_once_read("where did I go?", chats, "c1", _done(object())) is None
    assert measured == []  # found: the scale filed with it serves
    for lookup in (_done(None), _done(failure=ConnectionError("the cache did not answer"))):
        assert await ahead.measure_once_read("where did I go?", chats, "c1", lookup) is SCALE
    assert measured == ["where did I go?"] * 2


class _Reads:
    """L3's reads, whose search by meaning fails."""

    redis = l3 = None

    def __init__(self) -> None:
        self.failed = asyncio.Event()

    async def search(self, chats: list[str], scale: object, k: int) -> list[dict]:
        self.failed.set()
        raise ConnectionError("Chroma did not answer")


class _Ahead:
    def embed_ahead(self, text: str, chat_id: str) -> None:
        pass

    async def measure_once_read(self, text: str, chats: asyncio.Future, asked_in: str,
                                unless_found: asyncio.Future | None = None) -> object:
        return SCALE


class _Cached(CachedQuestions):
    """The L2.5 cache, holding the question though this process's hint says otherwise (another
    process filed it), and answering once the search started ahead has failed."""

    def __init__(self, answer_after: asyncio.Event) -> None:
        super().__init__(None, None)
        self._answer_after = answer_after

    async def look_up(self, scope_key: str, digest: str) -> tuple[CachedFindings | None, str | None]:
        await self._answer_after.wait()
        return CachedFindings([HIT], None, SCALE), "generation"


async def test_a_search_started_ahead_that_failed_before_a_hit_goes_unreported() -> None:
    loop, unretrieved = asyncio.get_running_loop(), []
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))
    try:
        reads = _Reads()
        question = Question(QuestionServices(reads, _Ahead(), _Cached(reads.failed)), "where did I go?", "c1", "alice",
                            "chat", 5, True, None)
        assert await question.by_meaning == [HIT] and question.cache["hit"] is True
        await question.finish()
        del question
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert unretrieved == []
