"""Messy transcripts for `goat import`: the same exchange twice at one time (an export with one date
per session), times outside 1970–2200, empty messages, ids that are not strings, a byte-order mark.

A repeated exchange is a turn of its own and a re-import adds nothing; a line that cannot be
archived stops the import, naming it, before any write, unless `--skip-invalid` asks for the rest.
Real Redis, Chroma and MiniLM; `goat import` itself where what it prints is the point.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_cli import goat, goat_env, ok

from graph.importing.importer import (MAX_BATCH, TranscriptChanged, TranscriptError, import_transcript,
                                      import_turns, read_transcript, transcript_of)
from graph.settings import Settings
from memory.encoders.embeddings import LocalEmbeddings
from memory.facade import Memory, measurement_hooks
from memory.turns import archive_id

pytestmark = pytest.mark.slow

CHAT, USER = "messy-chat", "messy-user"
SESSION = "2026-03-02T00:00:00Z"  # the one date the export gives every message of a session
THANKED = "user: Thanks!\nassistant: You're welcome"


def line(role: str = "user", content: str = "Thanks!", timestamp: Any = SESSION, **fields: Any) -> str:
    record = {"chat_id": CHAT, "user_id": USER, "role": role, "content": content, "timestamp": timestamp, **fields}
    return json.dumps(record) + "\n"


def exchange(user: str, assistant: str, timestamp: Any = SESSION) -> str:
    return line("user", user, timestamp) + line("assistant", assistant, timestamp)


THANKS = exchange("Thanks!", "You're welcome")
HELLO = exchange("Can you help me plan a trip to Lisbon?", "Of course. When are you going?", "2026-03-01T10:00:00Z")
TRAMS = exchange("Is tram 28 worth it?", "Yes, early in the morning before the queues.", "2026-03-01T11:00:00Z")


@pytest.fixture
async def memory(settings: Settings, embeddings: LocalEmbeddings) -> AsyncIterator[Memory]:
    memory = Memory(settings, embeddings=embeddings)
    await memory.connect()
    yield memory
    await memory.aclose()


async def stored(memory: Memory, chat_id: str = CHAT) -> tuple[list[str], dict[str, str]]:
    """The chat's L2 messages and its L3 entries by id, once the outbox is written."""
    await measurement_hooks(memory).settle()
    _, working, _ = await memory.working(chat_id, 100_000)
    store = await memory._backends.l3.episodic()
    entries = await memory._backends.l3.run_blocking(store.entries, chat_id)
    return [m["content"] for m in working], {e["id"]: e["content"] for e in entries}


