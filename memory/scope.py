"""MemoryScope: the door of one user in one chat, the verbs behind every user command.

``goat chat``'s slash commands, the Telegram bot's commands, the MCP tools and the model's
memory tools all call them, so a search, a fact kept or forgotten, or a fresh start means the
same thing wherever it is asked for. Its chat, user, time and settings are fixed by whoever
builds it (a turn, a face's session): no verb takes another chat or user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from memory.errors import SearchFailed
from memory.retrieval.explicit_search import Found, result_line, search_on_demand
from memory.retrieval.recall import RecallQuery, Recalled
from memory.settings import Settings

if TYPE_CHECKING:
    from memory.facade import Memory


@dataclass(frozen=True)
class MemoryScope:
    """The memory of one user in one chat, at one time, with one run's settings."""

    memory: Memory
    settings: Settings
    chat_id: str
    user_id: str
    now: float

    # ---- L1 -------------------------------------------------------------------------------

    async def facts(self) -> dict[str, str]:
        """The user's facts, by key."""
        return await self.memory.facts(self.user_id)

    async def remember(self, key: str, value: str) -> int:
        """Keep (or update) one of the user's facts.

        Returns:
            The facts block's tokens with it.
        Raises:
            FactsFull: the facts would grow past ``budget.l1_facts_max_tokens`` (nothing written).
            ValueError: an empty or malformed key or value.
        """
        return await self.memory.remember(self.user_id, key, value, self.settings.budget.l1_facts_max_tokens)

    async def forget_fact(self, key: str) -> bool:
        """Delete one of the user's facts. Returns False when none had that key."""
        return await self.memory.forget_fact(self.user_id, key)

    # ---- L2 and L3 ------------------------------------------------------------------------

    async def start_afresh(self) -> None:
        """Start the chat's recent conversation (L2) afresh; the archive (L3) keeps every turn."""
        await self.memory.start_afresh(self.chat_id)

    async def store(self, content: str, tags: list[str] | None = None) -> str:
        """Keep a note in the chat's archive, verbatim. Returns its id."""
        return await self.memory.store_memory(self.chat_id, self.user_id, content, tags, self.now)

    async def search(self, query: str, after: str | None = None, before: str | None = None) -> list[str]:
        """The chat's archive searched on demand (:meth:`found`), as lines.

        Args:
            query: what to look for, in words.
            after: only entries from this ISO-8601 date or time on.
            before: only entries up to this ISO-8601 date or time (a date: its whole day).
        Returns:
            One line per entry found, best first, as a prompt shows it (capped), followed by
            the searched words it holds; empty when nothing stands out.
        Raises:
            ValueError: an empty query, or dates that are not ISO-8601 or out of order.
            SearchFailed: a backend failed or missed ``tools.timeout``.
        """
        return [result_line(found.hit, found.words) for found in await self.found(query, after, before)]

    async def found(self, query: str, after: str | None = None, before: str | None = None) -> list[Found]:
        """The chat's archive searched on demand: what stands out for the query by meaning,
        selected as a turn's recalls are, and every entry holding all the words searched for
        (an explicit search is a question about words as well as meaning). What it finds
        counts as used (its popularity in later turns' scores). The turns waiting to be
        archived behind their replies are written first, for up to half of ``tools.timeout``
        (the search has the rest: a tool call is given ``tools.timeout`` in all), so the turn
        just answered is found.

        Args:
            query, after, before: as :meth:`search` takes them.
        Returns:
            The entries found, best first, at most ``prefetch.max_results``: each with the
            searched words it holds and why it was kept.
        Raises:
            ValueError, SearchFailed: as :meth:`search` raises them.
        """
        found = await search_on_demand(self._recall_written_through, RecallQuery(
            query, self.chat_id, self.user_id, self.now), after, before, self.settings)
        await self.memory.archive([], self.now, accessed=[each.hit for each in found])
        return found

    async def _recall_written_through(self, query: RecallQuery, settings: Settings) -> Recalled:
        """The memory's recall, once the turns waiting behind their replies are written (the
        turn just answered is found), within the query's deadline all told."""
        started, deadline = time.monotonic(), settings.tools.timeout if query.deadline is None else query.deadline
        try:
            await self.memory.write_archive_through(deadline / 2)
        except Exception as exc:
            raise SearchFailed(f"memory search failed: the turns waiting for the archive could not be read "
                               f"({type(exc).__name__}: {exc})") from exc
        left = deadline - (time.monotonic() - started)
        return await self.memory.recall(replace(query, deadline=left), settings)

    # ---- the person's data ----------------------------------------------------------------

    async def export(self) -> dict[str, Any]:
        """Everything kept of the user, in every chat, as one JSON-able document."""
        return await self.memory.export(self.user_id)
