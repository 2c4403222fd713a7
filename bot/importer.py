"""`goat import`: bulk-load a JSON Lines transcript into L2 and L3, exactly as live turns are written.

Each line: {"chat_id": str, "user_id": str?, "role": "user"|"assistant", "content": str,
"timestamp": ISO-8601 or unix seconds}. Consecutive user→assistant messages of a chat form
one turn; a lone message is archived alone. Every exchange gets a stable digest and its turn
number is recorded before anything is written, so an interrupted or repeated import never
writes a turn twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from memory.facade import Memory
from memory.turns import ImportedTurn
from nodes.state import MAX_MESSAGE_CHARS, check_ids, clean_text

ROLES = ("user", "assistant")


class TranscriptError(ValueError):
    """A transcript line is malformed; the message starts with its line number."""


@dataclass(frozen=True)
class TranscriptMessage:
    chat_id: str
    user_id: str
    role: str
    content: str
    timestamp: float


def parse_timestamp(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("timestamp must be ISO-8601 or unix seconds")
    if isinstance(value, (int, float)):
        try:  # a time the archive can show: finite, within years 1-9999
            datetime.fromtimestamp(value, timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise ValueError(f"timestamp {value!r} is not a time (unix seconds of years 1-9999)") from None
        return float(value)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if parsed.tzinfo is None:  # a naive time is taken as UTC, the archive's clock
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    raise ValueError("timestamp must be ISO-8601 or unix seconds")


def parse_transcript(lines: Iterable[str]) -> Iterator[TranscriptMessage]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            try:
                record = json.loads(line)
            except RecursionError:
                raise ValueError("the JSON is nested too deeply to read") from None
            if not isinstance(record, dict):
                raise ValueError("expected a JSON object")
            chat_id, role, content = record.get("chat_id"), record.get("role"), record.get("content")
            if not isinstance(chat_id, (str, int)) or not str(chat_id).strip():
                raise ValueError("chat_id is missing")
            if role not in ROLES:
                raise ValueError(f"role must be 'user' or 'assistant', not {role!r:.100}")
            if not isinstance(content, str):
                raise ValueError("content must be a string")
            if len(content) > MAX_MESSAGE_CHARS:  # as a live message
                raise ValueError(f"content has {len(content)} characters; the limit is {MAX_MESSAGE_CHARS}")
            if "timestamp" not in record:
                raise ValueError("timestamp is missing")
            user_id = record.get("user_id") or chat_id
            check_ids(chat_id=chat_id, user_id=user_id)  # an InvalidTurn is a ValueError
            yield TranscriptMessage(
                str(chat_id), str(user_id), role, clean_text(content), parse_timestamp(record["timestamp"])
            )
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise TranscriptError(f"line {number}: {exc}") from None


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


def _digest(turn: tuple[TranscriptMessage, ...]) -> str:
    """Identifies an exchange across imports of the same file."""
    parts = "\x1f".join(f"{m.role}|{m.timestamp!r}|{m.content}" for m in turn)
    return hashlib.sha256(parts.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass(frozen=True)
class Transcript:
    chats: dict[str, list[tuple[TranscriptMessage, ...]]]  # per chat, its turns in file order
    messages: int

    @property
    def turns(self) -> int:
        return sum(map(len, self.chats.values()))


def read_transcript(path: Path) -> Transcript:
    """Parse and pair the whole file (a malformed line raises before anything is written)."""
    with path.open(encoding="utf-8", errors="surrogateescape") as lines:
        return transcript_of(lines)


def transcript_of(lines: Iterable[str]) -> Transcript:
    messages = list(parse_transcript(lines))
    return Transcript(pair_turns(messages), len(messages))


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
        imported = len(await memory.import_turns(chat_id, [_imported(turn) for turn in turns], progress))
        stats["imported"] += imported
        stats["skipped"] += len(turns) - imported
    return stats


def _imported(turn: tuple[TranscriptMessage, ...]) -> ImportedTurn:
    return ImportedTurn(
        digest=_digest(turn),
        user_id=turn[0].user_id,
        messages=tuple({"role": m.role, "content": m.content, "timestamp": m.timestamp, "user_id": turn[0].user_id}
                       for m in turn),
    )
