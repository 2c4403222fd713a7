"""Whether a message asks for the newest of what was told: "what am I currently reading?",
"where did I go on my most recent trip?", "do I still run on Sundays?".

A person tells a changing thing many times ("I'm reading Dune", weeks later "I started
Piranesi"): such a question wants the newest telling first, and the blend's 30-day recency
window, shorter than the time between them, cannot tell them apart. The entries that stand out
for it are injected newest first (:func:`newest_first`), before those kept as context.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from memory.turns import Hit

_ASKS_FOR_THE_LATEST = re.compile(
    r"\b(?:current(?:ly)?|now(?!\s+that\b)|nowadays|these days|latest|most recent(?:ly)?|still|any ?more|so far|"
    r"newest|up to date)\b", re.IGNORECASE)
# The message's first lines, where a question says what it asks.
QUESTION_SCAN_CHARS = 2_000


def asks_for_the_latest(message: str) -> bool:
    """Whether the message asks for the newest state of something told before."""
    return _ASKS_FOR_THE_LATEST.search(message[:QUESTION_SCAN_CHARS]) is not None


def newest_first(chosen: list[Hit], stands_out: Collection[str]) -> list[Hit]:
    """The chosen entries that stand out (their ids in ``stands_out``), newest first, then the
    others (context) in their order.

    Args:
        chosen: the entries to inject, best first.
        stands_out: the ids of those that stand out in some list.

    Returns:
        The same entries, reordered.
    """
    relevant = sorted((hit for hit in chosen if hit["id"] in stands_out), key=lambda hit: -hit["timestamp"])
    return relevant + [hit for hit in chosen if hit["id"] not in stands_out]
