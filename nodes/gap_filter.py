"""gap_filter: keep what stands out of each semantic result list, merge the mechanisms, score."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context, resolve
from graph.state import TurnState
from memory.gap import gap_filter as filter_by_gap
from memory.merge import merge_and_score
from nodes.timing import timed


@timed("gap_filter")
async def gap_filter(state: TurnState, runtime: Runtime[Context]) -> dict[str, Any]:
    _, settings = resolve(runtime)
    retrieval = settings.retrieval
    kept = [
        filter_by_gap(
            hits,
            retrieval.gap_significance,
            retrieval.small_result_ceiling,
            min_keep=retrieval.temporal_min_results if mechanism == "temporal" else 0,
        )
        for mechanism, hits in (state.get("recalls") or {}).items()
    ]
    candidates = merge_and_score(
        kept,
        state["now"],
        weight_similarity=retrieval.weight_similarity,
        weight_recency=retrieval.weight_recency,
        weight_popularity=retrieval.weight_popularity,
        recency_window_days=retrieval.recency_window_days,
        popularity_norm=retrieval.popularity_norm,
        max_results=settings.prefetch.max_results,
    )
    return {"l3_candidates": candidates}
