"""`goat import`: bulk-load a JSON Lines transcript into L2 and L3, exactly as live turns are written.

Each line: {"chat_id": str, "user_id": str?, "role": "user"|"assistant", "content": str,
"timestamp": ISO-8601 or unix seconds}. Consecutive user→assistant messages of a chat form
one turn; a lone message is archived alone. Every exchange gets a stable digest (the same
exchange repeated at one time is told apart by its occurrence) and its turn number is recorded
before anything is written, so an interrupted or repeated import never writes a turn twice.
A line that cannot be imported stops the whole file before any write, unless it is skipped
on request (then the lines around it are imported as if it were not there).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from memory.facade import Memory
from memory.turns import ImportedTurn
from nodes.state import MAX_MESSAGE_CHARS, check_ids, clean_text, json_type

ROLES = ("user", "assistant")
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc).timestamp()
LATEST = datetime(2201, 1, 1, tzinfo=timezone.utc).timestamp()  # the first moment refused


@dataclass(frozen=True)
class Refusal:
    """A transcript line that cannot be imported, and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class TranscriptError(ValueError):
    """Transcript lines that cannot be imported; the message names the first (it starts with its
    line number) and counts the others."""

    def __init__(self, refused: list[Refusal]) -> None:
        self.refused = refused
        others = len(refused) - 1
        more = f" (and {others} more invalid {'line' if others == 1 else 'lines'})" if others else ""
        super().__init__(f"{refused[0]}{more}")


@dataclass(frozen=True)
class TranscriptMessage:
    chat_id: str
    user_id: str
    role: str
    content: str
    timestamp: float


def parse_timestamp(value: object) -> float:
    """Unix seconds of a time in the years 1970–2200 (UTC): anything else is a typo, milliseconds
    or a placeholder, and past 9999 in UTC no date can show it (checked after the offset)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("timestamp must be ISO-8601 or unix seconds")
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if parsed.tzinfo is None:  # a naive time is taken as UTC, the archive's clock
            parsed = parsed.replace(tzinfo=timezone.utc)
        seconds = parsed.timestamp()
    else:
        seconds = value
    if not EARLIEST <= seconds < LATEST:  # NaN too
        raise ValueError(f"timestamp {value!r:.100} is not a time in the years 1970–2200 (UTC)")
    return float(seconds)


def _id(record: dict, field: str) -> str:
    """An id as given: a key is never converted (42 and "42" would become one chat)."""
    value = record[field]
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, not {json_type(value)}")
    if not value.strip():
        raise ValueError(f"{field} is empty")
    return value


def parse_line(line: str) -> TranscriptMessage:
    """One transcript line as a message; ValueError (or TypeError) says why it cannot be one."""
    try:
        record = json.loads(line)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to read") from None
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    if record.get("chat_id") is None:
        raise ValueError("chat_id is missing")
    chat_id = _id(record, "chat_id")
    user_id = chat_id if record.get("user_id") is None else _id(record, "user_id")
    check_ids(chat_id=chat_id, user_id=user_id)  # an InvalidTurn is a ValueError
    role, content = record.get("role"), record.get("content")
    if role not in ROLES:
        raise ValueError(f"role must be 'user' or 'assistant', not {role!r:.100}")
    if not isinstance(content, str):
        raise ValueError("content must be a string")
    if not content.strip():  # refused as a live message is
        raise ValueError("content is empty")
    if len(content) > MAX_MESSAGE_CHARS:  # as a live message
        raise ValueError(f"content has {len(content)} characters; the limit is {MAX_MESSAGE_CHARS}")
    if "timestamp" not in record:
        raise ValueError("timestamp is missing")
    return TranscriptMessage(chat_id, user_id, role, clean_text(content), parse_timestamp(record["timestamp"]))


def pair_turns(messages: Iterable[TranscriptMessage]) -> dict[str, list[tuple[TranscriptMessage, ...]]]:
    """Per chat, in file order: (user, assistant) pairs, or a lone message as a 1-tuple."""
    chats: dict[str, list[tuple[TranscriptMessage, ...]]] = {}
    for message in messages:
        turns = chats.setdefault(message.chat_id, [])
        last = turns[-1] if turns else ()
        if message.role == "assistant" and len(last) == 1 and last[0].role == "user":
            turns[-1] = (last[0], message)
        else:
            turns.append((message,))
    return chats


def _digests(turns: list[tuple[TranscriptMessage, ...]]) -> list[str]:
    """Identify a chat's exchanges across imports of its file: by role, time and text, and an
    exchange repeated at one time by which occurrence it is. Counting occurrences, not lines,
    keeps every other exchange's identity when lines are inserted earlier or appended; a first
    occurrence keeps the digest earlier imports gave it (a repeat's prefix cannot begin a role)."""
    seen: Counter[str] = Counter()
    digests = []
    for turn in turns:
        parts = "\x1f".join(f"{m.role}|{m.timestamp!r}|{m.content}" for m in turn)
        occurrence = seen[parts]
        seen[parts] += 1
        identity = f"{occurrence}\x1e{parts}" if occurrence else parts
        digests.append(hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:24])
    return digests


@dataclass(frozen=True)
class Transcript:
    chats: dict[str, list[tuple[TranscriptMessage, ...]]]  # per chat, its turns in file order
    messages: int
    skipped: list[Refusal]  # the lines left out (only when asked to skip them)

    @property
    def turns(self) -> int:
        return sum(map(len, self.chats.values()))


def read_transcript(path: Path, skip_invalid: bool = False) -> Transcript:
    """Parse and pair the whole file (lines that cannot be imported raise TranscriptError before
    anything is written, or with ``skip_invalid`` are left out); a byte-order mark, as some
    editors write, is not part of the first line."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as lines:
        return transcript_of(lines, skip_invalid)


def transcript_of(lines: Iterable[str], skip_invalid: bool = False) -> Transcript:
    messages: list[TranscriptMessage] = []
    refused: list[Refusal] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            messages.append(parse_line(line))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            refused.append(Refusal(number, str(exc)))
    if refused and not skip_invalid:
        raise TranscriptError(refused)
    return Transcript(pair_turns(messages), len(messages), refused)


async def import_transcript(
    memory: Memory, path: Path, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    return await import_turns(memory, read_transcript(path), progress)


async def import_turns(
    memory: Memory, transcript: Transcript, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Load a parsed transcript; returns {"messages", "turns", "imported", "skipped"}."""
    stats = {"messages": transcript.messages, "turns": transcript.turns, "imported": 0, "skipped": 0}
    for chat_id, turns in transcript.chats.items():
        imported = len(await memory.import_turns(
            chat_id, [_imported(turn, digest) for turn, digest in zip(turns, _digests(turns))], progress))
        stats["imported"] += imported
        stats["skipped"] += len(turns) - imported
    return stats


def _imported(turn: tuple[TranscriptMessage, ...], digest: str) -> ImportedTurn:
    return ImportedTurn(
        digest=digest,
        user_id=turn[0].user_id,
        messages=tuple({"role": m.role, "content": m.content, "timestamp": m.timestamp, "user_id": turn[0].user_id}
                       for m in turn),
    )
