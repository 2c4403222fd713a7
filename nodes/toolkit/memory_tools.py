"""The memory tools offered to the model (SPEC §8): search_memory, store_memory,
promote_memory, forget_fact, list_facts.

The tools are built once per process. Whose memory a call touches (chat, user), when and
with which settings come from the turn, as a :class:`MemoryToolbox` in the call's
RunnableConfig (:meth:`MemoryToolbox.run_config`), never from the model: the model sees
and fills in only the documented arguments. Each returns JSON text; a refusal or a bad
argument raises, and the tools node hands the model a JSON error instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool

from memory.budget import format_recall_line
from memory.facade import Memory
from memory.lexical import Words
from memory.merge import choose_recalls
from memory.recall import EVERY_WORD, TEMPORAL, THEMATIC, RecallQuery
from memory.settings import Settings

MEMORY_TOOL_NAMES = ("search_memory", "store_memory", "promote_memory", "forget_fact", "list_facts")
SEARCH_MECHANISM = "search_memory"
TOOLBOX_KEY = "memory_toolbox"  # where a call's MemoryToolbox rides in config["configurable"]
# Per entry in search results, so that several fit in what the model reads.
RESULT_CHARS = 2_000


@dataclass(frozen=True)
class MemoryToolbox:
    """What the memory tools do for one turn: whose memory (chat, user), when, with which settings."""

    memory: Memory
    settings: Settings
    chat_id: str
    user_id: str
    now: float

    async def search(self, query: str, after: str | None = None, before: str | None = None) -> dict[str, Any]:
        """L3 on demand, in the turn's memory scope: what stands out for the query by meaning,
        selected and scored as prefetch's recalls are, and every entry holding all the words
        searched for (an explicit search is a question about words as well as meaning).

        Args:
            query: what to look for, in words.
            after: only entries from this ISO-8601 date or time on.
            before: only entries up to this ISO-8601 date or time (a date: its whole day).
        Returns:
            ``{"results": [line, …]}``, best first, each line as memory shows an entry, followed
            by the searched words it holds; or no results and a note saying nothing stands out.
        """
        if not query.strip():
            raise ValueError("query is empty")
        memory, settings = self.memory, self.settings
        zone = ZoneInfo(settings.prefetch.timezone)
        start, end = iso_bound(after, zone, "after"), iso_bound(before, zone, "before")
        if start is not None and end is not None and start > end:
            raise ValueError(f"after ({after}) is later than before ({before})")
        # The search by meaning of prefetch's pipeline, within the period given if any. (Not its
        # word list: a word shared by a few entries, "my" or "do", is chance in a small chat.)
        bounded = start is not None or end is not None
        recalled = await memory.recall(RecallQuery(
            query, self.chat_id, self.user_id, self.now,
            lists={TEMPORAL if bounded else THEMATIC, EVERY_WORD},
            period=(start, end) if bounded else None, deadline=settings.tools.timeout,
        ), settings)
        if recalled.problems:
            raise RuntimeError(f"memory search failed: {'; '.join(recalled.problems)}")
        holding = recalled.lists.pop(EVERY_WORD, [])
        # Selected as prefetch's lists are; a named period is a selection in itself, as for
        # prefetch's temporal mechanism (its closest entries are kept whatever the test says).
        ranked = {name: [{**hit, "mechanism": SEARCH_MECHANISM} for hit in hits]
                  for name, hits in recalled.lists.items()}
        limit = settings.prefetch.max_results
        chosen = choose_recalls(ranked, recalled.background, self.now, settings.retrieval, limit)
        found = with_every_word(holding, chosen, limit)
        await memory.archive([], self.now, accessed=found)
        if not found:
            return {"results": [], "note": "nothing in memory stands out for this query"}
        words = Words(settings.words.stemmer)
        return {"results": [_result_line(hit, words.found_in(query, hit["content"])) for hit in found]}

    async def store(self, content: str, tags: list[str] | None = None) -> dict[str, Any]:
        return {"stored": await self.memory.store_memory(self.chat_id, self.user_id, content, tags, self.now)}

    async def promote(self, key: str, value: str) -> dict[str, Any]:
        limit = self.settings.budget.l1_facts_max_tokens
        tokens = await self.memory.remember(self.user_id, key, value, limit)
        return {"saved": {key.strip(): value.strip()}, "facts_tokens": tokens, "facts_token_limit": limit}

    async def forget(self, key: str) -> dict[str, Any]:
        if not (await self.memory.forget(user_id=self.user_id, fact=key)).facts:
            raise LookupError(f"no fact is saved under the key {key!r}")
        return {"forgotten": key}

    async def facts(self) -> dict[str, Any]:
        return {"facts": await self.memory.facts(self.user_id)}

    def run_config(self) -> RunnableConfig:
        """The config to invoke a memory tool with, for it to act for this toolbox's turn."""
        return {"configurable": {TOOLBOX_KEY: self}}


