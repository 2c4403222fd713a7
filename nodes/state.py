"""The typed state of one turn.

Everything here is plain JSON-able data, so a checkpointer can persist it and
Studio can show it. Keys written by the three fan-out nodes (which run in the
same superstep) are disjoint, except the per-node bookkeeping dicts, which merge.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, NotRequired, TypedDict

MAX_MESSAGE_CHARS = 200_000


def merge_dicts(left: dict | None, right: dict | None) -> dict:
    """Reducer for per-node dicts: each node overwrites only its own key, every turn."""
    return {**(left or {}), **(right or {})}


class Message(TypedDict):
    role: str  # "user" | "assistant" | "system"
    content: str
    timestamp: NotRequired[float]


class Recall(TypedDict):
    """One L3 entry as retrieved (and, after gap_filter, as injected)."""

    id: str
    content: str
    distance: float
    timestamp: float
    mechanism: str  # "thematic" | "temporal" | "specific_key"
    metadata: dict[str, Any]
    blended_score: NotRequired[float]


class ToolCall(TypedDict):
    """A tool call the model asked for (native ``tool_calls`` or DSML markup in its text)."""

    id: str
    name: str
    args: dict[str, Any]
    error: NotRequired[str]  # the request itself was unusable (arguments that are not JSON)


class ToolResult(TypedDict):
    """What a tool call returned, as the model reads it."""

    id: str
    name: str
    args: dict[str, Any]
    output: str  # the tool's text, or a JSON ``{"error": …}``; capped in length
    ok: bool
    chars: int  # length of the whole output, before any cap


class TurnInput(TypedDict):
    chat_id: str
    message: str
    user_id: NotRequired[str]  # defaults to chat_id (a private chat)
    now: NotRequired[float]  # unix seconds the turn happens at; defaults to the wall clock


class TurnState(TurnInput, total=False):
    # load_identity
    identity: str  # the always-present head of the prompt: L0 persona + time + L1 facts
    facts: dict[str, str]  # L1
    # load_working
    turn: int  # this turn's number in the chat, 1-based
    working: list[Message]  # L2: the pinned first message + the most recent ones
    # prefetch
    recalls: dict[str, list[Recall]]  # per mechanism, closest first, unfiltered
    prefetch: dict[str, Any]  # outcome: fired / succeeded / failed / timed_out / found / cache
    # gap_filter
    l3_candidates: list[Recall]  # kept, merged, scored, best first
    verdicts: list[dict[str, Any]]  # per candidate of each list: {list, id, distance, kept, why}
    # budget
    aits: dict[str, float]  # confidence, complexity, budget
    split: dict[str, int]  # l0_l1 (identity, facts, tool guidance), l2, l3 token shares
    tools_offered: list[str]  # names of the tools the model may call this turn
    tool_schemas: list[dict[str, Any]]  # their OpenAI schemas, bound to the model by the llm node
    tool_guidance: str  # their lines in the system prompt
    # assemble
    prompt: list[Message]  # system message + L2 messages + the user message
    l3: list[Recall]  # what was actually injected
    tokens: dict[str, int]  # l0_l1, l2, l3 tokens actually used
    # llm (call 1), synthesize (call 2), correct (call 3): the reply the user reads
    reply: str
    model_calls: int
    # llm
    tool_calls: list[ToolCall]
    # tools
    tool_results: list[ToolResult]
    # synthesize: standalone numbers of its reply found in no tool result
    ungrounded: list[str]
    # archive
    archive_id: str
    # bookkeeping, merged across nodes
    latency_ms: Annotated[dict[str, float], merge_dicts]
    degraded: Annotated[dict[str, str], merge_dicts]  # node -> what failed ("" when fine)


class InvalidTurn(ValueError):
    """The turn's input cannot be processed; nothing has been written."""


class TurnConflict(RuntimeError):
    """Two turns of one chat ran at once and this one lost the race for its turn number."""


def clean_text(text: str) -> str:
    """Replace lone surrogates (not encodable as UTF-8, e.g. from broken clients) with U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def check_ids(**ids: object) -> None:
    """Refuse an id (name=value) whose text is not valid Unicode (lone surrogates): an id is a
    key, so it is never silently changed as a message's text is."""
    for name, value in ids.items():
        if isinstance(value, str) and clean_text(value) != value:
            raise InvalidTurn(f"{name} holds text that is not valid Unicode (lone surrogates)")


def check_input(state: TurnInput) -> None:
    """Refuse an input that cannot be processed, before anything of its turn is written: the
    graph's one check (in ``load_working``), whatever the entry point (the runner also makes it
    before it takes the chat: an id that is not valid Unicode cannot name a Redis key)."""
    message, chat_id, user_id, now = state.get("message"), state.get("chat_id"), state.get("user_id"), state.get("now")
    # Ids are keys, never converted: a number 7 and the text "7" would be two people to forget.
    if not isinstance(chat_id, str) or not chat_id.strip():
        raise InvalidTurn(f"chat_id must be a non-empty string, not {json_type(chat_id)}")
    if user_id is not None and (not isinstance(user_id, str) or not user_id.strip()):
        raise InvalidTurn(f"user_id must be a non-empty string, not {json_type(user_id)}")
    if now is not None and (isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now)):
        raise InvalidTurn(f"now must be unix seconds (a finite number), not {json_type(now)}")
    check_ids(chat_id=chat_id, user_id=user_id)
    if not isinstance(message, str) or not message.strip():
        raise InvalidTurn("the message is empty")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidTurn(f"the message has {len(message)} characters; the limit is {MAX_MESSAGE_CHARS}")
    if clean_text(message) != message:
        raise InvalidTurn("the message holds text that is not valid Unicode (lone surrogates)")


def json_type(value: object) -> str:
    """What a JSON value is, as an error message names it ("a number", "an object"…)."""
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    return {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object",
            type(None): "nothing"}.get(type(value), type(value).__name__)


def turn_input(chat_id: str, message: str, user_id: str | None = None, now: float | None = None) -> TurnInput:
    """A graph input, as every entry point builds it (the graph checks it)."""
    turn: TurnInput = {
        "chat_id": chat_id,
        "user_id": chat_id if user_id is None else user_id,
        "message": clean_text(message) if isinstance(message, str) else message,
        "now": time.time() if now is None else float(now),
    }
    return turn
