"""`goat import`: bulk-load a JSON Lines transcript into L2 and L3, exactly as live turns are written.

Each line: {"chat_id": str, "user_id": str?, "name": str?, "role": "user"|"assistant", "content": str,
"timestamp": ISO-8601 or unix seconds}. ``name`` is the speaker's display name; role "user" may be
any number of people, each by their ``user_id``. Consecutive user→assistant messages of a chat form
one turn; a lone message (one person's followed by another's) is archived alone. Every exchange gets a stable digest (the same
exchange repeated at one time is told apart by its occurrence) and its turn number is recorded
before anything is written, so an interrupted or repeated import never writes a turn twice.
A line that cannot be imported stops the whole file before any write, unless it is skipped
on request (then the lines around it are imported as if it were not there). Exports of other
apps (:mod:`graph.importing.exports`) are read as the same messages: a source of them, as lines are.

The file is read twice and never held whole: a first pass checks every message and counts the
turns, a second imports them a batch at a time. Between two batches an import asked to stop
(Ctrl-C) stops: what it wrote is whole, and importing the file again adds the rest.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from datetime import datetime, timezone
from pathlib import Path

from graph.importing.transcript_records import (ImportStopped, Omitted, Read, Refusal, TranscriptChanged,
                                                TranscriptError, TranscriptMessage)
from graph.json_limits import MAX_VALUE_BYTES, PIECE_BYTES, JsonBeyondLimits, check_json
from memory.facade import Memory
from memory.turns import ImportedTurn, Message, Standing, Writers, message_problem, name_problem
from nodes.state import check_ids, json_type

ROLES = ("user", "assistant")
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc).timestamp()
LATEST = datetime(2201, 1, 1, tzinfo=timezone.utc).timestamp()  # the first moment refused
# Exchanges written at a time. A stop asked for waits for the batch being written, so a batch is
# sized to take about BATCH_SECONDS whatever the encoder, the machine and the texts: the first is
# small (the progress bar moves at once), then it grows (at most doubling) while batches are
# quick and shrinks when they are slow, never below MIN_BATCH: fewer exchanges keep one of the
# encoder's two cores idle and pay Chroma's add its fixed cost (~25 ms) for too few entries
# (a batch of 8 turns imported at half the rate of one of 256). Its text is bounded too, for memory
# and for long turns (64 of 2 000 characters already fill both cores; an exchange longer than the
# bound is a batch alone).
FIRST_BATCH, MIN_BATCH, MAX_BATCH = 8, 128, 512
BATCH_SECONDS = 1.0
BATCH_CHARS = 128_000
# Exchanges written between two releases of L3's memory (ChatEntries.release_archive): what
# Chroma keeps of this many entries, ~50 MB, is as far as an import's memory grows.
RELEASE_EVERY = 5_000
_SECONDS = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # a JSON number, as text
_BOM = "\ufeff"  # some editors begin a file with it: it is not part of the first line


def parse_timestamp(value: object) -> float:
    """Unix seconds of a time in the years 1970–2200 (UTC): anything else is a typo, milliseconds
    or a placeholder, and past 9999 in UTC no date can show it (checked after the offset). A
    number written as a string ("1700000000", as some exports write it) is unix seconds too."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("timestamp must be ISO-8601 or unix seconds")
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            if not _SECONDS.fullmatch(text):
                raise ValueError(f"timestamp {value!r:.100} is neither ISO-8601 (e.g. 2026-03-01T14:30:00Z) nor "
                                 f"unix seconds ({exc})") from None
            seconds = float(text)
        else:
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
    except json.JSONDecodeError as exc:  # its own words ("Expecting value") do not say the line is not JSON
        raise ValueError(f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno}; a JSON Lines "
                         f"file holds one object per line)") from None
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
    if problem := message_problem(content):  # refused as a live message is
        raise ValueError(f"content {problem}")
    if "timestamp" not in record:
        raise ValueError("timestamp is missing")
    name = record.get("name")
    if name is not None and (problem := name_problem(name)):
        raise ValueError(f"name {problem}")
    return TranscriptMessage(chat_id, user_id, role, content, parse_timestamp(record["timestamp"]), name=name)


