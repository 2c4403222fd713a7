"""budget: AITS sizes this turn's context from the message; L3 gets first claim on it.

It also settles which tools are offered this turn (the plugins folder is rescanned here,
once per turn): their guidance is part of the always-present head of the prompt."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from nodes.context import Context, resolve
from nodes.state import TurnState
from memory.aits import assess
from nodes.toolkit.flow import tool_offer
from memory.budget import split_budget
from memory.prompt import tool_guidance
from memory.tokens import count_tokens
from nodes.timing import timed


@timed("budget")
async def budget(state: TurnState, runtime: Runtime[Context]) -> dict[str, Any]:
    services, settings = resolve(runtime)
    offered = await tool_offer(services, settings)
    guidance = tool_guidance(offered)
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
        count_tokens(state.get("identity", "")) + count_tokens(guidance),
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
        "tools_offered": list(offered),
        "tool_guidance": guidance,
    }
