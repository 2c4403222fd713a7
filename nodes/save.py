"""save: append the exchange to the chat's L2 (O(1), idempotent by turn number)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context, resolve, turn_time
from graph.state import TurnState
from nodes.timing import timed


@timed("save")
async def save(state: TurnState, runtime: Runtime[Context]) -> dict[str, Any]:
    services, _ = resolve(runtime)
    now = turn_time(state)
    await services.memory.save_turn(
        state["chat_id"],
        state["turn"],
        [
            {"role": "user", "content": state["message"], "timestamp": now},
            {"role": "assistant", "content": state["reply"], "timestamp": now},
        ],
    )
    return {}
