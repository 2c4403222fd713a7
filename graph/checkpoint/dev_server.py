"""The copies `langgraph dev` keeps of the turns run inside it: its in-memory runtime holds each
thread's checkpoints (state and history), the thread's last values and its runs' input, and
writes them to ``.langgraph_api/``'s files (every 10 s and at its end). An erase in the server's
process cuts its texts out of them, in memory and in those files, as out of the Redis checkpoints.

The runtime is langgraph-runtime-inmem's (the version ``requirements.lock`` pins; a test reads
what the server hands out and its files after a delete): its checkpointer is langgraph's
``InMemorySaver`` (``blobs``: channel values; ``writes``: pending writes, serialized), its other
records one dict of lists (``threads``, ``runs``), each a ``PersistentDict`` flushed by one thread.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Collection, Iterator, Sequence
from importlib import import_module
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver, PersistentDict

from graph.checkpoint.saver import longest_first, without_texts

_RUNTIME = "langgraph_runtime_inmem"


def serving_in_memory() -> bool:
    """Whether this process is `langgraph dev`'s, on its in-memory runtime."""
    return f"{_RUNTIME}.database" in sys.modules


async def cut_from_dev_server(chats: Collection[str], texts: Sequence[str], kept: Collection[str]) -> None:
    """Cut the texts out of every thread of this `langgraph dev` that ran a turn of one of the
    chats (its state says which), and write its files again at once.

    Args:
        chats: the chats whose turns may have read the texts.
        texts: what an erase took out of memory.
        kept: channels (and input fields) left whole: ids, which a cut would turn into others.
    """
    checkpoint, database, persistence = (import_module(f"{_RUNTIME}.{name}")
                                         for name in ("checkpoint", "database", "_persistence"))
    saver, records = checkpoint.MEMORY, database.GLOBAL_STORE
    if saver is None:  # no run yet: nothing was checkpointed
        return
    if not isinstance(saver, InMemorySaver):
        raise RuntimeError(f"langgraph dev's checkpointer is a {type(saver).__name__}, not the InMemorySaver "
                           "GOAT cuts forgotten texts out of")
    if not (threads := _threads_of(saver, set(chats))):
        return
    # Its flush thread stopped (and joined: no write of its own under way) while the copies are
    # cut and the files written here, so none it began before the cut lands after them.
    await asyncio.to_thread(persistence.stop_flush_loop)
    try:
        texts = longest_first(texts)
        _cut_checkpoints(saver, threads, texts, kept)
        _cut_records(records, threads, texts, kept)
        for files in (saver.writes, saver.blobs, records):
            if isinstance(files, PersistentDict):  # not with LANGGRAPH_DISABLE_FILE_PERSISTENCE
                files.sync()
    finally:
        persistence.register_persistent_dict(records)  # starts the flush thread again


def _threads_of(saver: InMemorySaver, chats: set[str]) -> set[str]:
    """The threads whose state held one of the chats, at any checkpoint."""
    return {thread for (thread, _, channel, _), typed in list(saver.blobs.items())
            if channel == "chat_id" and typed[0] != "empty" and saver.serde.loads_typed(typed) in chats}


def _cut_checkpoints(saver: InMemorySaver, threads: set[str], texts: Sequence[str], kept: Collection[str]) -> None:
    # A checkpoint's own record holds ids, versions and the run's metadata, never a channel's text.
    for key, typed in list(saver.blobs.items()):
        if key[0] in threads and key[2] not in kept and typed[0] != "empty":
            saver.blobs[key] = _cut_typed(saver, typed, texts)
    for (thread, _, _), writes in list(saver.writes.items()):
        if thread in threads:
            for index, (task, channel, typed, path) in list(writes.items()):
                if channel not in kept:
                    writes[index] = (task, channel, _cut_typed(saver, typed, texts), path)


def _cut_typed(saver: InMemorySaver, typed: tuple[str, bytes], texts: Sequence[str]) -> tuple[str, bytes]:
    value = saver.serde.loads_typed(typed)
    cut = without_texts(value, texts)
    return typed if cut == value else saver.serde.dumps_typed(cut)


def _cut_records(records: dict[str, Any], threads: set[str], texts: Sequence[str], kept: Collection[str]) -> None:
    """The thread's last values (``threads.get``) and its runs' input and command."""
    for thread in _of(records["threads"], threads):
        if isinstance(thread.get("values"), dict):
            thread["values"] = _cut_fields(thread["values"], texts, kept)
    for run in _of(records["runs"], threads):
        for name in ("input", "command"):
            if isinstance(run["kwargs"].get(name), dict):
                run["kwargs"][name] = _cut_fields(run["kwargs"][name], texts, kept)


def _of(listed: list[dict[str, Any]], threads: set[str]) -> Iterator[dict[str, Any]]:
    return (record for record in listed if str(record["thread_id"]) in threads)


def _cut_fields(fields: dict[str, Any], texts: Sequence[str], kept: Collection[str]) -> dict[str, Any]:
    return {name: value if name in kept else without_texts(value, texts) for name, value in fields.items()}
