"""gap_filter: decide which recalls stand out, fuse the ranked lists, add context, score.

Each ranked list of the prefetch (semantic, words, temporal, exact keys) says which of its
entries are relevant: those below a share of the chat's background distance (or, while the
chat has no background yet, the head before a significant gap). The lists' ranks are fused
(reciprocal-rank fusion, smoothed along the conversation); the relevant entries, plus a few
of the next best by fused rank as context, are scored and ordered for the L3 block. The turns
just before and after the best of them are read and placed beside them, and a long message of
any is cut to its sentences that bear on this one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from langgraph.runtime import Runtime

from nodes.context import Context, resolve
from nodes.state import NodeUpdate, TurnState
from memory.retrieval import beside_verdicts, choose_and_explain, excerpted
from memory.turns import Hit, Verdict
from nodes.timing import timed


class GapFilterUpdate(NodeUpdate):
    l3_candidates: list[Hit]
    verdicts: list[Verdict]
    degraded: dict[str, str]


@timed("gap_filter")
async def gap_filter(state: TurnState, runtime: Runtime[Context]) -> GapFilterUpdate:
    services, settings = resolve(runtime)
    lists = state.get("recalls") or {}
    prefetched: Mapping[str, Any] = state.get("prefetch") or {}  # a RecallOutcome, when prefetch ran
    # verdicts: for whoever steps the turn (Studio, goat mcp's diagnose_last_turn), each candidate's.
    candidates, verdicts = choose_and_explain(
        lists, prefetched.get("background"), state["now"], settings.retrieval, settings.prefetch.max_results,
        prefetched.get("ceiling"), prefetched.get("background_passages"), bool(prefetched.get("meaning_first")),
        bool(prefetched.get("latest_first")))
    degraded = ""
    try:
        candidates = await asyncio.wait_for(
            services.memory.with_turns_beside(candidates, settings.retrieval.beside_best,
                                              settings.retrieval.whole_message_chars), settings.prefetch.timeout)
    except asyncio.TimeoutError:
        degraded = f"the turns beside the best were not read within the turn's deadline ({settings.prefetch.timeout:g} s)"
    except Exception as exc:  # the chosen entries are injected without them
        degraded = f"the turns beside the best were not read ({type(exc).__name__}: {exc})"
    retrieval = settings.retrieval
    candidates = excerpted(candidates, state["message"], retrieval.whole_message_chars, retrieval.excerpt_chars)
    return {"l3_candidates": candidates, "verdicts": verdicts + beside_verdicts(candidates),
            "degraded": {"gap_filter": degraded}}
