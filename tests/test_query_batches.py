"""Queries that arrive together are encoded together (memory/encoders/batches.py), by the real
encoder: one call per batch, in arrival order, each query's vector its own."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import pytest

from memory.encoders.batches import BATCH_QUERIES, QueryBatches
from memory.encoders.embeddings import LocalEmbeddings
from memory.encoders.paired import PairedEncoder

QUESTIONS = [f"What did I say about the trip number {n}?" for n in range(2 * BATCH_QUERIES + 3)]


class CountedCalls:
    """Runs calls in a worker thread, as the memory's pool does, and notes the texts of each."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self._pool = ThreadPoolExecutor(2)

    async def __call__(self, fn: partial, texts: list[str]) -> Any:
        self.batches.append(list(texts))
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, texts)


@pytest.fixture
def encoder(embeddings: LocalEmbeddings) -> PairedEncoder:
    embeddings.encoder.forget_queries()
    return embeddings.encoder


async def test_queries_asked_together_are_encoded_in_batches_in_arrival_order(encoder):
    calls = CountedCalls()
    batches = QueryBatches(calls)
    vectors = await asyncio.gather(*(batches.encode(encoder, text, False) for text in QUESTIONS))
    assert calls.batches == [QUESTIONS[:BATCH_QUERIES], QUESTIONS[BATCH_QUERIES:2 * BATCH_QUERIES],
                             QUESTIONS[2 * BATCH_QUERIES:]]
    encoder.forget_queries()
    alone = [encoder.encode([text], query=True, every_language=False)[0] for text in QUESTIONS]
    assert all(np.allclose(v, a, atol=1e-5) for v, a in zip(vectors, alone))


async def test_a_lone_query_is_encoded_at_once_and_the_same_text_once(encoder):
    calls = CountedCalls()
    batches = QueryBatches(calls)
    first = await batches.encode(encoder, QUESTIONS[0], False)
    twice = await asyncio.gather(*(batches.encode(encoder, QUESTIONS[1], False) for _ in range(2)))
    assert calls.batches == [[QUESTIONS[0]], [QUESTIONS[1]]]
    assert np.array_equal(twice[0], twice[1]) and not np.array_equal(first, twice[0])


async def test_a_query_given_up_on_leaves_the_others_served(encoder):
    batches = QueryBatches(CountedCalls())
    kept = batches.encode(encoder, QUESTIONS[0], False)
    dropped = batches.encode(encoder, QUESTIONS[1], False)
    assert batches.queued(QUESTIONS[1])
    dropped.cancel()
    assert (await kept).shape == (encoder.dimensions,)
    assert not batches.queued(QUESTIONS[1])


async def test_an_encoder_failure_reaches_every_query_of_its_batch(encoder):
    async def failing(fn: partial, texts: list[str]) -> Any:
        raise RuntimeError("the encoder failed")

    batches = QueryBatches(failing)
    outcomes = await asyncio.gather(*(batches.encode(encoder, text, False) for text in QUESTIONS[:3]),
                                    return_exceptions=True)
    assert [str(outcome) for outcome in outcomes] == ["the encoder failed"] * 3
