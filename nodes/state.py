"""The typed state of one turn.

Everything here is plain JSON-able data, so a checkpointer can persist it and
Studio can show it. Keys written by the three fan-out nodes (which run in the
same superstep) are disjoint, except the per-node bookkeeping dicts, which merge.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, cast

from pydantic import ConfigDict, Field, with_config
# typing_extensions' TypedDict: pydantic (and so LangGraph's server, for Studio's form) reads
# typing's only from Python 3.12.
from typing_extensions import Annotated, NotRequired, TypedDict

from memory.turns import (NOT_UNICODE, Assessment, Hit, LayerTokens, Message, RecallOutcome, Verdict, clean_text,
                          message_problem, name_problem)

# Each field's docstring is its description in the JSON schemas (Studio's input form, state view).
_DOCUMENTED = ConfigDict(use_attribute_docstrings=True)


# The first superstep: they load the turn's layers side by side.
FAN_OUT = ("prefetch", "load_identity", "load_working")


def merge_dicts(left: dict | None, right: dict | None) -> dict:
    """Reducer for per-node dicts: each node overwrites only its own key, every turn; a key set
    to None is dropped (see :func:`last_turns_results`)."""
    return {key: value for key, value in {**(left or {}), **(right or {})}.items() if value is not None}


@with_config(_DOCUMENTED)
class ToolCall(TypedDict):
    """A tool call the model asked for (native ``tool_calls`` or DSML markup in its text)."""

    id: str
    name: str
    args: dict[str, Any]
    error: NotRequired[str]
    """The request itself was unusable (arguments that are not JSON)."""


@with_config(_DOCUMENTED)
class ToolResult(TypedDict):
    """What a tool call returned, as the model reads it."""

    id: str
    name: str
    args: dict[str, Any]
    output: str
    """The tool's text, or a JSON ``{"error": …}``; capped in length."""
    ok: bool
    chars: int
    """Length of the whole output, before any cap."""


# The input's descriptions are Field()s: a docstring is not inherited by TurnState's schema.
class TurnInput(TypedDict):
    """One message to the agent: the turn it starts."""

    chat_id: Annotated[str, Field(description="The conversation (a Telegram chat, a terminal session…).")]
    message: Annotated[str, Field(description="What the user says.")]
    user_id: NotRequired[Annotated[str, Field(description="Who says it; empty: the chat's id (a private chat).")]]
    user_name: NotRequired[Annotated[str, Field(
        description="Their display name, shown beside their lines where a chat has several people.")]]
    now: NotRequired[Annotated[float, Field(
        description="When it is said, in unix seconds; empty: now. Set it to replay a conversation.")]]


@with_config(_DOCUMENTED)
class TurnState(TurnInput, total=False):
    """The turn as it runs: the input, then what each node adds (each field's docstring names the
    node that writes it). Of the input, load_working writes ``user_id`` and ``now`` as decided (the
    chat's id, the time now, where the input left them out), and archive clears both as the turn
    ends (L2 keeps them). A field a later node writes is None, not the last turn's, until it does
    (load_working clears them: :func:`last_turns_results`)."""

    identity: str
    """load_identity: the prompt's head, always present (L0 persona + time + L1 facts)."""
    facts: dict[str, str]
    """load_identity: the user's facts (L1)."""
    turn: int
    """load_working: this turn's number in the chat, from 1."""
    working: list[Message]
    """load_working: L2, the pinned first message and the most recent ones."""
    people: dict[str, str]
    """load_working: who spoke in the chat (user id -> their latest name, "" if never given), this
    turn's speaker too."""
    recalls: dict[str, list[Hit]]
    """prefetch: per mechanism, closest first, unfiltered."""
    prefetch: RecallOutcome
    """prefetch: how its recall went, mechanism by mechanism."""
    l3_candidates: list[Hit]
    """gap_filter: kept, merged, scored, best first; then the turns beside the best (mechanism "beside"), or
    for a statement about its speaker the next nearest by meaning (mechanism "nearest")."""
    verdicts: list[Verdict]
    """gap_filter: per candidate of each list, kept or not and why; and why each turn beside the best, or
    each next nearest, is."""
    aits: Assessment
    """budget: confidence, complexity and the turn's token budget."""
    split: LayerTokens
    """budget: the token shares of l0_l1 (identity, facts, tool guidance), l2 and l3."""
    tools_offered: list[str]
    """budget: the tools the model may call this turn."""
    tool_schemas: list[dict[str, Any]]
    """budget: their OpenAI schemas, bound to the model by the llm node."""
    tool_guidance: str
    """budget: their lines in the system prompt."""
    prompt: list[Message]
    """assemble: the system message, the L2 messages and the user's message."""
    l3: list[Hit]
    """assemble: what was injected from L3."""
    tokens: LayerTokens
    """assemble: the tokens of l0_l1, l2 and l3 actually used."""
    reply: str
    """llm, synthesize or correct: the reply the user reads."""
    model_calls: int
    """llm (1), synthesize (2) or correct (3): how many times the model was called this turn."""
    tool_calls: list[ToolCall]
    """llm: the tool calls the model asked for."""
    tool_results: list[ToolResult]
    """tools: what they returned (llm empties it)."""
    ungrounded: list[str]
    """synthesize: standalone numbers of its reply found in no tool result (llm empties it)."""
    archive_id: str
    """archive: the L3 entry that holds this turn."""
    latency_ms: Annotated[dict[str, float], merge_dicts]
    """Every node (its ``timed`` wrapper): per node, its time in milliseconds."""
    degraded: Annotated[dict[str, str], merge_dicts]
    """prefetch, load_identity, gap_filter, correct and archive: per node, what failed ("" when fine)."""


