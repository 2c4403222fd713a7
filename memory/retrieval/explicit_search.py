"""What an explicit search (a user's /search, the model's search_memory tool) adds to a turn's
recall: a period named in ISO-8601, the entries holding every word searched for, and its
results as lines (``MemoryScope.search`` in the façade runs it)."""

from __future__ import annotations

from datetime import date, datetime, time, tzinfo

from memory.prompt.budget import format_recall_line

SEARCH_MECHANISM = "search_memory"  # how an entry found by an explicit search is labelled
EVERY_WORD_KEPT = "holds every word searched for"  # why an entry the selection did not keep is found
RESULT_CHARS = 2_000  # per search result, so that several fit in what a reader takes in


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


def result_line(hit: dict, matched: list[str]) -> str:
    """A search result as a prompt shows an entry, capped, and the searched words it holds."""
    content = hit["content"]
    capped = hit if len(content) <= RESULT_CHARS else {**hit, "content": content[:RESULT_CHARS] + "…"}
    line = format_recall_line(capped)
    return f"{line} [words: {', '.join(matched)}]" if matched else line
