"""synthesize: model call 2, the reply written from the tool results, made without tools
(so no tool loop is possible: calls it asks for anyway are ignored, their markup stripped).

It also finds the reply's numbers that no tool result holds, for the correct node."""

from __future__ import annotations

from langgraph.runtime import Runtime

from nodes.context import Context, resolve
from nodes.toolkit.grounding import ungrounded_numbers
from nodes.state import NodeUpdate, TurnState
from nodes.toolkit.flow import FALLBACK_REPLY, grounding_sources, read_answer, synthesis_messages
from nodes.timing import timed


class SynthesizeUpdate(NodeUpdate):
    reply: str
    ungrounded: list[str]
    model_calls: int


@timed("synthesize")
async def synthesize(state: TurnState, runtime: Runtime[Context]) -> SynthesizeUpdate:
    services, _ = resolve(runtime)
    results = state["tool_results"]
    answer = await services.chat_model.ainvoke(synthesis_messages(state["prompt"], results))
    reply, _ignored_calls = read_answer(answer)
    reply = reply or FALLBACK_REPLY
    return {"reply": reply, "ungrounded": ungrounded_numbers(reply, grounding_sources(results)), "model_calls": 2}