def _read(number: int, start: int, raw: bytes | str) -> Read:
    """Line ``number`` (``start``: its byte offset in the file) as a message, or why it cannot be
    one; None for a blank line. Bytes that are not UTF-8 are refused, not guessed at; JSON past
    the bounds (:mod:`graph.json_limits`) before it is parsed."""
    if isinstance(raw, bytes):
        try:
            check_json(raw, "the line")
            raw = raw.decode("utf-8")
        except JsonBeyondLimits as exc:
            return Refusal(f"line {number}", f"{exc.reason} at byte {start + exc.offset} of the file")
        except UnicodeDecodeError as exc:
            return Refusal(f"line {number}", f"not UTF-8: the byte 0x{raw[exc.start]:02x} at byte offset "
                                             f"{start + exc.start} of the file")
    if number == 1:
        raw = raw.removeprefix(_BOM)
    if not raw.strip():
        return None
    try:
        return parse_line(raw)
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        return Refusal(f"line {number}", str(exc))


def _read_lines(lines: Callable[[], Iterator[tuple[bytes | str, int]]]) -> Callable[[], Iterator[Read]]:
    """A source of the lines ``lines`` opens (each line, and its length in the file): each line's
    message, or what it reads as (:func:`_read`)."""

    def reads() -> Iterator[Read]:
        start = 0
        with closing(lines()) as source:
            for number, (raw, length) in enumerate(source, start=1):
                yield _read(number, start, raw)
                start += length

    return reads


class Pairing:
    """Messages paired into turns as they come: in a chat, a user message and the assistant message
    after it, or any other message alone. Holds one message per chat at most: a user's, until the
    next message of the chat shows whether it was answered."""

    def __init__(self) -> None:
        self._asking: dict[str, TranscriptMessage] = {}

    def add(self, message: TranscriptMessage) -> tuple[TranscriptMessage, ...] | None:
        """The turn ``message`` completes, if any (the chat's unanswered user message, alone)."""
        asking = self._asking.pop(message.chat_id, None)
        if message.role == "assistant":
            return (asking, message) if asking else (message,)
        self._asking[message.chat_id] = message
        return (asking,) if asking else None

    def rest(self) -> list[tuple[TranscriptMessage, ...]]:
        """At the end: the user messages no reply followed, each a turn alone."""
        return [(message,) for message in self._asking.values()]


def pair_turns(messages: Iterable[TranscriptMessage]) -> dict[str, list[tuple[TranscriptMessage, ...]]]:
    """Per chat, in file order: (user, assistant) pairs, or a lone message as a 1-tuple."""
    chats: dict[str, list[tuple[TranscriptMessage, ...]]] = {}
    pairing = Pairing()
    for message in messages:
        chats.setdefault(message.chat_id, [])
        if turn := pairing.add(message):
            chats[message.chat_id].append(turn)
    for turn in pairing.rest():
        chats[turn[0].chat_id].append(turn)
    return chats


