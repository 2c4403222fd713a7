"""The retrieval mechanisms: one module each, registered here. Recall runs every registered
mechanism a query asks for, concurrently under its deadline; the selection reads each list's
rules from its mechanism (:class:`~memory.retrieval.mechanism.Mechanism`)."""

from __future__ import annotations

from memory.retrieval.mechanism import Mechanism
from memory.retrieval.mechanisms.by_keys import BY_KEYS
from memory.retrieval.mechanisms.by_meaning import BY_MEANING
from memory.retrieval.mechanisms.by_person import BY_PERSON
from memory.retrieval.mechanisms.by_time import BY_TIME
from memory.retrieval.mechanisms.by_words import BY_WORDS
from memory.retrieval.mechanisms.every_word import EVERY_WORD

# In the order reports name them.
MECHANISMS: tuple[Mechanism, ...] = (BY_MEANING, BY_WORDS, BY_TIME, BY_KEYS, BY_PERSON, EVERY_WORD)

THEMATIC, WORDS, TEMPORAL, KEYS = BY_MEANING.name, BY_WORDS.name, BY_TIME.name, BY_KEYS.name
# A list no mechanism registered builds (an explicit search's, the turns beside the best): judged
# as a list by meaning, reported after every registered one.
_UNREGISTERED = Mechanism("unregistered", BY_MEANING.find, priority=len(MECHANISMS))


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
