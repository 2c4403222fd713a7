"""llm: the answer, from any OpenAI-compatible chat model (langchain-openai)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from graph.context import Context, resolve
from graph.state import TurnState
from nodes.timing import timed

_MESSAGE_TYPES = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}


@timed("llm")
async def llm(state: TurnState, runtime: Runtime[Context]) -> dict[str, Any]:
    services, _ = resolve(runtime)
    model = services.chat_model  # raises ModelNotConfigured with the variables to set
    messages = [_MESSAGE_TYPES[m["role"]](content=m["content"]) for m in state["prompt"]]
    answer = await model.ainvoke(messages)
    return {"reply": answer.text}
