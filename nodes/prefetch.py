"""prefetch: search L3 before the model sees the message — every turn, no confidence gate.

Three mechanisms run concurrently, each only when it scores above zero:
thematic (always), temporal (a completed-past range is named) and specific-key
(structural keys are present). The query is embedded once and shared. The whole
search is bounded by ``prefetch.timeout``: whatever has not finished by then is
abandoned (its worker thread may still be running; the turn does not wait).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from zoneinfo import ZoneInfo
from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context, resolve, turn_time
from graph.state import TurnState
from memory.keys import structural_keys
from memory.temporal import completed_past_range
from nodes.timing import timed

# What the scans read of a message: dateparser's cost grows fast with the text and a date
# phrase sits in the first lines; the key regex is cheap (~0.2 ms per 1 000 characters).
_TEMPORAL_SCAN_CHARS = 2_000
_KEY_SCAN_CHARS = 20_000


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
    }
    started = time.perf_counter()

    # Shared by the mechanisms: the query is embedded once, the scope resolved once.
    vector_task = asyncio.ensure_future(memory.embed_query(message))
    chats_task = asyncio.ensure_future(memory.scope_chats(chat_id, user_id, scope))

    async def thematic() -> list[dict]:
        results, outcome["cache"] = await memory.cached_search(
            await chats_task, memory.cache_scope_key(chat_id, user_id, scope), message, await vector_task, k
        )
        return results

    async def temporal() -> list[dict] | None:
        # Parsing is pure-Python CPU work: beside the embedding it slowed both through the
        # GIL (embed 8 → 19 ms); one after the other is faster, and the search needs the vector anyway.
        vector = await vector_task
        when = datetime.fromtimestamp(now, ZoneInfo(settings.prefetch.timezone))
        found = await memory.run_blocking(completed_past_range, message[:_TEMPORAL_SCAN_CHARS], when)
        if found is None:
            return None  # scored zero: no completed past range named
        after, before = (dt.timestamp() for dt in found)
        outcome["range"] = [found[0].isoformat(), found[1].isoformat()]
        return await memory.search(await chats_task, vector, k, after, before)

    async def specific_key() -> list[dict] | None:
        outcome["keys"] = structural_keys(message[:_KEY_SCAN_CHARS])
        if not outcome["keys"]:
            return None  # scored zero: no structural key
        return await memory.find_by_keys(await chats_task, outcome["keys"], settings.prefetch.max_results)

    tasks = {
        "thematic": asyncio.ensure_future(thematic()),
        "temporal": asyncio.ensure_future(temporal()),
        "specific_key": asyncio.ensure_future(specific_key()),
    }
    await asyncio.wait(tasks.values(), timeout=settings.prefetch.timeout)

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
    # Fired: scored above zero (as far as it got before the deadline).
    outcome["fired"] = ["thematic"] + [
        name for name, scored in (("temporal", outcome["range"]), ("specific_key", outcome["keys"])) if scored
    ]
    for shared in (vector_task, chats_task):
        if not shared.done():
            shared.cancel()
        elif not shared.cancelled():
            shared.exception()  # retrieved here; reported through the mechanisms that awaited it
    outcome["waited_ms"] = round((time.perf_counter() - started) * 1000, 3)
    problems = [f"{n} timed out" for n in outcome["timed_out"]]
    problems += [f"{n} failed ({e})" for n, e in outcome["failed"].items()]
    return {"recalls": recalls, "prefetch": outcome, "degraded": {"prefetch": "; ".join(problems)}}
