"""archive_turn, the graph's node "archive": the turn, verbatim, into L3 (deterministic id per chat
and turn: a replay never duplicates).

The turn is parked in a Redis outbox, durable at once, and written to Chroma by the archiver
behind the reply (embedding it and Chroma's write would cost the turn ~50 ms). When L3 was
unreachable at its last use, the turn says so: its entry waits in the outbox until L3 is back."""

from __future__ import annotations

from langgraph.runtime import Runtime

from nodes.context import Context, resolve
from nodes.services import Services
from nodes.state import NodeUpdate, TurnState
from nodes.timing import timed
from nodes.turn_writes import archive_exchange


class Archived(NodeUpdate):
    """The turn's L3 entry ("" when it could not be written) and what failed."""

    archive_id: str
    degraded: dict[str, str]


class ArchiveUpdate(Archived):
    """Also the turn's user, their name and the time, consumed."""

    user_id: None
    user_name: None
    now: None


@timed("archive")
async def archive_turn(state: TurnState, runtime: Runtime[Context]) -> ArchiveUpdate:
    services, _ = resolve(runtime)
    outcome = await _archived(services, state)
    # The turn's user and time were its inputs: consumed here, so the thread's next turn that
    # leaves them out (Studio's form may) gets the defaults, never this turn's user and facts.
    return {**outcome, "user_id": None, "user_name": None, "now": None}


async def _archived(services: Services, state: TurnState) -> Archived:
    # What was injected into an answered turn gains popularity for later turns' scores
    # (here, after the reply, so that inspecting a turn changes nothing).
    reply, accessed = state["reply"], state.get("l3") or []
    try:
        exchange, archived = await archive_exchange(services.memory, state, reply, accessed=accessed)
    except Exception as exc:  # the reply is out and L2 holds the turn; L3 alone misses it
        return {"archive_id": "", "degraded": {"archive": f"L3 write failed ({type(exc).__name__}: {exc})"}}
    if archived.l3_problem:
        return {"archive_id": exchange.id,
                "degraded": {"archive": f"L3 unreachable: queued in the outbox ({archived.waiting} waiting)"}}
    return {"archive_id": exchange.id, "degraded": {"archive": ""}}
