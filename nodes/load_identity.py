"""load_identity: L0 (the persona, the time) and L1 (the user's facts), rendered as the prompt's
always-present head. A facts store that is down, or slower than the turn's deadline, costs
only L1."""

from __future__ import annotations

from langgraph.runtime import Runtime

from nodes.context import Context, resolve, turn_time
from nodes.state import NodeUpdate, TurnState, turn_user
from memory.prompt import system_header
from nodes.timing import timed


class LoadIdentityUpdate(NodeUpdate):
    identity: str
    facts: dict[str, str]
    degraded: dict[str, str]


@timed("load_identity")
async def load_identity(state: TurnState, runtime: Runtime[Context]) -> LoadIdentityUpdate:
    services, settings = resolve(runtime)
    degraded = ""
    deadline = settings.prefetch.timeout
    try:
        scope = services.memory.scope(state["chat_id"], turn_user(state), now=turn_time(state), settings=settings)
        facts = await scope.facts(deadline)
    except TimeoutError:
        facts, degraded = {}, f"facts store did not answer within the turn's deadline ({deadline:g} s)"
    except Exception as exc:  # the facts store fails independently: the turn goes on without L1
        facts, degraded = {}, f"facts store unavailable ({type(exc).__name__}: {exc})"
    return {
        "identity": system_header(settings.identity.base_prompt, turn_time(state), facts),
        "facts": facts,
        "degraded": {"load_identity": degraded},
    }
