"""A serving process holds the vector indexes of at most ``chroma.open_chats`` chats (real embedded
Chroma, real Redis, real MiniLM): past the bound the store is let go and the chats asked next are
read in again, and recall finds the same entries as without the bound."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from graph.importing.importer import import_transcript
from graph.settings import Settings
from memory.encoders.embeddings import LocalEmbeddings
from memory.facade import Memory, RecallQuery, measurement_hooks
from memory.stores import l3_backend

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
CHATS = [f"chat-{n}" for n in range(5)]
BOUND = 2
LINES = [
    ("I planted three San Marzano tomato seedlings on the balcony.", "Give them a deep pot and full sun."),
    ("The deployment of service alpha-5675 failed on the database migration.", "Run the migration in batches."),
    ("My neighbour's parrot screams every morning at six.", "Parrots are loud at dawn; try a cover."),
    ("I ran 8 kilometres this morning, my knee feels fine.", "Keep the long runs slow for a while."),
    ("My sister Clara is getting married in Porto in June.", "June in Porto is lovely."),
    ("We booked the ferry to the island for the 14th.", "Bring a jacket, the deck is windy."),
]
QUESTIONS = ["How are my tomatoes doing?", "What failed in the alpha-5675 deployment?",
             "What did we say about the wedding last month?"]


def _transcript(path: Path, chat_id: str, shift: int) -> Path:
    """Each chat the same kind of lines in another order, a day apart."""
    rows = []
    for n in range(len(LINES)):
        user, assistant = LINES[(n + shift) % len(LINES)]
        when = NOW - timedelta(days=40 - 3 * n)
        for offset, role, content in ((0, "user", user), (30, "assistant", assistant)):
            rows.append(json.dumps({"chat_id": chat_id, "user_id": chat_id, "role": role, "content": content,
                                    "timestamp": (when + timedelta(seconds=offset)).isoformat()}))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _bounded(settings: Settings, open_chats: int) -> Settings:
    return settings.model_copy(update={"chroma": settings.chroma.model_copy(update={"open_chats": open_chats})})


async def _recall_everywhere(memory: Memory, chats: list[str]) -> list[dict[str, list[tuple[str, float]]]]:
    """Each question in each chat, searched afresh (no cached search, no remembered vector): the
    entries of every list, with their distances."""
    found = []
    for chat_id in chats:
        for question in QUESTIONS:
            await measurement_hooks(memory).forget_searches()
            await measurement_hooks(memory).forget_encodings()
            recalled = await memory.recall(RecallQuery(question, chat_id, chat_id, NOW.timestamp(), deadline=30.0))
            found.append({name: [(hit["id"], round(hit["distance"], 5)) for hit in hits]
                          for name, hits in recalled.lists.items()})
    return found


async def test_a_process_holds_no_more_chats_than_the_bound_and_recalls_the_same(
        settings: Settings, embeddings: LocalEmbeddings, tmp_path: Path) -> None:
    unbounded = Memory(_bounded(settings, 100), embeddings=embeddings)
    for shift, chat_id in enumerate(CHATS):
        await import_transcript(unbounded, _transcript(tmp_path / f"{chat_id}.jsonl", chat_id, shift))
    assert await measurement_hooks(unbounded).settle() == 0
    # The first chat again last: read in afresh once the bound has let it go.
    expected = await _recall_everywhere(unbounded, [*CHATS, CHATS[0]])
    await unbounded.aclose()

    memory = Memory(_bounded(settings, BOUND), embeddings=embeddings)
    held, found = [], []
    try:
        for chat_id in [*CHATS, CHATS[0]]:
            found += await _recall_everywhere(memory, [chat_id])
            held.append(await measurement_hooks(memory).held_chats())
    finally:
        await memory.aclose()
    assert found == expected
    assert max(held) <= BOUND
    assert held[2] == 1  # as the third chat was read, the first two were let go
    assert any(lists for lists in found) and all(any(lists.values()) for lists in found[::len(QUESTIONS)])


async def test_a_release_held_up_by_a_call_still_running_is_not_tried_again_at_once(
        settings: Settings, embeddings: LocalEmbeddings, tmp_path: Path, monkeypatch) -> None:
    """A release waits for L3's calls under way, and every call starting meanwhile waits behind it:
    one left open by a call that runs on (a search a deadline abandoned) is tried again only
    minutes later, not at every call after it."""
    memory = Memory(_bounded(settings, 1), embeddings=embeddings)
    for shift, chat_id in enumerate(CHATS[:2]):
        await import_transcript(memory, _transcript(tmp_path / f"{chat_id}.jsonl", chat_id, shift))
    assert await measurement_hooks(memory).settle() == 0
    await measurement_hooks(memory).held_chats()  # the import's own writes may have started a release
    l3 = memory._backends.l3
    monkeypatch.setattr(l3_backend, "_RELEASE_WAIT_S", 0.2)
    alone, waits = l3._pool.alone, []

    async def counted(release, wait: float) -> None:
        waits.append(wait)
        await alone(release, wait)

    monkeypatch.setattr(l3._pool, "alone", counted)
    running_on = threading.Event()
    call = asyncio.ensure_future(l3.run_blocking(running_on.wait))
    try:
        await _recall_everywhere(memory, CHATS[:2])  # two chats held under a bound of one
        assert await measurement_hooks(memory).held_chats() == 2 and waits == [0.2]
        await _recall_everywhere(memory, CHATS[:2])
        assert await measurement_hooks(memory).held_chats() == 2 and waits == [0.2]  # not tried again
    finally:
        running_on.set()
        await call
        await memory.aclose()
