"""gap_filter: decide which recalls stand out, fuse the ranked lists, add context, score.

Each ranked list of the prefetch (semantic, words, temporal, exact keys) says which of its
entries are relevant: those below a share of the chat's background distance (or, while the
chat has no background yet, the head before a significant gap). The lists' ranks are fused
(reciprocal-rank fusion, smoothed along the conversation); the relevant entries, plus a few
of the next best by fused rank as context, are scored and ordered for the L3 block.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context, resolve
from graph.settings import Retrieval
from graph.state import TurnState
from memory.gap import background_filter, gap_filter as filter_by_gap
from memory.merge import fuse, merge_and_score, with_context
from nodes.timing import timed


@timed("gap_filter")
async def gap_filter(state: TurnState, runtime: Runtime[Context]) -> dict[str, Any]:
    _, settings = resolve(runtime)
    retrieval = settings.retrieval
    lists = state.get("recalls") or {}
    background = (state.get("prefetch") or {}).get("background")
    relevant = {
        recall["id"]
        for name, hits in lists.items()
        for recall in _relevant(name, hits, background, retrieval)
    }
    fused = fuse(
        [_ranked(name, hits) for name, hits in lists.items()],
        rrf_k=retrieval.rrf_k,
        neighbour_weight=retrieval.neighbour_weight,
    )
    kept = with_context(relevant, fused, retrieval.context_ratio)
    candidates = merge_and_score(
        [[r for r in hits if r["id"] in kept] for hits in lists.values()],
        state["now"],
        fused,
        weight_similarity=retrieval.weight_similarity,
        weight_recency=retrieval.weight_recency,
        weight_popularity=retrieval.weight_popularity,
        recency_window_days=retrieval.recency_window_days,
        popularity_norm=retrieval.popularity_norm,
        max_results=settings.prefetch.max_results,
    )
    return {"l3_candidates": candidates}


def _ranked(name: str, hits: list[dict]) -> list[dict]:
    """A list best first: word hits come in BM25 order, the others by distance."""
    return hits if name == "lexical" else sorted(hits, key=lambda r: r["distance"])


def _relevant(name: str, hits: list[dict], background: float | None, retrieval: Retrieval) -> list[dict]:
    """The entries of one ranked list that stand out on their own."""
    min_keep = retrieval.temporal_min_results if name == "temporal" else 0
    if background is None:
        # Words alone cannot tell relevance without a background; the others fall back to the gap test.
        if name == "lexical":
            return []
        return filter_by_gap(hits, retrieval.gap_significance, retrieval.small_result_ceiling, min_keep=min_keep)
    ratio = retrieval.lexical_relevance_ratio if name == "lexical" else retrieval.relevance_ratio
    return background_filter(hits, background, ratio, min_keep=min_keep)
