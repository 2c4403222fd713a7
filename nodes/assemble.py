"""assemble: the prompt. L0 + time + L1 + the L3 block + tool guidance in the system message;
L2 as real messages."""

from __future__ import annotations

from langgraph.runtime import Runtime

from nodes.context import Context
from memory.turns import Hit, LayerTokens
from nodes.state import Message, NodeUpdate, TurnState, shared_people, spoken_message
from memory.prompt import (count_tokens, count_tokens_each, named_messages, pack_recalls, people_note, recall_block,
                           trim_working)
from nodes.timing import timed


class AssembleUpdate(NodeUpdate):
    prompt: list[Message]
    l3: list[Hit]
    tokens: LayerTokens


@timed("assemble")
async def assemble(state: TurnState, runtime: Runtime[Context]) -> AssembleUpdate:
    split, people = state["split"], shared_people(state)
    guidance = state.get("tool_guidance") or ""
    injected = pack_recalls(state.get("l3_candidates") or [], split["l3"], count_tokens_each, people)
    recalled = recall_block(injected.lines)
    working, message = state.get("working") or [], state["message"]
    note = ""
    if people is not None:  # a chat of several people: who said what, and who asks now
        note = people_note(people, state["user_id"])
        working = named_messages(working, people)
        message = named_messages([spoken_message(state)], people)[0]["content"]
    system = "\n\n".join(part for part in (state.get("identity", ""), note, recalled, guidance) if part)
    history, l2_tokens = trim_working(working, split["l2"], count_tokens)
    prompt = [
        Message(role="system", content=system),
        *(Message(role=m["role"], content=m["content"]) for m in history),
        Message(role="user", content=message),
    ]
    return {
        "prompt": prompt,
        "l3": injected.recalls,
        "tokens": LayerTokens(l0_l1=split["l0_l1"], l2=l2_tokens, l3=injected.tokens),
    }
