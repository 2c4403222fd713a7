"""save: append the exchange to the chat's L2 (O(1), idempotent by turn number).

When tools ran, the assistant message starts with one evidence line per call, so later
turns can see what was looked up and what came back."""

from __future__ import annotations

from langgraph.runtime import Runtime

from nodes.context import Context, resolve
from nodes.state import Message, NodeUpdate, TurnState, spoken_message
from nodes.toolkit.flow import with_evidence
from nodes.timing import timed
from nodes.turn_writes import save_messages


@timed("save")
async def save(state: TurnState, runtime: Runtime[Context]) -> NodeUpdate:  # no field of its own
    services, _ = resolve(runtime)
    # Both messages carry the user whose turn it is: forgetting a person finds them by it.
    # TurnConflict when another turn of this chat took the number: archive never overwrites it.
    await save_messages(services.memory, state, [
        spoken_message(state),
        Message(role="assistant", content=with_evidence(state["reply"], state.get("tool_results") or []),
                timestamp=state["now"], user_id=state["user_id"]),
    ])
    return {}
