"""prefetch: search L3 before the model sees the message — every turn, no confidence gate.

The mechanisms, their shared query vector and the hard deadline are the memory's recall
pipeline (``memory/retrieval/finding/recall.py``), the same one the ``search_memory`` tool runs."""

from __future__ import annotations

from langgraph.runtime import Runtime

from memory.facade import RecallQuery
from memory.turns import Hit, RecallOutcome
from nodes.context import Context, resolve, turn_time
from nodes.state import NodeUpdate, TurnState, turn_user
from nodes.timing import timed


class PrefetchUpdate(NodeUpdate):
    recalls: dict[str, list[Hit]]
    prefetch: RecallOutcome
    degraded: dict[str, str]


@timed("prefetch")
async def prefetch(state: TurnState, runtime: Runtime[Context]) -> PrefetchUpdate:
    services, settings = resolve(runtime)
    query = RecallQuery(state["message"], state["chat_id"], turn_user(state), turn_time(state))
    recalled = await services.memory.recall(query, settings)
    return {"recalls": recalled.lists, "prefetch": recalled.outcome, "degraded": {"prefetch": "; ".join(recalled.problems)}}
