"""A turn as L3 keeps it: its verbatim text (its id: :mod:`memory.turn_ids`; what every way in
refuses of a message: :mod:`memory.message_checks`, both handed on here); the
records a recall of L3 hands out, as a turn's state keeps them: an entry found (:class:`Hit`), how
the recall went (:class:`RecallOutcome`), why a candidate was kept or not (:class:`Verdict`); and
those of the prompt: a message of the conversation (:class:`Message`), AITS's reading of the
user's (:class:`Assessment`), the tokens per layer (:class:`LayerTokens`).
They are here, in a door that imports nothing heavy, because the turn state's schema needs them
wherever the state is imported (the ``goat`` command's start included)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from datetime import datetime, timezone
from typing import Any, NamedTuple

from pydantic import ConfigDict, with_config
# typing_extensions' TypedDict: pydantic (and so LangGraph's server, for Studio's state view) reads
# typing's only from Python 3.12.
from typing_extensions import NotRequired, TypedDict

# Handed on: the archive's ids and the checks of a message are read through this door.
from memory.message_checks import (MAX_MESSAGE_CHARS, MAX_NAME_CHARS, NOT_UNICODE, clean_text, is_blank,
                                   message_problem, name_problem, usable_name)
from memory.turn_ids import archive_id, is_archive_id

ARCHIVE_TAG = "l2_full_archive"


# Each field's docstring is its description in the turn state's JSON schema (Studio's state view).
@with_config(ConfigDict(use_attribute_docstrings=True))
class Hit(TypedDict):
    """One L3 entry as retrieved (and, after gap_filter, as injected)."""

    id: str
    content: str
    distance: float
    """Distance to the message on the query's scale: squared L2 between unit vectors, 2 − 2·cosine,
    in the space the two were compared in (0 for a key the message names, or an entry read by id)."""
    timestamp: float
    metadata: dict[str, Any]
    """As archived (chat_id, user_id, turn, time, tags, access_count…)."""
    mechanism: NotRequired[str]
    """The list that found it: "thematic" (by meaning), "lexical" (by words), "temporal",
    "specific_key", "every_word" or "search_memory" (an explicit search); set by recall (an entry
    read from the store has none)."""
    mechanisms: NotRequired[list[str]]
    """Every list that found it, most specific first (once the lists are merged)."""
    blended_score: NotRequired[float]
    """Its score once the lists are merged: similarity, recency and popularity, weighted."""
    beside: NotRequired[str]
    """For a turn injected beside a chosen entry (mechanism "beside"): that entry's id."""
    excerpt: NotRequired[bool]
    """True when ``content`` is the turn's sentences that bear on the message, not the whole turn."""


@with_config(ConfigDict(use_attribute_docstrings=True))
class Verdict(TypedDict):
    """Why a candidate of one ranked list was kept or dropped (an entry found by several lists has
    a verdict in each); without the entry's text."""

    list: str
    """The ranked list (its mechanism's name)."""
    id: str
    distance: float
    """On the query's scale, to four decimals."""
    kept: bool
    """Whether the selection chose it (it may still not fit the L3 share of the prompt)."""
    why: str


@with_config(ConfigDict(use_attribute_docstrings=True))
class CacheLookup(TypedDict):
    """A question looked up in the L2.5 cache."""

    hit: bool
    """Whether its earlier search was found there (then it is neither embedded nor searched)."""
    key: str
    """The question's digest, its key in the cache."""


@with_config(ConfigDict(use_attribute_docstrings=True))
class MechanismNote(TypedDict):
    """What a mechanism read of the message (a period, keys), rendered by the mechanism itself."""

    reported: dict[str, Any]
    """Its fields as `goat inspect --json`, /why and ``diagnose_last_turn`` show them."""
    logged: dict[str, Any]
    """Its fields as the turn log keeps them (never the message's own words)."""
    said: list[str]
    """Its phrases in a report's line."""