def _toolbox(config: RunnableConfig) -> MemoryToolbox:
    toolbox = (config.get("configurable") or {}).get(TOOLBOX_KEY)
    if not isinstance(toolbox, MemoryToolbox):
        raise RuntimeError("a memory tool acts for a turn: invoke it with config=MemoryToolbox(...).run_config()")
    return toolbox


@tool
async def search_memory(
    query: Annotated[str, "what to look for, in words"],
    after: Annotated[str | None, "only memories from this ISO-8601 date or time on"] = None,
    before: Annotated[str | None, "only memories up to this ISO-8601 date or time (a date: its whole day)"] = None,
    *,
    config: RunnableConfig,
) -> str:
    """Search this chat's long-term memory (earlier turns and stored notes) beyond what was recalled."""
    return _json(await _toolbox(config).search(query, after, before))


@tool
async def store_memory(
    content: Annotated[str, "the note, in full"],
    tags: Annotated[list[str] | None, "short labels to find it by"] = None,
    *,
    config: RunnableConfig,
) -> str:
    """Keep a note in this chat's long-term memory, verbatim, to be found later."""
    return _json(await _toolbox(config).store(content, tags))


@tool
async def promote_memory(
    key: Annotated[str, "a short name for the fact, e.g. 'dog_name'"],
    value: Annotated[str, "the fact"],
    *,
    config: RunnableConfig,
) -> str:
    """Save or update a lasting fact about the user; it appears in every later prompt."""
    return _json(await _toolbox(config).promote(key, value))


@tool
async def forget_fact(key: Annotated[str, "the key of the saved fact"], *, config: RunnableConfig) -> str:
    """Remove a saved fact about the user."""
    return _json(await _toolbox(config).forget(key))


@tool
async def list_facts(*, config: RunnableConfig) -> str:
    """The facts saved about the user, by key."""
    return _json(await _toolbox(config).facts())


# In MEMORY_TOOL_NAMES order.
MEMORY_TOOLS: tuple[BaseTool, ...] = (search_memory, store_memory, promote_memory, forget_fact, list_facts)


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


def with_every_word(holding: list[dict], chosen: list[dict], limit: int) -> list[dict]:
    """The search's results, at most ``limit``: every entry ``holding`` the searched words
    (closest first; at most ``limit`` of them), and as many others of ``chosen`` as fit, in
    their order. Each entry holding the words goes before the first of those farther from the
    query than it: it leads when nothing else is closer."""
    holding = holding[:limit]
    held = {hit["id"] for hit in holding}
    others = [hit for hit in chosen if hit["id"] not in held][: limit - len(holding)]
    placed: list[dict] = []
    for hit in holding:
        while others and others[0]["distance"] < hit["distance"]:
            placed.append(others.pop(0))
        placed.append(hit)
    return placed + others


def _result_line(hit: dict, matched: list[str]) -> str:
    """A search result as memory shows an entry, capped, and the searched words it holds."""
    content = hit["content"]
    capped = hit if len(content) <= RESULT_CHARS else {**hit, "content": content[:RESULT_CHARS] + "…"}
    line = format_recall_line(capped)
    return f"{line} [words: {', '.join(matched)}]" if matched else line


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
