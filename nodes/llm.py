"""llm: model call 1, from any OpenAI-compatible chat model (langchain-openai), offered the turn's tools.

Without tool calls its text is the reply. With them (native, or DSML markup in the text)
the turn goes on to the tools node; the markup never reaches the reply.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from nodes.context import Context, resolve
from nodes.state import TurnState
from nodes.toolkit.flow import chat_messages, openai_schemas, read_answer, turn_tools
from nodes.timing import timed


@timed("llm")
async def llm(state: TurnState, runtime: Runtime[Context]) -> dict[str, Any]:
    services, _ = resolve(runtime)
    model = services.chat_model  # raises ModelNotConfigured with the variables to set
    tools = turn_tools(services, state)
    # Bound as ready schemas, which bind_tools passes through unconverted.
    offering = model.bind_tools(openai_schemas(tools.values())) if tools else model
    answer = await offering.ainvoke(chat_messages(state["prompt"]))
    reply, calls = read_answer(answer)
    # The thread's state still holds the previous turn's tool keys: this turn starts them afresh.
    return {"reply": reply, "tool_calls": calls if tools else [], "tool_results": [], "ungrounded": [],
            "model_calls": 1}
