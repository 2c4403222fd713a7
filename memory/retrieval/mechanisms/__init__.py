"""The retrieval mechanisms: one module each, registered here. Recall runs every registered
mechanism a query asks for, concurrently under its deadline; the selection reads each list's
rules from its mechanism (:class:`~memory.retrieval.mechanism.Mechanism`)."""

from __future__ import annotations

from memory.retrieval.mechanism import Mechanism
from memory.retrieval.mechanisms.by_person import BY_PERSON
from memory.retrieval.mechanisms.every_word import EVERY_WORD
from memory.retrieval.mechanisms.lexical import LEXICAL
from memory.retrieval.mechanisms.specific_key import SPECIFIC_KEY
from memory.retrieval.mechanisms.temporal import TEMPORAL
from memory.retrieval.mechanisms.thematic import THEMATIC

__all__ = ["BY_PERSON", "EVERY_WORD", "LEXICAL", "MECHANISMS", "SPECIFIC_KEY", "TEMPORAL", "THEMATIC", "is_exact_hit",
           "mechanism", "prefetched", "registered"]

# In the order reports name them.
MECHANISMS: tuple[Mechanism, ...] = (THEMATIC, LEXICAL, TEMPORAL, SPECIFIC_KEY, BY_PERSON, EVERY_WORD)

# A list no mechanism registered builds (an explicit search's, the turns beside the best): judged
# as a list by meaning, reported after every registered one.
_UNREGISTERED = Mechanism("unregistered", THEMATIC.find, priority=len(MECHANISMS))


def registered() -> tuple[Mechanism, ...]:
    """Every registered mechanism, in the order reports name them."""
    return MECHANISMS


def mechanism(name: str | None) -> Mechanism:
    """The registered mechanism of that name; an unregistered one's rules are a list by meaning's."""
    return next((each for each in MECHANISMS if each.name == name), _UNREGISTERED)


def prefetched() -> frozenset[str]:
    """The names of the lists a turn's recall builds."""
    return frozenset(each.name for each in MECHANISMS if each.prefetch)


def is_exact_hit(distance: float, name: str | None) -> bool:
    """Whether a hit holds a key the message names (its list's hits at distance 0 do). Kept
    whatever the gap test says, and scored as fully similar."""
    return distance == 0 and mechanism(name).exact_at_zero