class Occurrences:
    """Identify a chat's exchanges across imports of its file: by role, time and text, and an
    exchange repeated at one time by which occurrence it is. Counting occurrences, not lines,
    keeps every other exchange's identity when lines are inserted earlier or appended; a first
    occurrence keeps the digest earlier imports gave it (a repeat's prefix cannot begin a role).
    Holds 12 bytes per distinct exchange, not its text."""

    def __init__(self) -> None:
        self._seen: dict[str, Counter[bytes]] = {}

    def digest(self, turn: tuple[TranscriptMessage, ...]) -> str:
        parts = "\x1f".join(f"{m.role}|{m.timestamp!r}|{m.content}" for m in turn)
        first = _sha256(parts)
        seen = self._seen.setdefault(turn[0].chat_id, Counter())
        occurrence = seen[first[:12]]
        seen[first[:12]] += 1
        return (_sha256(f"{occurrence}\x1e{parts}") if occurrence else first)[:12].hex()


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Transcript:
    """A transcript whose every message was checked, by a pass that held none of it: how many
    messages and turns it has, the messages left out and those skipped. Importing it reads its
    source again."""

    reads: Callable[[], Iterator[Read]]  # its messages from the first, read anew at each call
    read: int  # reads checked: a line added to the file since waits for the next import
    messages: int
    turns: int
    skipped: list[Refusal]  # the messages that cannot be imported, left out (only when asked to)
    omitted: dict[str, int] = field(default_factory=dict)  # messages left out as no messages to remember, by kind
    unit: str = "line"  # what its refusals name
    # Per chat, who it writes as: the users of its user messages (of its messages, if none is a user's).
    people: dict[str, frozenset[str]] = field(default_factory=dict)

    def imported_turns(self) -> Iterator[tuple[str, ImportedTurn]]:
        """Each turn of the transcript (its chat, the turn), a chat's in file order, read anew."""
        left_out = set(map(str, self.skipped))
        pairing, occurrences = Pairing(), Occurrences()
        with closing(self.reads()) as reads:
            for read in islice(reads, self.read):
                if read is None or isinstance(read, Omitted):
                    continue
                if isinstance(read, Refusal):
                    if str(read) in left_out:
                        continue
                    raise TranscriptChanged(f"{read}: the file changed since its {self.unit}s were checked")
                if turn := pairing.add(read):
                    yield turn[0].chat_id, _imported(turn, occurrences.digest(turn))
        for turn in pairing.rest():
            yield turn[0].chat_id, _imported(turn, occurrences.digest(turn))


def read_transcript(path: Path, skip_invalid: bool = False, stopped: Callable[[], bool] | None = None) -> Transcript:
    """Check every line of the file (:func:`checked`), reading it line by line; a byte-order mark,
    as some editors write, is not part of the first line."""

    return checked(file_reads(path), skip_invalid, stopped)


def file_reads(path: Path) -> Callable[[], Iterator[Read]]:
    """A source of the file's lines, read line by line (:func:`_read`): of a line longer than a
    JSON value may be, no more than that is held (the rest is read past)."""

    def lines() -> Iterator[tuple[bytes, int]]:
        with path.open("rb") as file:
            while head := file.readline(MAX_VALUE_BYTES + 1):
                line, length = head, len(head)
                while length > MAX_VALUE_BYTES and not line.endswith(b"\n") and (line := file.readline(PIECE_BYTES)):
                    length += len(line)
                yield head, length

    return _read_lines(lines)


def transcript_of(lines: Iterable[str], skip_invalid: bool = False) -> Transcript:
    """Check lines held in memory (:func:`checked`)."""
    held = list(lines)

    def again() -> Iterator[tuple[str, int]]:
        for line in held:
            yield line, len(line)

    return checked(_read_lines(again), skip_invalid)


def checked(reads: Callable[[], Iterator[Read]], skip_invalid: bool = False,
            stopped: Callable[[], bool] | None = None, unit: str = "line") -> Transcript:
    """The first pass: every message read and paired, none kept.

    Args:
        reads: opens the transcript's source: what each of its messages (or lines) reads as, from the first.
        skip_invalid: leave out the messages that cannot be imported, instead of refusing the file.
        stopped: asked before each message; true, the pass stops with ImportStopped.
        unit: what a source's refusals name ("line", "message"), to count them.
    Returns:
        The checked transcript, to import with :func:`import_turns`.
    Raises:
        TranscriptError: messages cannot be imported (without ``skip_invalid``): it names the first.
    """
    count = messages = turns = others = 0
    refused: list[Refusal] = []
    omitted: Counter[str] = Counter()
    asking: dict[str, set[str]] = {}  # per chat, the users of its user messages
    quoted: dict[str, set[str]] = {}  # and of its other messages
    pairing = Pairing()
    with closing(reads()) as source:
        for count, read in enumerate(source, start=1):
            if stopped and stopped():
                raise ImportStopped(0, 0)
            if isinstance(read, Refusal):
                if skip_invalid or not refused:
                    refused.append(read)
                else:  # only the first is named
                    others += 1
            elif isinstance(read, Omitted):
                omitted[read.kind] += 1
            elif read is not None:
                messages += 1
                turns += pairing.add(read) is not None
                (asking if read.role == "user" else quoted).setdefault(read.chat_id, set()).add(read.user_id)
    if refused and not skip_invalid:
        raise TranscriptError(refused[0], others, unit)
    people = {chat_id: frozenset(asking.get(chat_id) or quoted[chat_id]) for chat_id in {*asking, *quoted}}
    return Transcript(reads, count, messages, turns + len(pairing.rest()), refused, dict(omitted), unit, people)