@with_config(ConfigDict(use_attribute_docstrings=True))
class RecallOutcome(TypedDict):
    """How a recall went, mechanism by mechanism (a turn's ``prefetch``; the turn log, ``/why`` and
    ``goat inspect`` report it). A mechanism fires when it scores above zero for the message."""

    fired: list[str]
    """The mechanisms that scored above zero (as far as they got before the deadline: one that
    failed or timed out counts)."""
    succeeded: list[str]
    failed: dict[str, str]
    """Per mechanism, its error ("Type: message")."""
    timed_out: list[str]
    found: dict[str, int]
    """Per mechanism that succeeded, how many entries it found (before the gap filter)."""
    cache: CacheLookup | None
    """The L2.5 cache's answer; None: not looked up."""
    notes: dict[str, MechanismNote]
    """Per mechanism, what it read of the message (the temporal mechanism's period, the specific-key
    mechanism's keys), as it renders it for the reports (:func:`notes_reported`, :func:`notes_said`)."""
    deadline_ms: float
    background: float | None
    """The query's mean distance to the chats' entries, on its scale; None: too few entries yet."""
    ms: dict[str, float]
    """Per mechanism that fired and finished, when, after the recall's start."""
    meaning_first: str | None
    """Why the message is judged by meaning first (a statement about its speaker, or asked in
    another language than English); None: it is not."""
    latest_first: NotRequired[bool]
    """Whether the message asks for the newest of what was told ("what am I currently…"): the
    entries that stand out are then injected newest first."""
    backgrounds: NotRequired[dict[str, float | None]]
    """Per space, the background (None: no passage there); with the query's scale only."""
    ceiling: NotRequired[float]
    """The gap test's ceiling on the query's scale; with its scale only."""
    background_passages: NotRequired[int | None]
    """How many passages the background is the mean of (None: enough); with its scale only."""
    waited_ms: NotRequired[float]
    """How long the recall took, from its start (written last, as it returns)."""


def notes_reported(outcome: Mapping[str, Any], *, for_the_log: bool = False) -> dict[str, Any]:
    """What the mechanisms read of the message, each by its own note (a recall's ``notes``), as
    every report carries it: their fields, in the registry's order (``for_the_log``: as the turn
    log keeps them)."""
    notes: Mapping[str, MechanismNote] = outcome.get("notes") or {}
    return {key: value for note in notes.values()
            for key, value in (note["logged"] if for_the_log else note["reported"]).items()}


def notes_said(outcome: Mapping[str, Any]) -> list[str]:
    """What the mechanisms read of the message, as a report's line says it, phrase by phrase."""
    notes: Mapping[str, MechanismNote] = outcome.get("notes") or {}
    return [phrase for note in notes.values() for phrase in note["said"]]


@with_config(ConfigDict(use_attribute_docstrings=True))
class Message(TypedDict):
    """One message of the conversation: in L2, or in a prompt."""

    role: str
    """"user", "assistant" or "system"."""
    content: str
    timestamp: NotRequired[float]
    """When it was said (unix seconds)."""
    user_id: NotRequired[str]
    """Who said it, as L2 keeps it: forgetting a person finds their messages by it."""
    name: NotRequired[str]
    """The speaker's display name, when one was given (a Telegram sender, a transcript's ``name``):
    a chat of several people shows it beside their messages."""
    tokens: NotRequired[int]
    """The tokens of ``content``, counted when L2 saved it."""
    heard: NotRequired[bool]
    """True for a line the bot heard in a group that listens, not addressed to it (a group's
    retention erases these)."""


class Working(NamedTuple):
    """A chat's L2 as a turn reads it."""

    completed: int  # the turns saved
    messages: list[Message]  # the pinned first message and the most recent ones
    people: dict[str, str]  # who spoke in the chat: user id -> their latest name ("" if never given)


@with_config(ConfigDict(use_attribute_docstrings=True))
class Assessment(TypedDict):
    """AITS's reading of a message: how much context its turn gets."""

    confidence: float
    """In [0, 1]: how plainly the message asks for an explanation (its cue words)."""
    complexity: float
    """In [0, 1]: its length and its connectors (a question of several parts)."""
    budget: int
    """The tokens of the whole prompt's context this turn."""


@with_config(ConfigDict(use_attribute_docstrings=True))
class LayerTokens(TypedDict):
    """Tokens per layer of the prompt: the budget's share of each, or what each used."""

    l0_l1: int
    """The always-present head: identity, time, facts and tool guidance, as measured."""
    l2: int
    """The conversation (L2)."""
    l3: int
    """The recalled memories (L3)."""


def iso_time(moment: float) -> str:
    """A unix time as people and agents read it: ISO-8601 in UTC, to the second."""
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds")


USER_PREFIX, ASSISTANT_PREFIX = "user: ", "assistant: "


def archive_content(user_text: str | None, assistant_text: str | None) -> str:
    """A turn exactly as archived: verbatim, nothing summarised."""
    lines = []
    if user_text is not None:
        lines.append(f"{USER_PREFIX}{user_text}")
    if assistant_text is not None:
        lines.append(f"{ASSISTANT_PREFIX}{assistant_text}")
    return "\n".join(lines)


