"""Thematic: the entries nearest the message by meaning (Chroma's vector index), as the
question's search found them (the L2.5 cache's, or Chroma's)."""

from __future__ import annotations

from memory.retrieval.mechanism import Mechanism, RecallRun
from memory.settings import Retrieval
from memory.turns import Hit


async def _by_meaning(run: RecallRun) -> list[Hit]:
    return await run.question.by_meaning


def _ratio(retrieval: Retrieval, hit: Hit, meaning_first: bool) -> float:
    return retrieval.meaning_first_relevance_ratio if meaning_first else retrieval.relevance_ratio


BY_MEANING = Mechanism("thematic", _by_meaning, priority=2, topical=True, ratio=_ratio)
