"""For a statement, the next nearest entries by meaning, injected after what was chosen.

A question's event is told over a few turns, so the turns beside its best entries are injected
(:mod:`memory.retrieval.choosing.beside`). A statement about its speaker ("my boss talked me into the
weekend rota") bears on what they said before by meaning, in other words and often months
earlier ("since I turned down extra shifts, my evenings are my own"): that remark is rarely
beside the best, and more often among the next nearest by meaning that were not chosen. A
statement's tokens go to those instead, at most as many as the turns beside could have been.
"""

from __future__ import annotations

from collections.abc import Mapping

from memory.retrieval.mechanisms import THEMATIC
from memory.turns import Hit, Verdict

NEAREST = "nearest"  # the mechanism of an entry injected as one of the next nearest by meaning


def with_next_nearest(chosen: list[Hit], lists: Mapping[str, list[Hit]], count: int) -> tuple[list[Hit], list[Verdict]]:
    """``chosen``, then the ``count`` entries nearest by meaning that it lacks (whether or not they
    stood out), nearest first, scored as the last chosen: after what was chosen, and the first a
    tight budget leaves out. Nothing is added when nothing was chosen (a statement that bears on
    nothing injects nothing), nor without a list by meaning (it failed or timed out).

    Args:
        chosen: what gap_filter chose, best first.
        lists: the recall's ranked lists (name -> hits, distances on the query's scale).
        count: how many to add (twice ``retrieval.beside_best``: one before and one after each best).

    Returns:
        The entries to inject, best first; and a kept verdict for each one added.
    """
    if not chosen:
        return chosen, []
    taken = {hit["id"] for hit in chosen}
    floor = chosen[-1].get("blended_score", 0.0)
    added = [{**hit, "mechanism": NEAREST, "mechanisms": [NEAREST], "blended_score": floor}
             for hit in sorted(lists.get(THEMATIC.name, []), key=lambda hit: hit["distance"]) if hit["id"] not in taken
             ][:count]
    verdicts: list[Verdict] = [{"list": NEAREST, "id": hit["id"], "distance": round(hit["distance"], 4), "kept": True,
                                "why": "among the next nearest by meaning, for a statement"} for hit in added]
    return chosen + added, verdicts
