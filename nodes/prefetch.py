"""prefetch: search L3 before the model sees the message — every turn, no confidence gate.

Three mechanisms run concurrently, each only when it scores above zero:
thematic (always), temporal (a completed-past range is named) and specific-key
(structural keys are present). Thematic searches twice, by meaning (the vector
search, through the L2.5 cache) and by words (BM25 over the chat's word index),
and its word half also reads the chat's background (the query's mean distance to
the chat's entries) that the gap filter judges relevance against. The query is
embedded once and shared. The whole search is bounded by ``prefetch.timeout``:
whatever has not finished by then is abandoned (its worker thread may still be
running; the turn does not wait).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from zoneinfo import ZoneInfo
from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from nodes.context import Context, resolve, turn_time
from nodes.state import TurnState
from memory.keys import structural_keys
from memory.temporal import completed_past_range, may_name_a_date
from nodes.timing import timed

# What the scans read of a message: dateparser's cost grows fast with the text and a date
# phrase sits in the first lines; the key regex is cheap (~0.2 ms per 1 000 characters).
_TEMPORAL_SCAN_CHARS = 2_000
_KEY_SCAN_CHARS = 20_000
# The word search reads the first lines too: its cost grows with the distinct words asked.
_LEXICAL_SCAN_CHARS = 2_000


@timed("prefetch")
async def prefetch(state: TurnState, runtime: Runtime[Context]) -> dict[str, Any]:
    services, settings = resolve(runtime)
    memory = services.memory
    message = state["message"]
    chat_id, user_id = state["chat_id"], state.get("user_id") or state["chat_id"]
    now = turn_time(state)
    scope = settings.memory.scope
    k = settings.prefetch.search_k
    outcome: dict[str, Any] = {
        "fired": [], "succeeded": [], "failed": {}, "timed_out": [], "found": {}, "cache": None,
        "range": None, "keys": [], "deadline_ms": settings.prefetch.timeout * 1000,
        "lexical": {}, "background": None,
    }
    started = time.perf_counter()

    # Shared by the mechanisms: the query is embedded once, the scope resolved once, and the
    # chats' own index (words, times, keys) brought up to date once.
    vector_task = asyncio.ensure_future(memory.embed_query(message))
    chats_task = asyncio.ensure_future(memory.scope_chats(chat_id, user_id, scope))

    async def sync_index() -> bool:
        outcome["lexical"]["complete"] = await memory.sync_index(await chats_task)
        return outcome["lexical"]["complete"]

    indexed_task = asyncio.ensure_future(sync_index())

    async def thematic() -> list[dict]:
        results, outcome["cache"] = await memory.cached_search(
            await chats_task, memory.cache_scope_key(chat_id, user_id, scope), message, vector_task, k
        )
        return results

    async def background() -> float | None:
        return await memory.background_distance(await chats_task, await vector_task)

    async def lexical() -> list[dict]:
        chats = await chats_task
        await indexed_task
        found, outcome["background"] = await asyncio.gather(
            memory.lexical_search(chats, message[:_LEXICAL_SCAN_CHARS], k, settings.retrieval.lexical_max_df_share),
            background(),
        )
        query = np.asarray(await vector_task, dtype=np.float32)
        return [{**hit, "distance": float(np.sum(np.square(stored - query))), "mechanism": "thematic"}
                for hit, stored, _ in found]

    async def temporal() -> list[dict] | None:
        if not may_name_a_date(message[:_TEMPORAL_SCAN_CHARS]):
            return None  # scored zero: no digit, no date word (most messages; checked in microseconds)
        # Parsing is pure-Python CPU work: beside the embedding it slowed both through the
        # GIL (embed 8 → 19 ms); one after the other is faster, and the search needs the vector anyway.
        vector = await vector_task
        when = datetime.fromtimestamp(now, ZoneInfo(settings.prefetch.timezone))
        found = await memory.run_blocking(completed_past_range, message[:_TEMPORAL_SCAN_CHARS], when)
        if found is None:
            return None  # scored zero: no completed past range named
        after, before = (dt.timestamp() for dt in found)
        outcome["range"] = [found[0].isoformat(), found[1].isoformat()]
        return await memory.search(await chats_task, vector, k, after, before, indexed=await indexed_task)

    async def specific_key() -> list[dict] | None:
        outcome["keys"] = structural_keys(message[:_KEY_SCAN_CHARS])
        if not outcome["keys"]:
            return None  # scored zero: no structural key
        return await memory.find_by_keys(
            await chats_task, outcome["keys"], settings.prefetch.max_results, indexed=await indexed_task
        )

    tasks = {
        "thematic": asyncio.ensure_future(thematic()),
        "temporal": asyncio.ensure_future(temporal()),
        "specific_key": asyncio.ensure_future(specific_key()),
    }
    # Thematic's word half, reported on its own line: a stuck vector search must not take it down.
    lexical_task = asyncio.ensure_future(lexical())
    await asyncio.wait([*tasks.values(), lexical_task], timeout=settings.prefetch.timeout)

    recalls: dict[str, list[dict]] = {}
    for name, task in tasks.items():
        if not task.done():
            task.cancel()
            outcome["timed_out"].append(name)
        elif task.exception() is not None:
            outcome["failed"][name] = f"{type(task.exception()).__name__}: {task.exception()}"
        elif task.result() is not None:
            recalls[name] = [{**hit, "mechanism": name} for hit in task.result()]
            outcome["succeeded"].append(name)
            outcome["found"][name] = len(recalls[name])
    words_problem = _finish_words(lexical_task, outcome["lexical"])
    if words_problem is None:
        recalls["lexical"] = lexical_task.result()
    # Fired: scored above zero (as far as it got before the deadline).
    outcome["fired"] = ["thematic"] + [
        name for name, scored in (("temporal", outcome["range"]), ("specific_key", outcome["keys"])) if scored
    ]
    for shared in (vector_task, chats_task, indexed_task):
        if not shared.done():
            shared.cancel()
        elif not shared.cancelled():
            shared.exception()  # retrieved here; reported through the mechanisms that awaited it
    outcome["waited_ms"] = round((time.perf_counter() - started) * 1000, 3)
    problems = [f"{n} timed out" for n in outcome["timed_out"]]
    problems += [f"{n} failed ({e})" for n, e in outcome["failed"].items()]
    problems += [words_problem] if words_problem else []
    return {"recalls": recalls, "prefetch": outcome, "degraded": {"prefetch": "; ".join(problems)}}


def _finish_words(task: asyncio.Future, report: dict[str, Any]) -> str | None:
    """Record how the word search ended in ``report``; the problem to report, None if it succeeded."""
    if not task.done():
        task.cancel()
        report["timed_out"] = True
        return "thematic (words) timed out"
    if task.exception() is not None:
        report["failed"] = f"{type(task.exception()).__name__}: {task.exception()}"
        return f"thematic (words) failed ({report['failed']})"
    report["found"] = len(task.result())
    return None
