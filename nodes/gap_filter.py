"""gap_filter: decide which recalls stand out, fuse the ranked lists, add context, score.

Each ranked list of the prefetch (semantic, words, temporal, exact keys) says which of its
entries are relevant: those below a share of the chat's background distance (or, while the
chat has no background yet, the head before a significant gap). The lists' ranks are fused
(reciprocal-rank fusion, smoothed along the conversation); the relevant entries, plus a few
of the next best by fused rank as context, are scored and ordered for the L3 block. The turns
just before and after the best of them are read and placed beside them (for a statement about
its speaker, the next nearest by meaning instead), and a long message of any is cut to its
sentences that bear on this one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from langgraph.runtime import Runtime

from nodes.context import Context, resolve
from nodes.state import NodeUpdate, TurnState
from memory.facade import Memory
from memory.retrieval import STATEMENT, beside_verdicts, choose_and_explain, excerpted, with_next_nearest
from memory.turns import Hit, Verdict
from nodes.settings import NodeSettings
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
    retrieval = settings.retrieval
    if prefetched.get("meaning_first") == STATEMENT:
        # As many as the turns beside the best could be, one before and one after each.
        candidates, added_verdicts = with_next_nearest(candidates, lists, 2 * retrieval.beside_best)
        degraded = ""
    else:
        candidates, degraded = await _with_turns_beside(services.memory, candidates, settings)
        added_verdicts = beside_verdicts(candidates)
    candidates = excerpted(candidates, state["message"], retrieval.whole_message_chars, retrieval.excerpt_chars)
    return {"l3_candidates": candidates, "verdicts": verdicts + added_verdicts, "degraded": {"gap_filter": degraded}}


async def _with_turns_beside(memory: Memory, chosen: list[Hit], settings: NodeSettings) -> tuple[list[Hit], str]:
    """The chosen entries and the turns beside the best, and what went wrong reading them ("": nothing)."""
    retrieval, deadline = settings.retrieval, settings.prefetch.timeout
    try:
        return await asyncio.wait_for(memory.with_turns_beside(
            chosen, retrieval.beside_best, retrieval.whole_message_chars), deadline), ""
    except asyncio.TimeoutError:
        return chosen, f"the turns beside the best were not read within the turn's deadline ({deadline:g} s)"
    except Exception as exc:  # the chosen entries are injected without them
        return chosen, f"the turns beside the best were not read ({type(exc).__name__}: {exc})"
