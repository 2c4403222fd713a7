"""Specific-key: the entries holding a structural key the message names (an id, a path, a
version, a ticket), by exact lookup."""

from __future__ import annotations

from typing import Any

from memory.retrieval.message.keys import structural_keys
from memory.retrieval.mechanism import Mechanism, Note, RecallRun
from memory.turns import Hit

# The key regex is cheap (~0.2 ms per 1 000 characters).
_KEY_SCAN_CHARS = 20_000


async def _find(run: RecallRun) -> list[Hit] | None:
    keys = run.note["keys"] = structural_keys(run.message[:_KEY_SCAN_CHARS])
    if not keys:
        return None  # scored zero: no structural key
    question = run.question
    return await question.reads.find_by_keys(await question.chats, keys, run.settings.prefetch.max_results)


def _reported(note: Note) -> dict[str, Any]:
    """The structural keys the message names."""
    return {"keys": note.get("keys", [])}


def _logged(note: Note) -> dict[str, Any]:
    return {"keys": len(note.get("keys", []))}  # how many: the keys themselves are the message's words


def _said(note: Note) -> list[str]:
    return [f"keys {', '.join(note['keys'])}"] if note.get("keys") else []


SPECIFIC_KEY = Mechanism("specific_key", _find, priority=0, exact_at_zero=True, reported=_reported, logged=_logged,
                         said=_said)