def transcript(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "transcript.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


# ---- repeated exchanges ---------------------------------------------------------------------------------


async def test_the_same_exchange_twice_at_one_time_is_two_turns_and_a_reimport_adds_neither(memory, tmp_path):
    path = transcript(tmp_path, THANKS + THANKS)

    assert await import_transcript(memory, path) == {"messages": 4, "turns": 2, "imported": 2, "skipped": 0}
    assert await import_transcript(memory, path) == {"messages": 4, "turns": 2, "imported": 0, "skipped": 2}

    working, archived = await stored(memory)
    assert working == ["Thanks!", "You're welcome"] * 2
    assert archived == {archive_id(CHAT, 1): THANKED, archive_id(CHAT, 2): THANKED}


async def test_repeats_that_fall_in_different_write_batches_are_each_stored(memory, tmp_path):
    others = "".join(exchange(f"Question number {n}?", f"Answer number {n}.") for n in range(MAX_BATCH))
    path = transcript(tmp_path, THANKS + others + THANKS)  # the second THANKS is past the first batch

    stats = await import_transcript(memory, path)

    turns = MAX_BATCH + 2
    assert stats == {"messages": 2 * turns, "turns": turns, "imported": turns, "skipped": 0}
    working, archived = await stored(memory)
    assert len(working) == 2 * turns and working[-2:] == ["Thanks!", "You're welcome"]
    assert len(archived) == turns and archived[archive_id(CHAT, turns)] == THANKED


async def test_a_grown_transcript_imports_only_its_new_exchanges(memory, tmp_path):
    """An exchange is told apart from an identical one by its occurrence, not its line: an exchange
    inserted earlier in the file does not make the ones after it new."""
    assert (await import_transcript(memory, transcript(tmp_path, HELLO + THANKS)))["imported"] == 2

    grown = transcript(tmp_path, HELLO + TRAMS + THANKS + THANKS)  # one inserted, one appended

    assert await import_transcript(memory, grown) == {"messages": 8, "turns": 4, "imported": 2, "skipped": 2}
    working, archived = await stored(memory)
    assert working[-4:] == ["Is tram 28 worth it?", "Yes, early in the morning before the queues.",
                            "Thanks!", "You're welcome"]
    assert sorted(archived) == [archive_id(CHAT, n) for n in (1, 2, 3, 4)]
    assert archived[archive_id(CHAT, 2)] == archived[archive_id(CHAT, 4)] == THANKED


def test_goat_import_prints_what_it_stored_when_an_exchange_repeats(tmp_path):
    (tmp_path / "thanks.jsonl").write_text(HELLO + THANKS + THANKS, encoding="utf-8")
    env = goat_env(tmp_path / "data")

    first = ok(goat("import", "thanks.jsonl", env=env, cwd=tmp_path)).stdout
    again = ok(goat("import", "thanks.jsonl", env=env, cwd=tmp_path)).stdout

    assert first.startswith("6 messages, 3 turns: 3 imported, 0 already there")
    assert again.startswith("6 messages, 3 turns: 0 imported, 3 already there")


# ---- lines refused before any write ---------------------------------------------------------------------


OUTSIDE = "is not a time in the years 1970–2200 (UTC)"
REFUSED = [  # (the third line, after an exchange of the chat, what the error names)
    pytest.param(line(timestamp="9999-12-31T23:59:59-14:00"),
                 f"line 3: timestamp '9999-12-31T23:59:59-14:00' {OUTSIDE}", id="year-10000-in-utc"),
    pytest.param(line(timestamp="2200-12-31T23:00:00-02:00"),
                 f"line 3: timestamp '2200-12-31T23:00:00-02:00' {OUTSIDE}", id="year-2201-in-utc"),
    pytest.param(line(timestamp="1969-12-31T23:59:59Z"), f"line 3: timestamp '1969-12-31T23:59:59Z' {OUTSIDE}",
                 id="1969"),
    pytest.param(line(timestamp=-1), f"line 3: timestamp -1 {OUTSIDE}", id="negative-unix-seconds"),
    pytest.param(line(timestamp=1e12), f"line 3: timestamp 1000000000000.0 {OUTSIDE}", id="unix-milliseconds"),
    pytest.param(line(content=""), "line 3: content is empty", id="empty-content"),
    pytest.param(line(content=" \t\n "), "line 3: content is empty", id="whitespace-content"),
    pytest.param(line(content="\u200b\u200d\u2060"), "line 3: content is empty", id="zero-width-content"),
    pytest.param(line(content="\ufeff"), "line 3: content is empty", id="byte-order-mark-content"),
    pytest.param(line(timestamp="next Tuesday"),
                 "line 3: timestamp 'next Tuesday' is neither ISO-8601 (e.g. 2026-03-01T14:30:00Z) nor unix seconds "
                 "(Invalid isoformat string: 'next Tuesday')", id="words-for-a-time"),
    pytest.param(line(chat_id=42), "line 3: chat_id must be a string, not a number", id="numeric-chat"),
    pytest.param(line(chat_id=True), "line 3: chat_id must be a string, not a boolean", id="boolean-chat"),
    pytest.param(line(user_id={"x": 1}), "line 3: user_id must be a string, not an object", id="object-user"),
    pytest.param(line(user_id=["u"]), "line 3: user_id must be a string, not an array", id="array-user"),
    pytest.param(line(user_id=7), "line 3: user_id must be a string, not a number", id="numeric-user"),
    pytest.param(line(user_id="  "), "line 3: user_id is empty", id="blank-user"),
]


@pytest.mark.parametrize("bad, named", REFUSED)
async def test_a_line_that_cannot_be_archived_stops_the_import_before_any_write(bad, named, memory, tmp_path):
    path = transcript(tmp_path, HELLO + bad + line(content="After the bad line."))

    with pytest.raises(TranscriptError) as refused:
        await import_transcript(memory, path)

    assert str(refused.value) == named
    assert await stored(memory) == ([], {})


MIXED = HELLO + line(content="") + TRAMS + "not JSON\n" + line(role="assistant", content="Later.", timestamp=-5)


def test_goat_import_refuses_a_file_with_invalid_lines_saying_nothing_was_written(tmp_path):
    (tmp_path / "mixed.jsonl").write_text(MIXED, encoding="utf-8")

    result = goat("import", "mixed.jsonl", env=goat_env(tmp_path / "data"), cwd=tmp_path)

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "goat: mixed.jsonl: line 3: content is empty (and 2 more invalid lines); nothing was written "
        "(--skip-invalid imports the valid lines)"]
    assert not (tmp_path / "data").exists()  # refused before any backend started