# Written by the fan-out in the turn's first superstep (so never cleared there: two writes of
# one key in a superstep would race), or kept per node.
_FIRST_FIELDS = {"identity", "facts", "turn", "working", "people", "recalls", "prefetch"}
_PER_NODE = ("latency_ms", "degraded")
# Everything the nodes after the fan-out write.
LATER_FIELDS = tuple(name for name in TurnState.__annotations__
                     if name not in TurnInput.__annotations__ and name not in _FIRST_FIELDS | set(_PER_NODE))


# ---- what the nodes write -------------------------------------------------------------
# Each node returns a typed update, declared beside it in its module: the fields it writes, typed
# as here (None where it clears one), on this base.


class NodeUpdate(TypedDict):
    """What every node's update may hold besides its own fields."""

    latency_ms: NotRequired[dict[str, float | None]]
    """Its time, which its ``timed`` wrapper adds; an entry set to None is dropped (:func:`merge_dicts`)."""


class ClearedTurn(NodeUpdate):
    """:func:`last_turns_results`: each of :data:`LATER_FIELDS` None, and the later nodes' entries
    of the per-node dicts."""

    l3_candidates: None
    verdicts: None
    aits: None
    split: None
    tools_offered: None
    tool_schemas: None
    tool_guidance: None
    prompt: None
    l3: None
    tokens: None
    reply: None
    model_calls: None
    tool_calls: None
    tool_results: None
    ungrounded: None
    archive_id: None
    degraded: dict[str, None]


def last_turns_results(state: TurnState) -> ClearedTurn:
    """The update that clears what the chat's last turn left in the thread's state after the
    fan-out (its split, reply, tool calls… and its later nodes' timings), so that a turn stepped
    in Studio never shows the last one's as its own."""
    # Built from LATER_FIELDS, which a type checker cannot read: tests/test_nodes_updates.py holds
    # ClearedTurn's keys to them.
    return cast(ClearedTurn, {
        **dict.fromkeys(LATER_FIELDS),
        **{field: {node: None for node in state.get(field) or {} if node not in FAN_OUT} for field in _PER_NODE}})


class InvalidTurn(ValueError):
    """The turn's input cannot be processed; nothing has been written."""


class TurnConflict(RuntimeError):
    """Two turns of one chat ran at once and this one lost the race for its turn number."""


def check_ids(**ids: object) -> None:
    """Refuse an id (name=value) whose text is not valid Unicode (lone surrogates): an id is a
    key, so it is never silently changed as a message's text is."""
    for name, value in ids.items():
        if isinstance(value, str) and clean_text(value) != value:
            raise InvalidTurn(f"{name} {NOT_UNICODE}")


def check_input(state: TurnInput) -> None:
    """Refuse an input that cannot be processed, before anything of its turn is written: once
    per turn, by the runner before it takes the chat (an id that is not valid Unicode cannot name
    a Redis key), or else by the graph (``load_working``) whatever else started the turn."""
    message, chat_id, user_id, now = state.get("message"), state.get("chat_id"), state.get("user_id"), state.get("now")
    # Ids are keys, never converted: a number 7 and the text "7" would be two people to forget.
    if not isinstance(chat_id, str) or not chat_id.strip():
        raise InvalidTurn(f"chat_id must be a non-empty string, not {json_type(chat_id)}")
    if user_id is not None and (not isinstance(user_id, str) or not user_id.strip()):
        raise InvalidTurn(f"user_id must be a non-empty string, not {json_type(user_id)}")
    if now is not None and (isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now)):
        raise InvalidTurn(f"now must be unix seconds (a finite number), not {json_type(now)}")
    check_ids(chat_id=chat_id, user_id=user_id)
    if state.get("user_name") is not None and (problem := name_problem(state["user_name"])):
        raise InvalidTurn(f"user_name {problem}")
    if not isinstance(message, str):
        raise InvalidTurn("the message is empty")
    if problem := message_problem(message):
        raise InvalidTurn(f"the message {problem}")


def json_type(value: object) -> str:
    """What a JSON value is, as an error message names it ("a number", "an object"…)."""
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    return {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object",
            type(None): "nothing"}.get(type(value), type(value).__name__)


def turn_user(state: Mapping[str, Any]) -> str:
    """Who says the turn's message: its ``user_id``, or the chat itself (a private chat) when the
    input names none. :func:`turn_input` names one; an input sent straight to the graph may not
    (the first superstep's nodes each ask this, and ``load_working`` writes it for the later ones)."""
    user_id = state.get("user_id")
    return state["chat_id"] if user_id is None else user_id


def shared_people(state: Mapping[str, Any]) -> dict[str, str] | None:
    """The chat's people (user id -> name) when several people talk in it, whose prompt then names
    each one's lines; None for a chat of one person, whose prompt reads as it always has."""
    people = state.get("people") or {}
    return people if len(people) > 1 else None


def spoken_message(state: Mapping[str, Any]) -> Message:
    """The turn's message as L2 keeps it: with who said it (forgetting a person finds it by their
    id) and their name when the turn has one."""
    message = Message(role="user", content=state["message"], timestamp=state["now"], user_id=state["user_id"])
    if state.get("user_name"):
        message["name"] = state["user_name"]
    return message


def turn_input(chat_id: str, message: str, user_id: str | None = None, now: float | None = None,
               user_name: str | None = None) -> TurnInput:
    """A graph input, as every entry point in this process builds it: its user and time decided,
    and its user's display name when the face knows it."""
    turn: TurnInput = {
        "chat_id": chat_id,
        "user_id": turn_user({"chat_id": chat_id, "user_id": user_id}),
        "message": message,
        "now": time.time() if now is None else float(now),
    }
    if user_name is not None:
        turn["user_name"] = user_name
    return turn
