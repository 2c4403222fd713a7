"""An import's memory is bounded by its batches, not its file: the transcript is read as it is
written, a batch at a time, and every batch is bounded in exchanges and in text. Asserted by the
structure (what was read, and what each write held), not by resident memory. Real Redis, Chroma
and MiniLM.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_import_hardening import memory  # noqa: F401 (the fixture: a Memory on real backends)

from graph.importing import importer
from graph.importing.importer import BATCH_CHARS, MAX_BATCH, Read, import_turns, read_transcript
from memory.turns import archive_id

pytestmark = pytest.mark.slow

CHAT, USER = "batched-chat", "batched-user"
SHORT_TURNS, LONG_TURNS = 300, 12
LONG_TEXT = "The garden path ran past the old mill and down to the river. " * 350  # ~21 000 characters


def transcript(path: Path) -> Path:
    """Short exchanges, then long ones (each a sixth of a batch's text)."""
    with path.open("w", encoding="utf-8") as file:
        for n in range(SHORT_TURNS + LONG_TURNS):
            asked = f"Note {n}: the meter read {n * 7} units." if n < SHORT_TURNS else f"{n}: {LONG_TEXT}"
            for role, text in (("user", asked), ("assistant", f"Noted, {n}.")):
                file.write(json.dumps({"chat_id": CHAT, "user_id": USER, "role": role, "content": text,
                                       "timestamp": 1_700_000_000 + n}) + "\n")
    return path


def counted(reads: Callable[[], Iterator[Read]], seen: list[int]) -> Callable[[], Iterator[Read]]:
    """``reads``, counting in ``seen[0]`` the messages read so far."""

    def reading() -> Iterator[Read]:
        for read in reads():
            seen[0] += 1
            yield read

    return reading


async def test_an_import_reads_its_file_as_it_writes_it_in_bounded_batches(memory, tmp_path, monkeypatch):
    checked = read_transcript(transcript(tmp_path / "meters.jsonl"))
    read = [0]
    writes: list[tuple[int, int, int]] = []  # (messages read by then, exchanges, characters) of each write
    write = memory.entries.import_turns

    async def recording(chat_id, turns, progress=None, *, writers=None):
        writes.append((read[0], len(turns), sum(len(m["content"]) for turn in turns for m in turn.messages)))
        return await write(chat_id, turns, progress, writers=writers)

    monkeypatch.setattr(memory.entries, "import_turns", recording)

    stats = await import_turns(memory, dataclasses.replace(checked, reads=counted(checked.reads, read)))

    assert stats["imported"] == SHORT_TURNS + LONG_TURNS
    assert sum(exchanges for _, exchanges, _ in writes) == SHORT_TURNS + LONG_TURNS
    assert all(exchanges <= MAX_BATCH for _, exchanges, _ in writes)
    # A batch's text stays within the bound by at most its last exchange.
    assert all(chars < BATCH_CHARS + 2 * len(LONG_TEXT) for _, _, chars in writes)
    assert any(exchanges < 10 for _, exchanges, _ in writes[1:])  # the long exchanges went a few at a time
    # The file is read as it is written: before each write, at most that batch (and the message
    # that closed it) was read past what earlier writes took.
    written = 0
    for messages_read, exchanges, _ in writes:
        written += exchanges
        assert messages_read <= 2 * written + 2, writes


async def test_an_import_closes_l3_every_so_many_exchanges_once_none_of_its_calls_runs(memory, tmp_path, monkeypatch):
    """Chroma keeps every collection it wrote in memory: an import of many chats closes the store
    every ``RELEASE_EVERY`` exchanges, alone, and the next call opens it again."""
    monkeypatch.setattr(importer, "RELEASE_EVERY", 100)
    l3 = memory._backends.l3
    store, closed_alone = await l3.episodic(), []
    release = store.release

    def releasing() -> None:
        alone = l3._pool.files._alone and not l3._pool.files._sharing
        release()
        closed_alone.append(alone and store._chroma is None)  # the embedded client closed, not kept

    monkeypatch.setattr(store, "release", releasing)
    stats = await import_turns(memory, read_transcript(transcript(tmp_path / "meters.jsonl")))
    assert stats["imported"] == SHORT_TURNS + LONG_TURNS
    assert len(closed_alone) >= 2 and all(closed_alone)  # after the batches that passed 100 exchanges since the last
    entries = await l3.call(store.entries, CHAT)
    assert len(entries) == SHORT_TURNS + LONG_TURNS
    [(_, vector)] = await l3.call(store.get_with_vectors, [CHAT], [archive_id(CHAT, 102)])
    [[nearest, *_]] = await l3.call(store.search, [CHAT], [vector], 3)  # the vector index reopened whole
    assert nearest["id"] == archive_id(CHAT, 102)