def test_goat_import_skip_invalid_imports_the_rest_and_lists_what_it_skipped(tmp_path):
    (tmp_path / "mixed.jsonl").write_text(MIXED, encoding="utf-8")
    env = goat_env(tmp_path / "data")

    result = ok(goat("import", "--skip-invalid", "mixed.jsonl", env=env, cwd=tmp_path))
    exported = json.loads(ok(goat("export", "--user", USER, env=env, cwd=tmp_path)).stdout)

    assert result.stdout.splitlines() == [
        "4 messages, 2 turns: 2 imported, 0 already there",
        "skipped 3 invalid line(s):",
        "  line 3: content is empty",
        "  line 6: not valid JSON (Expecting value at column 1; a JSON Lines file holds one object per line)",
        f"  line 7: timestamp -5 {OUTSIDE}",
    ]
    [chat] = exported["chats"]
    assert [m["content"] for m in chat["l2"]] == [
        "Can you help me plan a trip to Lisbon?", "Of course. When are you going?",
        "Is tram 28 worth it?", "Yes, early in the morning before the queues."]
    assert len(chat["l3"]) == 2


def test_goat_import_skip_invalid_skips_a_line_that_is_not_utf8_naming_its_byte(tmp_path):
    bad = line(content="caf\u00e9").replace("caf\\u00e9", "caf\udce9")  # the byte E9 alone (Latin-1 é)
    (tmp_path / "latin1.jsonl").write_bytes((HELLO + bad + TRAMS).encode("utf-8", "surrogateescape"))
    env = goat_env(tmp_path / "data")
    offset = len(HELLO.encode()) + bad.encode("utf-8", "surrogateescape").index(b"\xe9")

    refused = goat("import", "latin1.jsonl", env=env, cwd=tmp_path)
    skipped = ok(goat("import", "--skip-invalid", "latin1.jsonl", env=env, cwd=tmp_path))
    exported = json.loads(ok(goat("export", "--user", USER, env=env, cwd=tmp_path)).stdout)

    said = f"line 3: not UTF-8: the byte 0xe9 at byte offset {offset} of the file"
    assert refused.returncode == 2 and refused.stderr.startswith(f"goat: latin1.jsonl: {said}; nothing was written")
    assert skipped.stdout.splitlines() == ["4 messages, 2 turns: 2 imported, 0 already there",
                                           "skipped 1 invalid line(s):", f"  {said}"]
    [chat] = exported["chats"]
    assert "\ufffd" not in json.dumps(chat, ensure_ascii=False) and len(chat["l2"]) == 4


