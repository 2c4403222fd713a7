"""What Chroma's answers become: hits and records of the archive's entries, and the metadata an
entry is written with (the tokens of its recalled line) and bumped by when it is recalled."""

from __future__ import annotations

from typing import Any

import chromadb

from memory.prompt.budget import LINE_TOKENS, format_recall_line, line_tokens_stamp
from memory.prompt.tokens import count_unremembered
from memory.stores.chroma_file import Record
from memory.turns import Hit


def as_hit(entry_id: str, content: str, metadata: dict[str, Any] | None, distance: float) -> Hit:
    metadata = dict(metadata or {})
    return Hit(
        id=entry_id,
        content=content,
        distance=float(distance),
        timestamp=float(metadata.get("timestamp", 0.0)),
        metadata=metadata,
    )


def with_line_tokens(metadatas: list[dict[str, Any]], contents: list[str]) -> list[dict[str, Any]]:
    """The entries' metadata with the tokens of the line each is recalled as (``LINE_TOKENS``),
    counted here, as they are written, so that a turn packing them into its prompt need not."""
    timed = [n for n, metadata in enumerate(metadatas) if isinstance(metadata.get("timestamp"), int | float)]
    for n in set(range(len(metadatas))) - set(timed):  # a stamp carried over from a rewritten entry's old text
        metadatas[n] = {key: value for key, value in metadatas[n].items() if key != LINE_TOKENS}
    lines = [format_recall_line({"timestamp": metadatas[n]["timestamp"], "content": contents[n]}) for n in timed]
    for n, line, tokens in zip(timed, lines, count_unremembered(lines)):
        metadatas[n] = {**metadatas[n], LINE_TOKENS: line_tokens_stamp(line, tokens)}
    return metadatas


def records_from_get(result: chromadb.GetResult) -> dict[str, Record]:
    found = zip(result["ids"], result["documents"], result["metadatas"], strict=True)
    return {entry_id: (content, metadata or {}) for entry_id, content, metadata in found}


def exact_hits(records: dict[str, Record]) -> list[Hit]:
    """Entries read by id, as hits at distance 0.0, in the records' order."""
    return [as_hit(entry_id, content, metadata, 0.0) for entry_id, (content, metadata) in records.items()]


def hits_from_get(result: chromadb.GetResult) -> list[Hit]:
    return exact_hits(records_from_get(result))


def bump_access_counts(collection: chromadb.Collection, ids: list[str], now: float) -> None:
    # Counts are re-read rather than taken from the hits, which may come from the
    # session cache and be minutes old. Two concurrent bumps can still lose one
    # increment; popularity is a soft signal, so that is accepted.
    current = collection.get(ids=ids, include=["metadatas"])
    if current["ids"]:
        collection.update(
            ids=current["ids"],
            metadatas=[
                {"access_count": int(metadata.get("access_count", 0)) + 1, "last_accessed": now}
                for metadata in current["metadatas"]
            ],
        )
