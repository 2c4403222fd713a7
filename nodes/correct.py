"""correct: model call 3, only when the synthesised reply states numbers that no tool result
holds; the one correction names them. If it fails, the earlier reply stands."""

from __future__ import annotations

from langgraph.runtime import Runtime
from typing_extensions import NotRequired

from nodes.context import Context, resolve
from nodes.state import NodeUpdate, TurnState
from nodes.toolkit.flow import correction_messages, read_answer
from nodes.timing import timed


class CorrectUpdate(NodeUpdate):
    reply: NotRequired[str]
    """Not when the call failed: the draft stands."""
    model_calls: int
    degraded: dict[str, str]


@timed("correct")
async def correct(state: TurnState, runtime: Runtime[Context]) -> CorrectUpdate:
    services, _ = resolve(runtime)
    draft = state["reply"]
    messages = correction_messages(state["prompt"], state["tool_results"], draft, state["ungrounded"])
    try:
        answer = await services.chat_model.ainvoke(messages)
    except Exception as exc:  # a correction is a refinement: without it the draft is the reply
        return {"model_calls": 3,
                "degraded": {"correct": f"correction call failed ({type(exc).__name__}: {exc}); the draft stands"}}
    corrected, _ignored_calls = read_answer(answer)
    return {"reply": corrected or draft, "model_calls": 3, "degraded": {"correct": ""}}
