"""The ranked lists recall builds, by name, and the rule every step applies to an exact hit.

A list is named for the mechanism that built it; an entry found by several lists is reported
under the most specific (``MECHANISM_PRIORITY``).
"""

from __future__ import annotations

# Two have a role of their own in the selection: word hits (BM25 order, judged with the wider
# lexical ratio) and a named period's entries (a selection in itself: its closest are kept).
THEMATIC, WORDS, TEMPORAL, KEYS = "thematic", "lexical", "temporal", "specific_key"
EVERY_LIST = frozenset({THEMATIC, WORDS, TEMPORAL, KEYS})
# An explicit search's own list, never prefetch's: the entries holding every word searched for,
# however common (the word list skips common words, and in a small chat a name is common).
EVERY_WORD = "every_word"

# Which mechanism an entry found by several is reported under (most specific first).
MECHANISM_PRIORITY = (KEYS, TEMPORAL, THEMATIC, WORDS)


def is_exact_hit(distance: float, mechanism: str | None) -> bool:
    """Whether a hit holds a key the message names: the key lookup's hits, at distance 0. Kept
    whatever the gap test says, and scored as fully similar."""
    return distance == 0 and mechanism == KEYS
