"""The selection: what a recall found, chosen among and made ready to inject. Each ranked list
says which of its entries stand out (the gap test), the lists are fused and scored
(:mod:`memory.retrieval.choosing.merge`); the turns beside the best are read and placed after them
(for a statement about its speaker, the next nearest by meaning instead), and a long turn is cut
to its sentences that bear on the message. A turn's gap_filter and an explicit search both start
from a recall's :class:`~memory.retrieval.finding.recall.Recalled`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from memory.retrieval.choosing.beside import ReadTurns, with_turns_beside
from memory.retrieval.choosing.excerpts import excerpted
from memory.retrieval.choosing.merge import choose_and_explain
from memory.retrieval.choosing.next_nearest import with_next_nearest
from memory.retrieval.finding.recall import STATEMENT, Recalled
from memory.settings import MemorySettings
from memory.turns import Hit, Verdict


@dataclass(frozen=True)
class Selection:
    """What to inject, best first, why each candidate was kept or not, and what went wrong reading
    the turns beside the best ("": nothing)."""

    chosen: list[Hit]
    verdicts: list[Verdict]
    problem: str = ""


def choose(recalled: Recalled, now: float, settings: MemorySettings, limit: int) -> Selection:
    """The entries of ``recalled``'s lists that stand out, fused and scored, at most ``limit``."""
    outcome = recalled.outcome
    chosen, verdicts = choose_and_explain(
        recalled.lists, recalled.background, now, settings.retrieval, limit, recalled.ceiling,
        recalled.background_passages, bool(outcome.get("meaning_first")), bool(outcome.get("latest_first")))
    return Selection(chosen, verdicts)


async def select(recalled: Recalled, message: str, now: float, settings: MemorySettings,
                 read: ReadTurns) -> Selection:
    """What a turn injects of what its recall found (:func:`choose`), with the turns beside the
    best read with ``read`` within ``prefetch.timeout`` (without them when they are not), or for
    a statement the next nearest by meaning; a long turn cut to its excerpts."""
    retrieval = settings.retrieval
    chosen = choose(recalled, now, settings, settings.prefetch.max_results)
    if recalled.outcome.get("meaning_first") == STATEMENT:
        # As many as the turns beside the best could be, one before and one after each.
        placed, added = with_next_nearest(chosen.chosen, recalled.lists, 2 * retrieval.beside_best)
        problem = ""
    else:
        placed, added, problem = await _beside_within_deadline(chosen.chosen, settings, read)
    return Selection(excerpted(placed, message, retrieval.whole_message_chars, retrieval.excerpt_chars),
                     chosen.verdicts + added, problem)


async def _beside_within_deadline(chosen: list[Hit], settings: MemorySettings,
                                  read: ReadTurns) -> tuple[list[Hit], list[Verdict], str]:
    retrieval, deadline = settings.retrieval, settings.prefetch.timeout
    try:
        placed, added = await asyncio.wait_for(
            with_turns_beside(chosen, retrieval.beside_best, retrieval.whole_message_chars, read), deadline)
        return placed, added, ""
    except asyncio.TimeoutError:
        return chosen, [], f"the turns beside the best were not read within the turn's deadline ({deadline:g} s)"
    except Exception as exc:  # the chosen entries are injected without them
        return chosen, [], f"the turns beside the best were not read ({type(exc).__name__}: {exc})"