def turn_parts(content: str) -> tuple[str | None, str | None]:
    """An archived turn's user message, its label kept, and its reply, its label dropped (split at
    the first reply label); None for a part the turn has not (a lone message, a note)."""
    user, labelled, reply = content.partition(f"\n{ASSISTANT_PREFIX}")
    if labelled:
        return user, reply
    return (None, content.removeprefix(ASSISTANT_PREFIX)) if content.startswith(ASSISTANT_PREFIX) else (content, None)


def archived_texts(content: str) -> list[str]:
    """The texts an archived turn's content holds, as a turn's state keeps them too: the content,
    the user's message and the reply (:func:`turn_parts`)."""
    user, reply = turn_parts(content)
    parts = [user.removeprefix(USER_PREFIX), reply] if user is not None and reply is not None else [
        content.removeprefix(USER_PREFIX).removeprefix(ASSISTANT_PREFIX)]
    return [content, *parts]


def with_user_text(content: str, user_chars: int, text: str) -> str:
    """An archived turn's content with its user message, ``user_chars`` characters long, replaced
    by ``text`` and its reply kept. The length, not a search for the reply's label, finds where
    the message ends: the user may have written that label themselves."""
    reply = content[len(USER_PREFIX) + user_chars:]
    if not content.startswith(USER_PREFIX) or (reply and not reply.startswith(f"\n{ASSISTANT_PREFIX}")):
        raise ValueError(f"the archived turn holds no user message of {user_chars} characters")
    return archive_content(text, None) + reply


@dataclass(frozen=True)
class Exchange:
    """One turn to archive in L3: a user message and the reply (either may be missing on import)."""

    chat_id: str
    user_id: str
    turn: int
    timestamp: float
    user_text: str | None
    assistant_text: str | None
    name: str | None = None  # the user message's speaker, by display name
    heard: bool = False  # a line heard in a group that listens (no reply): a group's retention erases it

    @property
    def id(self) -> str:
        return archive_id(self.chat_id, self.turn)

    @property
    def content(self) -> str:
        return archive_content(self.user_text, self.assistant_text)

    def metadata(self, now: float) -> dict[str, Any]:
        return {
            **({"name": self.name} if self.name else {}),
            **({"heard": True} if self.heard else {}),
            "chat_id": self.chat_id,
            "user_id": self.user_id,
            "turn": self.turn,
            "timestamp": self.timestamp,
            "time": datetime.fromtimestamp(self.timestamp, timezone.utc).isoformat(),
            "tags": ARCHIVE_TAG,
            "access_count": 0,
            "last_accessed": now,
        }


@dataclass(frozen=True)
class Archived:
    """What archiving turns did: they wait in the outbox until the archiver writes them to L3."""

    waiting: int  # entries in the outbox
    l3_problem: str  # what failed in L3's latest call ("" when it answered)


@dataclass(frozen=True)
class ImportedTurn:
    """An exchange of an imported transcript: a user message and its reply, or a lone message."""

    digest: str  # identifies the exchange across imports of the same file
    user_id: str
    messages: tuple[Message, ...]  # as L2 keeps them
    # Its first message's id in the export, when the export gives one: an exchange imported again
    # under another digest (a message edited since) rewrites the turn this ref was imported as.
    ref: str | None = None

    def __post_init__(self) -> None:
        for message in self.messages:
            if problem := message_problem(message["content"]):
                raise ValueError(f"an imported {message['role']} message {problem}")
            if "name" in message and (problem := name_problem(message["name"])):
                raise ValueError(f"an imported {message['role']} message's name {problem}")

    def exchange(self, chat_id: str, turn: int) -> Exchange:
        by_role = {m["role"]: m for m in self.messages}
        user, assistant = by_role.get("user"), by_role.get("assistant")
        return Exchange(chat_id=chat_id, user_id=self.user_id, turn=turn, timestamp=self.messages[0]["timestamp"],
                        user_text=user and user["content"], assistant_text=assistant and assistant["content"],
                        name=user and user.get("name"))


class Standing(Enum):
    """By what right people write into a chat (the rule: ``memory/stores/chat_owners.py``)."""

    VOUCHED = "vouched"  # a door vouches for the chat: a live turn, MCP's chat and user, `goat import --into`
    IMPORTED = "imported"  # an import: only into a chat that holds no one else's turns
    CLAIMED = "claimed"  # a shared page's import: as IMPORTED, and theirs only until someone vouched for writes there


@dataclass(frozen=True)
class Writers:
    """Who writes into a chat, and by what right."""

    people: frozenset[str]
    standing: Standing
