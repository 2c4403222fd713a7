"""tools: run the tool calls the model asked for; each result (or JSON error) is for call 2."""

from __future__ import annotations

from langgraph.runtime import Runtime

from nodes.context import Context, resolve
from nodes.state import NodeUpdate, ToolResult, TurnState
from nodes.toolkit.flow import run_tool_calls, turn_toolbox, turn_tools
from nodes.timing import timed


class ToolsUpdate(NodeUpdate):
    tool_results: list[ToolResult]


@timed("tools")
async def tools(state: TurnState, runtime: Runtime[Context]) -> ToolsUpdate:
    services, settings = resolve(runtime)
    config = turn_toolbox(services.memory, settings, state).run_config()
    results = await run_tool_calls(
        turn_tools(services.plugins, state), state["tool_calls"], config, settings.tools.timeout, settings.tools.max_calls
    )
    return {"tool_results": results}
