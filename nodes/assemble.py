"""assemble: the prompt. L0 + time + L1 + the L3 block + tool guidance in the system message;
L2 as real messages."""

from __future__ import annotations

from langgraph.runtime import Runtime

from nodes.context import Context
from memory.turns import Hit, LayerTokens
from nodes.state import Message, NodeUpdate, TurnState
from memory.prompt import count_tokens, count_tokens_each, pack_recalls, recall_block, trim_working
from nodes.timing import timed


class AssembleUpdate(NodeUpdate):
    prompt: list[Message]
    l3: list[Hit]
    tokens: LayerTokens


@timed("assemble")
async def assemble(state: TurnState, runtime: Runtime[Context]) -> AssembleUpdate:
    split = state["split"]
    guidance = state.get("tool_guidance") or ""
    injected = pack_recalls(state.get("l3_candidates") or [], split["l3"], count_tokens_each)
    recalled = recall_block(injected.lines)
    system = "\n\n".join(part for part in (state.get("identity", ""), recalled, guidance) if part)
    history, l2_tokens = trim_working(state.get("working") or [], split["l2"], count_tokens)
    prompt = [
        Message(role="system", content=system),
        *(Message(role=m["role"], content=m["content"]) for m in history),
        Message(role="user", content=state["message"]),
    ]
    return {
        "prompt": prompt,
        "l3": injected.recalls,
        "tokens": LayerTokens(l0_l1=split["l0_l1"], l2=l2_tokens, l3=injected.tokens),
    }
