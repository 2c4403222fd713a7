"""budget: AITS sizes this turn's context from the message; L3 gets first claim on it.

It also settles which tools are offered this turn (the plugins folder is rescanned here,
once per turn): their guidance is part of the always-present head of the prompt."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from memory.prompt import assess, count_tokens, people_note, tool_guidance, turn_split
from memory.turns import Assessment, LayerTokens
from nodes.context import Context, resolve
from nodes.state import NodeUpdate, TurnState, shared_people
from nodes.timing import timed
from nodes.toolkit.flow import openai_schemas, tool_offer
from nodes.toolkit.memory_tools import MEMORY_TOOL_NAMES


class BudgetUpdate(NodeUpdate):
    aits: Assessment
    split: LayerTokens
    tools_offered: list[str]
    tool_schemas: list[dict[str, Any]]
    tool_guidance: str


@timed("budget")
async def budget(state: TurnState, runtime: Runtime[Context]) -> BudgetUpdate:
    services, settings = resolve(runtime)
    offered = await tool_offer(services.plugins, settings)
    # Memory tools have their fixed guidance line; any other tool its own description.
    guidance = tool_guidance({t.name: "" if t.name in MEMORY_TOOL_NAMES else t.description for t in offered})
    aits = settings.aits
    assessment = assess(
        state["message"],
        base=aits.base,
        confidence_multiplier=aits.confidence_multiplier,
        complexity_bonus=aits.complexity_bonus,
        hard_cap=aits.hard_cap,
    )
    head = count_tokens(state.get("identity", "")) + count_tokens(guidance)
    if people := shared_people(state):
        head += count_tokens(people_note(people, state["user_id"]))
    return {
        "aits": assessment,
        "split": turn_split(assessment["budget"], head, settings),
        "tools_offered": [t.name for t in offered],
        "tool_schemas": openai_schemas(offered),
        "tool_guidance": guidance,
    }
