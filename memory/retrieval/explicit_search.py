"""An explicit search (a user's /search, the model's search_memory tool, the Store's search):
a turn's recall and selection, plus a period named in ISO-8601 and the entries holding every
word searched for; its results as lines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, tzinfo
from zoneinfo import ZoneInfo

from memory.errors import SearchFailed
from memory.prompt.budget import format_recall_line
from memory.retrieval.mechanisms import EVERY_WORD, TEMPORAL, THEMATIC
from memory.retrieval.choosing.merge import why_kept
from memory.retrieval.finding.recall import Recalled, RecallQuery
from memory.retrieval.selection import choose
from memory.settings import MemorySettings
from memory.turns import Hit
from memory.words import Words

SEARCH_MECHANISM = "search_memory"  # how an entry found by an explicit search is labelled
EVERY_WORD_KEPT = "holds every word searched for"  # why an entry the selection did not keep is found
RESULT_CHARS = 2_000  # per search result, so that several fit in what a reader takes in


@dataclass(frozen=True)
class SearchResult:
    """An entry an explicit search found, with the searched words it holds and why it was kept."""

    hit: Hit  # blended_score when the selection scored it
    words: list[str]
    why: str


async def explicit_search(recall: Callable[[RecallQuery, MemorySettings], Awaitable[Recalled]], query: RecallQuery,
                           after: str | None, before: str | None, settings: MemorySettings) -> list[SearchResult]:
    """What stands out for the query's text by meaning, selected as a turn's recalls are, and
    every entry holding all the words searched for.

    Args:
        recall: the memory's recall.
        query: the text, whose memory and when (its lists and period are set here).
        after, before: ISO-8601 dates or times bounding the entries searched (a date: its whole day).
    Returns:
        The entries found, best first, at most ``prefetch.max_results``.
    Raises:
        ValueError: an empty query, or dates that are not ISO-8601 or out of order.
        SearchFailed: a backend failed or missed ``tools.timeout``.
    """
    if not query.text.strip():
        raise ValueError("query is empty")
    zone = ZoneInfo(settings.prefetch.timezone)
    start, end = iso_bound(after, zone, "after"), iso_bound(before, zone, "before")
    if start is not None and end is not None and start > end:
        raise ValueError(f"after ({after}) is later than before ({before})")
    # The search by meaning of a turn's recall, within the period given if any. (Not its
    # word list: a word shared by a few entries, "my" or "do", is chance in a small chat.)
    bounded = start is not None or end is not None
    recalled = await recall(replace(query, lists={(TEMPORAL if bounded else THEMATIC).name, EVERY_WORD.name},
                                    period=(start, end) if bounded else None, deadline=settings.tools.timeout),
                            settings)
    if recalled.problems:
        raise SearchFailed(f"memory search failed: {'; '.join(recalled.problems)}")
    holding = recalled.lists.pop(EVERY_WORD.name, [])
    # Selected as a turn's lists are; a named period is a selection in itself, as for the
    # turn's temporal mechanism (its closest entries are kept whatever the test says).
    ranked: dict[str, list[Hit]] = {name: [{**hit, "mechanism": SEARCH_MECHANISM} for hit in hits]
              for name, hits in recalled.lists.items()}
    # Judged as a question, whatever the message: an explicit search asks for what it names.
    limit, asked = settings.prefetch.max_results, replace(recalled, lists=ranked, outcome={
        **recalled.outcome, "meaning_first": None})
    chosen = choose(asked, query.now, settings, limit)
    words, why = Words(settings.words.stemmer), why_kept(chosen.verdicts)
    return [SearchResult(hit, words.found_in(query.text, hit["content"]), why.get(hit["id"], EVERY_WORD_KEPT))
            for hit in with_every_word(holding, chosen.chosen, limit)]


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


def with_every_word(holding: list[Hit], chosen: list[Hit], limit: int) -> list[Hit]:
    """The search's results, at most ``limit``: every entry ``holding`` the searched words
    (closest first; at most ``limit`` of them), and as many others of ``chosen`` as fit, in
    their order. Each entry holding the words goes before the first of those farther from the
    query than it: it leads when nothing else is closer."""
    holding = holding[:limit]
    held = {hit["id"] for hit in holding}
    others = [hit for hit in chosen if hit["id"] not in held][: limit - len(holding)]
    placed: list[Hit] = []
    for hit in holding:
        while others and others[0]["distance"] < hit["distance"]:
            placed.append(others.pop(0))
        placed.append(hit)
    return placed + others


def result_line(hit: Hit, matched: list[str]) -> str:
    """A search result as a prompt shows an entry, capped, and the searched words it holds."""
    content = hit["content"]
    capped = hit if len(content) <= RESULT_CHARS else {**hit, "content": content[:RESULT_CHARS] + "…"}
    line = format_recall_line(capped)
    return f"{line} [words: {', '.join(matched)}]" if matched else line
