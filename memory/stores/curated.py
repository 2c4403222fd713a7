"""Curated L3 entries: what the model keeps on purpose (``store_memory``), beside the archived turns."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

from memory.turns import is_archive_id, name_problem

CURATED_TAG = "curated_memory"
MAX_CURATED_CHARS = 10_000
# Tags an entry may not claim: they say how an entry was written, not what it is about.
_RESERVED_TAGS = frozenset({CURATED_TAG, "l2_full_archive"})


def curated_id(chat_id: str, content: str) -> str:
    """Deterministic per (chat, content): storing the same text again rewrites, never duplicates."""
    return f"{chat_id}:memory_{hashlib.sha256(content.encode()).hexdigest()[:16]}"


def curated_entry(
    chat_id: str, user_id: str, content: str, tags: list[str] | None, now: float, entry_id: str | None = None,
    name: str | None = None,
) -> tuple[str, str, dict[str, Any]]:
    """(id, content, metadata) of a curated entry, as EpisodicStore.upsert takes it: its id is
    ``entry_id`` when given (a store's key), else :func:`curated_id`'s; ``name``, its writer's
    display name, kept as a turn's speaker's is.

    The content is kept verbatim (only surrounding whitespace is dropped). Tags are stored
    as one comma-separated string (Chroma metadata is scalar), ``curated_memory`` first.

    Raises:
        ValueError: an empty or overlong content, bad tags, or an ``entry_id`` that is empty or
            of a turn's form (the turn, archived later, would replace the entry), or a name that
            cannot be taken (:func:`memory.turns.name_problem`).
    """
    if name is not None and (problem := name_problem(name)):
        raise ValueError(f"name {problem}")
    if entry_id is not None and (not isinstance(entry_id, str) or not entry_id.strip()):
        raise ValueError(f"a memory's id must be a non-empty string, got {entry_id!r}")
    if entry_id is not None and is_archive_id(chat_id, entry_id):
        raise ValueError(f"{entry_id!r} has the form of a turn's id, the turn's whether archived or to come: "
                         "keep the note under another id")
    text = content.strip() if isinstance(content, str) else ""
    if not text:
        raise ValueError("content must be a non-empty string")
    if len(text) > MAX_CURATED_CHARS:
        raise ValueError(f"content has {len(text)} characters; a curated memory holds at most {MAX_CURATED_CHARS}")
    metadata = {
        **({"name": name} if name else {}),
        "chat_id": chat_id,
        "user_id": user_id,
        "timestamp": now,
        "time": datetime.fromtimestamp(now, timezone.utc).isoformat(),
        "tags": ",".join([CURATED_TAG, *clean_tags(tags)]),
        "access_count": 0,
        "last_accessed": now,
    }
    return entry_id or curated_id(chat_id, text), text, metadata


def clean_tags(tags: list[str] | None) -> list[str]:
    """Distinct, trimmed tags in the given order; commas split a tag, reserved tags are dropped."""
    if tags is None:
        return []
    if not isinstance(tags, list | tuple) or not all(isinstance(tag, str) for tag in tags):
        raise ValueError(f"tags must be a list of strings, got {tags!r}")
    parts = (part.strip() for tag in tags for part in tag.split(","))
    return list(dict.fromkeys(part for part in parts if part and part not in _RESERVED_TAGS))
