"""llm: model call 1, from any OpenAI-compatible chat model (langchain-openai), offered the turn's tools.

Without tool calls its text is the reply. With them (native, or DSML markup in the text)
the turn goes on to the tools node; the markup never reaches the reply.
"""

from __future__ import annotations

from langgraph.runtime import Runtime
from pydantic import ValidationError

from nodes.context import Context, resolve
from nodes.services import UnreadableAnswer
from nodes.state import NodeUpdate, ToolCall, ToolResult, TurnState
from nodes.toolkit.flow import chat_messages, read_answer
from nodes.timing import timed


class LlmUpdate(NodeUpdate):
    reply: str
    tool_calls: list[ToolCall]
    tool_results: list[ToolResult]
    ungrounded: list[str]
    model_calls: int


@timed("llm")
async def llm(state: TurnState, runtime: Runtime[Context]) -> LlmUpdate:
    services, _ = resolve(runtime)
    model = services.chat_model  # raises ModelNotConfigured with the variables to set
    schemas = state.get("tool_schemas") or []
    # The schemas the budget node offered, which bind_tools passes through unconverted.
    offering = model.bind_tools(schemas) if schemas else model
    try:
        answer = await offering.ainvoke(chat_messages(state["prompt"]))
    except ValidationError as exc:  # the client could not build a message of what the model sent
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UnreadableAnswer(f"the model's answer could not be read ({problems})") from None
    reply, calls = read_answer(answer)
    # The thread's state still holds the previous turn's tool keys: this turn starts them afresh.
    return {"reply": reply, "tool_calls": calls if schemas else [], "tool_results": [], "ungrounded": [],
            "model_calls": 1}
