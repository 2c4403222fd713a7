"""Thematic: the entries nearest the message by meaning (Chroma's vector index), as the
question's search found them (the L2.5 cache's, or Chroma's)."""

from __future__ import annotations

from memory.retrieval.mechanism import BY_MEANING, Mechanism, RecallRun
from memory.settings import Retrieval
from memory.turns import Hit


async def _find(run: RecallRun) -> list[Hit]:
    return await run.question.by_meaning


def _ratio(retrieval: Retrieval, hit: Hit, meaning_first: bool) -> float:
    return retrieval.meaning_first_relevance_ratio if meaning_first else retrieval.relevance_ratio


THEMATIC = Mechanism("thematic", _find, priority=2, topical=True, question_search=BY_MEANING, ratio=_ratio)
