"""load_working: the chat's L2 (pinned first message + recent ones) and this turn's number; the
turn starts here (its input checked, the last turn's results cleared)."""

from __future__ import annotations

from langgraph.runtime import Runtime

from memory.prompt import l2_ceiling
from memory.turns import Message
from nodes.context import Context, LocalContext, resolve, turn_time
from nodes.state import ClearedTurn, TurnState, check_input, last_turns_results, turn_user
from nodes.timing import timed


class LoadWorkingUpdate(ClearedTurn):
    turn: int
    working: list[Message]
    people: dict[str, str]
    now: float
    user_id: str


@timed("load_working")
async def load_working(state: TurnState, runtime: Runtime[Context]) -> LoadWorkingUpdate:
    if not (isinstance(runtime.context, LocalContext) and runtime.context.input_checked):
        check_input(state)  # before anything of this turn is written
    services, settings = resolve(runtime)
    # Redis is the one backend a turn cannot do without (L2 and the turn counter live
    # there): its failure raises, before anything of this turn has been written.
    working = await services.memory.working(
        state["chat_id"], settings.memory.l2_max_messages, max_tokens=l2_ceiling(state["message"], settings)
    )
    speaker = turn_user(state)
    people = {**working.people, speaker: state.get("user_name") or working.people.get(speaker, "")}
    return {
        **last_turns_results(state),
        "turn": working.completed + 1,
        "working": working.messages,
        "people": people,
        # An input sent straight to the graph may omit them: written here, every later node,
        # and what save and archive write, agrees on the turn's time and user.
        "now": turn_time(state),
        "user_id": turn_user(state),
    }