async def test_a_line_changed_between_the_check_and_the_import_stops_it_there(memory, tmp_path):
    path = transcript(tmp_path, HELLO + TRAMS)
    checked = read_transcript(path)
    path.write_text(HELLO + "not JSON any more\n" + TRAMS, encoding="utf-8")

    with pytest.raises(TranscriptChanged, match=r"^line 3: not valid JSON .*: the file changed since its lines "
                                                r"were checked$"):
        await import_turns(memory, checked)

    working, archived = await stored(memory)
    assert working == ["Can you help me plan a trip to Lisbon?", "Of course. When are you going?"]
    assert list(archived) == [archive_id(CHAT, 1)]  # what came before it, imported


async def test_unix_seconds_written_as_a_string_are_unix_seconds(memory, tmp_path):
    path = transcript(tmp_path, exchange("When did we talk?", "Just now.", "1700000000") +
                      line(content="And a moment later?", timestamp=" 1700000000.25 "))

    assert await import_transcript(memory, path) == {"messages": 3, "turns": 2, "imported": 2, "skipped": 0}
    _, working, _ = await memory.working(CHAT, 10)
    assert [m["timestamp"] for m in working] == [1_700_000_000.0, 1_700_000_000.0, 1_700_000_000.25]


def test_goat_import_help_describes_the_file_and_its_format(tmp_path):
    text = ok(goat("import", "--help", env=goat_env(tmp_path / "data"), cwd=tmp_path)).stdout

    assert text.startswith("usage: goat import [-h] [--skip-invalid] [--format {jsonl,telegram,chatgpt}]\n")
    for field in ("chat_id", "user_id", "role", "content", "timestamp"):
        assert re.search(rf"^  {field} +\S", text, re.M), field  # each field described
    examples = [example for example in text.splitlines() if example.startswith("  {")]
    parsed = transcript_of(examples)  # the examples it gives are a valid transcript
    assert parsed.messages == 2 and parsed.turns == 1


# ---- encodings ------------------------------------------------------------------------------------------


async def test_a_transcript_that_starts_with_a_byte_order_mark_imports(memory, tmp_path):
    path = tmp_path / "notepad.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + THANKS.encode("utf-8"))

    assert await import_transcript(memory, path) == {"messages": 2, "turns": 1, "imported": 1, "skipped": 0}
    assert await stored(memory) == (["Thanks!", "You're welcome"], {archive_id(CHAT, 1): THANKED})


def test_goat_import_refuses_a_line_of_lone_surrogates_and_skip_invalid_skips_it(tmp_path):
    """JSON escapes of lone surrogates ("\\ud800") decode to text that is not valid Unicode: refused as
    bytes that are not UTF-8 are, never stored as U+FFFD."""
    bad = line(content="caf\ud800 au lait")
    assert "\\ud800" in bad  # as the JSON Lines file holds it
    (tmp_path / "escaped.jsonl").write_text(HELLO + bad + TRAMS, encoding="utf-8")
    env = goat_env(tmp_path / "data")

    refused = goat("import", "escaped.jsonl", env=env, cwd=tmp_path)
    skipped = ok(goat("import", "--skip-invalid", "escaped.jsonl", env=env, cwd=tmp_path))
    exported = json.loads(ok(goat("export", "--user", USER, env=env, cwd=tmp_path)).stdout)

    said = "line 3: content holds text that is not valid Unicode (lone surrogates)"
    assert refused.returncode == 2 and refused.stderr.startswith(f"goat: escaped.jsonl: {said}; nothing was written")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert skipped.stdout.splitlines() == ["4 messages, 2 turns: 2 imported, 0 already there",
                                           "skipped 1 invalid line(s):", f"  {said}"]
    [chat] = exported["chats"]
    assert "\ufffd" not in json.dumps(chat, ensure_ascii=False) and len(chat["l2"]) == 4
