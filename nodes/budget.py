"""budget: AITS sizes this turn's context from the message; L3 gets first claim on it."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context, resolve
from graph.state import TurnState
from memory.aits import assess
from memory.budget import split_budget
from memory.tokens import count_tokens
from nodes.timing import timed


@timed("budget")
async def budget(state: TurnState, runtime: Runtime[Context]) -> dict[str, Any]:
    _, settings = resolve(runtime)
    aits = settings.aits
    assessment = assess(
        state["message"],
        base=aits.base,
        confidence_multiplier=aits.confidence_multiplier,
        complexity_bonus=aits.complexity_bonus,
        hard_cap=aits.hard_cap,
    )
    split = split_budget(
        assessment.budget,
        count_tokens(state.get("identity", "")),
        l3_min_guarantee=settings.budget.l3_min_guarantee_tokens,
        l2_floor=settings.budget.l2_floor_tokens,
    )
    return {
        "aits": {
            "confidence": assessment.confidence,
            "complexity": assessment.complexity,
            "budget": assessment.budget,
        },
        "split": {"l0_l1": split.l0_l1, "l2": split.l2, "l3": split.l3},
    }
