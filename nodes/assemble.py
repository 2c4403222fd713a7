"""assemble: the prompt. L0 + time + L1 + the L3 block + tool guidance in the system message;
L2 as real messages. It also settles which tools are offered this turn (the plugins folder
is rescanned here, once per turn)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context, resolve
from graph.state import TurnState
from graph.tool_flow import tool_offer
from memory.budget import format_recall_line, pack_recalls, trim_working
from memory.prompt import recall_block, tool_guidance
from memory.tokens import count_tokens
from nodes.timing import timed


@timed("assemble")
async def assemble(state: TurnState, runtime: Runtime[Context]) -> dict[str, Any]:
    services, settings = resolve(runtime)
    split = state["split"]
    offered = await tool_offer(services, settings)
    guidance = tool_guidance(offered)
    # The guidance is part of the always-present head, which the budget counted without it:
    # its tokens come out of L2's share, so L3 keeps its guaranteed slice.
    guidance_tokens = count_tokens(guidance)
    injected, l3_tokens = pack_recalls(state.get("l3_candidates") or [], split["l3"], count_tokens)
    recalled = recall_block([format_recall_line(r) for r in injected])
    system = "\n\n".join(part for part in (state.get("identity", ""), recalled, guidance) if part)
    history, l2_tokens = trim_working(state.get("working") or [], max(0, split["l2"] - guidance_tokens), count_tokens)
    prompt = [
        {"role": "system", "content": system},
        *({"role": m["role"], "content": m["content"]} for m in history),
        {"role": "user", "content": state["message"]},
    ]
    return {
        "prompt": prompt,
        "l3": injected,
        "tokens": {"l0_l1": split["l0_l1"] + guidance_tokens, "l2": l2_tokens, "l3": l3_tokens},
        "tools_offered": list(offered),
    }
