"""gap_filter: decide which recalls stand out, fuse the ranked lists, add context, score.

Each ranked list of the prefetch (by meaning, by words, a period, exact keys, a person) says
which of its entries are relevant: those below a share of the chat's background distance (or,
while the chat has no background yet, the head before a significant gap). The lists' ranks are
fused (reciprocal-rank fusion, smoothed along the conversation); the relevant entries, plus a
few of the next best by fused rank as context, are scored and ordered for the L3 block. The
turns beside the best of them are read and placed after them (for a statement about its
speaker, the next nearest by meaning instead), and a long message of any is cut to its
sentences that bear on this one: memory's selection (``Memory.select``) does all of it.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from memory.facade import Recalled
from memory.turns import Hit, Verdict
from nodes.context import Context, resolve
from nodes.state import NodeUpdate, TurnState
from nodes.timing import timed


class GapFilterUpdate(NodeUpdate):
    l3_candidates: list[Hit]
    verdicts: list[Verdict]
    degraded: dict[str, str]


@timed("gap_filter")
async def gap_filter(state: TurnState, runtime: Runtime[Context]) -> GapFilterUpdate:
    services, settings = resolve(runtime)
    recalled = Recalled(state.get("recalls") or {}, state.get("prefetch") or {})  # no outcome before a prefetch
    # verdicts: for whoever steps the turn (Studio, goat mcp's diagnose_last_turn), each candidate's.
    selection = await services.memory.select(recalled, state["message"], state["now"], settings)
    return {"l3_candidates": selection.chosen, "verdicts": selection.verdicts,
            "degraded": {"gap_filter": selection.problem}}
