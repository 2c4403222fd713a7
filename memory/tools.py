"""The memory tools offered to the model (SPEC §8): search_memory, store_memory,
promote_memory, forget_fact, list_facts.

They are built per turn, bound to the turn's chat and user (from graph state): the model
sees and fills in only the documented arguments, never whose memory it touches. Each
returns JSON text; a refusal or a bad argument raises, and the tools node hands the
model a JSON error instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from langchain_core.tools import BaseTool, tool

from graph.settings import Settings
from memory.budget import format_recall_line
from memory.gap import gap_filter
from memory.layers import MemoryLayers
from memory.merge import merge_and_score

MEMORY_TOOL_NAMES = ("search_memory", "store_memory", "promote_memory", "forget_fact", "list_facts")
SEARCH_MECHANISM = "search_memory"
# Per entry in search results, so that several fit in what the model reads.
RESULT_CHARS = 2_000


@dataclass(frozen=True)
class MemoryToolbox:
    """What the memory tools do for one turn: whose memory (chat, user), when, with which settings."""

    memory: MemoryLayers
    settings: Settings
    chat_id: str
    user_id: str
    now: float

    async def search(self, query: str, after: str | None = None, before: str | None = None) -> dict[str, Any]:
        """L3 on demand, in the turn's memory scope, through the same gap filter and scoring as prefetch."""
        if not query.strip():
            raise ValueError("query is empty")
        zone = ZoneInfo(self.settings.prefetch.timezone)
        start, end = iso_bound(after, zone, "after"), iso_bound(before, zone, "before")
        if start is not None and end is not None and start > end:
            raise ValueError(f"after ({after}) is later than before ({before})")
        memory = self.memory
        chats = await memory.scope_chats(self.chat_id, self.user_id, self.settings.memory.scope)
        vector = await memory.embed_query(query)
        hits = await memory.search(chats, vector, self.settings.prefetch.search_k, start, end)
        bounded = start is not None or end is not None
        found = self._select([{**hit, "mechanism": SEARCH_MECHANISM} for hit in hits], bounded)
        memory.bump_access_later(found, self.now)
        if not found:
            return {"results": [], "note": "nothing in memory stands out for this query"}
        return {"results": [format_recall_line(_capped(hit)) for hit in found]}

    async def store(self, content: str, tags: list[str] | None = None) -> dict[str, Any]:
        return {"stored": await self.memory.store_memory(self.chat_id, self.user_id, content, tags, self.now)}

    async def promote(self, key: str, value: str) -> dict[str, Any]:
        limit = self.settings.budget.l1_facts_max_tokens
        tokens = await self.memory.remember_fact(self.user_id, key, value, limit)
        return {"saved": {key.strip(): value.strip()}, "facts_tokens": tokens, "facts_token_limit": limit}

    async def forget(self, key: str) -> dict[str, Any]:
        if not await self.memory.forget_fact(self.user_id, key):
            raise LookupError(f"no fact is saved under the key {key!r}")
        return {"forgotten": key}

    async def facts(self) -> dict[str, Any]:
        return {"facts": await self.memory.facts(self.user_id)}

    def _select(self, recalls: list[dict], bounded: bool) -> list[dict]:
        # A named period is a selection in itself, as for prefetch's temporal mechanism.
        retrieval = self.settings.retrieval
        kept = gap_filter(recalls, retrieval.gap_significance, retrieval.small_result_ceiling,
                          min_keep=retrieval.temporal_min_results if bounded else 0)
        return merge_and_score(
            [kept],
            self.now,
            weight_similarity=retrieval.weight_similarity,
            weight_recency=retrieval.weight_recency,
            weight_popularity=retrieval.weight_popularity,
            recency_window_days=retrieval.recency_window_days,
            popularity_norm=retrieval.popularity_norm,
            max_results=self.settings.prefetch.max_results,
        )

    def tools(self) -> list[BaseTool]:
        """The LangChain tools, in MEMORY_TOOL_NAMES order."""

        @tool
        async def search_memory(
            query: Annotated[str, "what to look for, in words"],
            after: Annotated[str | None, "only memories from this ISO-8601 date or time on"] = None,
            before: Annotated[str | None, "only memories up to this ISO-8601 date or time (a date: its whole day)"]
            = None,
        ) -> str:
            """Search this chat's long-term memory (earlier turns and stored notes) beyond what was recalled."""
            return _json(await self.search(query, after, before))

        @tool
        async def store_memory(
            content: Annotated[str, "the note, in full"],
            tags: Annotated[list[str] | None, "short labels to find it by"] = None,
        ) -> str:
            """Keep a note in this chat's long-term memory, verbatim, to be found later."""
            return _json(await self.store(content, tags))

        @tool
        async def promote_memory(
            key: Annotated[str, "a short name for the fact, e.g. 'dog_name'"],
            value: Annotated[str, "the fact"],
        ) -> str:
            """Save or update a lasting fact about the user; it appears in every later prompt."""
            return _json(await self.promote(key, value))

        @tool
        async def forget_fact(key: Annotated[str, "the key of the saved fact"]) -> str:
            """Remove a saved fact about the user."""
            return _json(await self.forget(key))

        @tool
        async def list_facts() -> str:
            """The facts saved about the user, by key."""
            return _json(await self.facts())

        return [search_memory, store_memory, promote_memory, forget_fact, list_facts]


def memory_tools(memory: MemoryLayers, settings: Settings, chat_id: str, user_id: str, now: float) -> list[BaseTool]:
    return MemoryToolbox(memory, settings, chat_id, user_id, now).tools()


def iso_bound(text: str | None, zone: tzinfo, which: str) -> float | None:
    """Unix seconds of an ISO-8601 date or time, or None when not given.

    A bare date means the start of that day for ``after`` and its end for ``before``; a
    time without an offset is read on the users' clock (``zone``)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        moment = datetime.combine(date.fromisoformat(text), time.min if which == "after" else time.max)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{which}={text!r} is not an ISO-8601 date or time (e.g. 2026-03-01 or 2026-03-01T14:30)"
            ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()


def _capped(hit: dict) -> dict:
    content = hit["content"]
    return hit if len(content) <= RESULT_CHARS else {**hit, "content": content[:RESULT_CHARS] + "…"}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
