"""The memory tools offered to the model: search_memory, store_memory,
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
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool

from memory.facade import MemoryScope

MEMORY_TOOL_NAMES = ("search_memory", "store_memory", "promote_memory", "forget_fact", "list_facts")
TOOLBOX_KEY = "memory_toolbox"  # where a call's MemoryToolbox rides in config["configurable"]


@dataclass(frozen=True)
class MemoryToolbox:
    """The memory tools' answers, as the model (and an MCP client) reads them, for one scope:
    whose memory (chat, user), when, with which settings."""

    scope: MemoryScope

    async def search(self, query: str, after: str | None = None, before: str | None = None) -> dict[str, Any]:
        """``{"results": [line, …]}``, best first (:meth:`MemoryScope.search`); or no results and
        a note saying nothing stands out."""
        found = await self.scope.search(query, after, before)
        return {"results": found} if found else {"results": [], "note": "nothing in memory stands out for this query"}

    async def store(self, content: str, tags: list[str] | None = None) -> dict[str, Any]:
        return {"stored": await self.scope.store(content, tags)}

    async def promote(self, key: str, value: str) -> dict[str, Any]:
        tokens = await self.scope.remember(key, value)
        return {"saved": {key.strip(): value.strip()}, "facts_tokens": tokens,
                "facts_token_limit": self.scope.settings.budget.l1_facts_max_tokens}

    async def forget(self, key: str) -> dict[str, Any]:
        if not await self.scope.forget_fact(key):
            raise LookupError(f"no fact is saved under the key {key!r}")
        return {"forgotten": key}

    async def facts(self) -> dict[str, Any]:
        return {"facts": await self.scope.facts()}

    def run_config(self) -> RunnableConfig:
        """The config to invoke a memory tool with, for it to act for this toolbox's turn."""
        return {"configurable": {TOOLBOX_KEY: self}}


def _toolbox(config: RunnableConfig) -> MemoryToolbox:
    toolbox = (config.get("configurable") or {}).get(TOOLBOX_KEY)
    if not isinstance(toolbox, MemoryToolbox):
        raise RuntimeError("a memory tool acts for a turn: invoke it with config=MemoryToolbox(scope).run_config()")
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


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