async def import_transcript(
    memory: Memory, path: Path, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    return await import_turns(memory, read_transcript(path), progress)


async def import_turns(memory: Memory, transcript: Transcript, progress: Callable[[int], None] | None = None,
                       stopped: Callable[[], bool] | None = None,
                       standing: Standing = Standing.IMPORTED) -> dict[str, int]:
    """The second pass: load a checked transcript, a batch at a time.

    Args:
        progress: called with how many more turns are done (written, or there already).
        stopped: asked before each batch; true, the import stops with ImportStopped, what it
            wrote whole.
        standing: by what right it writes into its chats: an import (a shared page's: a claim),
            or VOUCHED, into a chat the operator chose (`--into`).
    Returns:
        {"messages", "turns", "imported", "skipped"}: skipped are the turns there already.
    Raises:
        ChatHeldByOthers: a chat of it holds another person's turns (unless VOUCHED), before its
            batch is written (``Memory.entries.check_import`` asks before anything is).
        TranscriptChanged: a line that was checked no longer reads (the turns before it are written).
    """
    stats = {"messages": transcript.messages, "turns": transcript.turns, "imported": 0, "skipped": 0}
    batch: dict[str, list[ImportedTurn]] = {}
    size, held, chars, unreleased = FIRST_BATCH, 0, 0, 0

    async def write() -> None:
        nonlocal size, held, chars, unreleased
        if stopped and stopped():
            raise ImportStopped(stats["imported"], stats["skipped"])
        started, written = time.perf_counter(), 0
        for chat_id, turns in batch.items():
            writers = Writers(transcript.people[chat_id], standing)
            imported = len(await memory.entries.import_turns(chat_id, turns, progress, writers=writers))
            written += imported
            stats["skipped"] += len(turns) - imported
        stats["imported"] += written
        if written:  # turns already there cost next to nothing: they say nothing of a batch's time
            per_turn = max(time.perf_counter() - started, 1e-6) / written
            size = max(MIN_BATCH, min(2 * size, MAX_BATCH, int(BATCH_SECONDS / per_turn)))
        unreleased += written
        if unreleased >= RELEASE_EVERY:
            unreleased = 0
            await memory.entries.release_archive()
        batch.clear()
        held = chars = 0

    try:
        for chat_id, turn in transcript.imported_turns():
            batch.setdefault(chat_id, []).append(turn)
            held += 1
            chars += sum(len(message["content"]) for message in turn.messages)
            if held >= size or chars >= BATCH_CHARS:
                await write()
    except TranscriptChanged:  # the turns read before the line are written, whole
        await write()
        raise
    await write()
    return stats


def _imported(turn: tuple[TranscriptMessage, ...], digest: str) -> ImportedTurn:
    # A reply is kept under the user whose turn it is (forgetting them takes it), as a live turn's.
    return ImportedTurn(digest=digest, ref=turn[0].ref, user_id=turn[0].user_id,
                        messages=tuple(_message(m, turn[0].user_id) for m in turn))


def _message(message: TranscriptMessage, user_id: str) -> Message:
    kept = Message(role=message.role, content=message.content, timestamp=message.timestamp, user_id=user_id)
    if message.name and message.role == "user":
        kept["name"] = message.name
    return kept
