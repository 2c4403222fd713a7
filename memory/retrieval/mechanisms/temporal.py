"""Temporal: the entries of a completed past period the message names ("last week", "in
March", "two weeks after the wedding"), or one the caller gives, nearest the message by meaning.
A named period is a selection in itself: its closest entries are kept whatever the test says."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from memory.retrieval.message.event_dates import FromEvent, from_event
from memory.retrieval.mechanism import Mechanism, Note, RecallRun
from memory.retrieval.message.dates import EVER, completed_past_days, completed_past_range, may_name_a_date
from memory.settings import MemorySettings, Retrieval
from memory.turns import Hit

# dateparser's cost grows fast with the text, and a date phrase sits in the first lines.
_TEMPORAL_SCAN_CHARS = 2_000


async def _find(run: RecallRun) -> list[Hit] | None:
    settings, note = run.settings, run.note
    if run.query.period is not None:
        after, before = run.query.period
        note["range"] = [_iso(after, settings), _iso(before, settings)]
    else:
        scanned = run.message[:_TEMPORAL_SCAN_CHARS]
        if not may_name_a_date(scanned):
            return None  # scored zero: no digit, no date word (most messages; checked in microseconds)
        # Parsing is pure-Python CPU work: beside the embedding it slowed both through the
        # GIL (embed 8 → 19 ms); one after the other is faster, and the search needs the vector anyway.
        await run.question.scale
        when = datetime.fromtimestamp(run.query.now, ZoneInfo(settings.prefetch.timezone))
        found = await _named_range(run, scanned, when)
        if found is None:  # scored zero: a date word or a digit, but no completed past range named
            note["range_unread"] = "a date word or a number, but no period that ended before today"
            return None
        # A range "as of" a period has no start of its own (it starts before any entry).
        after = None if found[0].date() <= EVER else found[0].timestamp()
        before = found[1].timestamp()
        note["range"] = [None if after is None else found[0].isoformat(), found[1].isoformat()]
    question = run.question
    return await question.reads.search(await question.chats, await question.scale, question.k, after, before)


async def _named_range(run: RecallRun, scanned: str, when: datetime) -> tuple[datetime, datetime] | None:
    """The completed past period the message names, if any. A period counted from an event is
    read first: dateparser reads "a month before the trip" as last month. One counted from a date
    ("the week before August 3") is read as before: what is told of that week is stamped on the
    days around the date."""
    blocking = run.question.reads.l3.run_blocking
    named = from_event(scanned)
    if named is not None and await blocking(completed_past_range, named.event, when) is not None:
        named = None
    found = None if named is None else await _counted_from_an_event(run, named, when)
    if found is None:
        rest = scanned if named is None else scanned.replace(named.phrase, " ")
        found = await blocking(completed_past_range, rest, when)
    return found


async def _counted_from_an_event(run: RecallRun, named: FromEvent, when: datetime) -> tuple[datetime, datetime] | None:
    """The completed past days of a period named by its distance from an event ("two weeks after
    the wedding"), counted from the day of the entry closest to the event's words, when that
    entry stands out (as a hit by meaning must); None otherwise."""
    chats = await run.question.chats
    scale = await run.question.ahead.measure(named.event, chats)
    nearest = await run.question.reads.search(chats, scale, 1)
    ratio = run.settings.retrieval.relevance_ratio
    if not nearest or scale.background is None or nearest[0]["distance"] > ratio * scale.background:
        run.note["range_from_event"] = f"no entry stands out for {named.event!r}"
        return None
    event_day = datetime.fromtimestamp(nearest[0]["timestamp"], when.tzinfo).date()
    run.note["range_from_event"] = f"{nearest[0]['id']} ({event_day.isoformat()})"
    return completed_past_days(*named.days(event_day), when)


def _iso(moment: float | None, settings: MemorySettings) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, ZoneInfo(settings.prefetch.timezone)).isoformat()


def _reported(note: Note) -> dict[str, Any]:
    """The period searched, [after, before] in ISO-8601 (an end left open: None; None: none named or
    given); why none was read from a date word (``range_unread``); and the entry a period counted
    from an event was counted from, or why none was (``range_from_event``)."""
    return {"range": note.get("range"), **{key: note[key] for key in ("range_unread", "range_from_event") if key in note}}


def _logged(note: Note) -> dict[str, Any]:
    # The period alone: what it was counted from names an entry, or the message's own words.
    return {"range": note.get("range")}


def _said(note: Note) -> list[str]:
    return ((["range {}…{}".format(*((end or "")[:10] for end in note["range"]))] if note.get("range") else [])
            + ([f"counted from {note['range_from_event']}"] if note.get("range_from_event") else [])
            + ([f"no range: {note['range_unread']}"] if note.get("range_unread") else []))


def _min_kept(retrieval: Retrieval) -> int:
    return retrieval.temporal_min_results


TEMPORAL = Mechanism("temporal", _find, priority=1, min_kept=_min_kept,
                     closest_kept="among the closest of the named period", reported=_reported,
                     logged=_logged, said=_said)
