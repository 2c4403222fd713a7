"""One user's memory in one chat: the verbs behind every user command.

``goat chat``'s slash commands, the Telegram bot's commands, the MCP tools and the model's
memory tools all call these, so a search, a fact kept or forgotten, or a fresh start means
the same thing wherever it is asked for. The scope (chat, user, time, settings) is fixed by
whoever builds it (a turn, a face's session): no verb takes another chat or user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from memory.budget import format_recall_line
from memory.errors import SearchFailed
from memory.lexical import Words
from memory.merge import choose_recalls
from memory.recall import EVERY_WORD, TEMPORAL, THEMATIC, RecallQuery
from memory.settings import Settings

if TYPE_CHECKING:
    from memory.facade import Memory

SEARCH_MECHANISM = "search_memory"  # how an entry found by an explicit search is labelled
RESULT_CHARS = 2_000  # per search result, so that several fit in what a reader takes in


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
        """The chat's archive searched on demand: what stands out for the query by meaning,
        selected as a turn's recalls are, and every entry holding all the words searched for
        (an explicit search is a question about words as well as meaning).

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
        if not query.strip():
            raise ValueError("query is empty")
        settings = self.settings
        zone = ZoneInfo(settings.prefetch.timezone)
        start, end = iso_bound(after, zone, "after"), iso_bound(before, zone, "before")
        if start is not None and end is not None and start > end:
            raise ValueError(f"after ({after}) is later than before ({before})")
        # The search by meaning of a turn's recall, within the period given if any. (Not its
        # word list: a word shared by a few entries, "my" or "do", is chance in a small chat.)
        bounded = start is not None or end is not None
        recalled = await self.memory.recall(RecallQuery(
            query, self.chat_id, self.user_id, self.now,
            lists={TEMPORAL if bounded else THEMATIC, EVERY_WORD},
            period=(start, end) if bounded else None, deadline=settings.tools.timeout,
        ), settings)
        if recalled.problems:
            raise SearchFailed(f"memory search failed: {'; '.join(recalled.problems)}")
        holding = recalled.lists.pop(EVERY_WORD, [])
        # Selected as a turn's lists are; a named period is a selection in itself, as for the
        # turn's temporal mechanism (its closest entries are kept whatever the test says).
        ranked = {name: [{**hit, "mechanism": SEARCH_MECHANISM} for hit in hits]
                  for name, hits in recalled.lists.items()}
        limit = settings.prefetch.max_results
        found = with_every_word(holding, choose_recalls(ranked, recalled.background, self.now,
                                                        settings.retrieval, limit), limit)
        await self.memory.archive([], self.now, accessed=found)
        words = Words(settings.words.stemmer)
        return [_result_line(hit, words.found_in(query, hit["content"])) for hit in found]

    # ---- the person's data ----------------------------------------------------------------

    async def export(self) -> dict[str, Any]:
        """Everything kept of the user, in every chat, as one JSON-able document."""
        return await self.memory.export(self.user_id)


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
    """A search result as a prompt shows an entry, capped, and the searched words it holds."""
    content = hit["content"]
    capped = hit if len(content) <= RESULT_CHARS else {**hit, "content": content[:RESULT_CHARS] + "…"}
    line = format_recall_line(capped)
    return f"{line} [words: {', '.join(matched)}]" if matched else line
