"""What a retrieval mechanism is (:class:`Mechanism`): one ranked list recall builds, with how
it runs and every rule the selection applies to its list. The mechanisms themselves are
:mod:`memory.retrieval.mechanisms`, one module each, in one registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memory.settings import MemorySettings, Retrieval
from memory.turns import Hit, MechanismNote, RecallOutcome

if TYPE_CHECKING:  # the question's search imports the mechanisms' names
    from memory.retrieval.finding.question import Question

# What a mechanism read of the message (a period, keys), as it noted it: its own fields.
Note = dict[str, Any]
# The question's two shared searches (the L2.5 cache keeps both), as a mechanism names the one it reads.
BY_MEANING, BY_WORDS = "by meaning", "by words"


@dataclass(frozen=True)
class RecallQuery:
    """What to recall for: a message (or the model's query), whose memory, and when."""

    text: str
    chat_id: str
    user_id: str
    now: float
    # The ranked lists to build, by name; None: every mechanism a turn's prefetch runs. A period
    # given by the caller (unix seconds, inclusive; either end may be None) makes the temporal
    # list that period's, instead of one named in the text.
    lists: Collection[str] | None = None
    period: tuple[float | None, float | None] | None = None
    deadline: float | None = None  # seconds; None: prefetch.timeout


@dataclass
class RecallRun:
    """One recall under way, as each mechanism reads it: its query, its settings, what its
    question's search shares (the chats, the scale, the searches by meaning and by words), the
    outcome, and the mechanism's own note of what it read (a period, keys)."""

    query: RecallQuery
    settings: MemorySettings
    question: Question
    outcome: RecallOutcome
    note: Note = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.query.text


def _relevance_ratio(retrieval: Retrieval, hit: Hit, meaning_first: bool) -> float:
    return retrieval.relevance_ratio


def _none_kept(retrieval: Retrieval) -> int:
    return 0


def _full_weight(retrieval: Retrieval, meaning_first: bool) -> float:
    return 1.0


def _as_noted(note: Note) -> dict[str, Any]:
    return dict(note)


def _said_as_noted(note: Note) -> list[str]:
    return [f"{key} {value}" for key, value in note.items()]


@dataclass(frozen=True)
class Mechanism:
    """One ranked list recall builds: how it runs, and how the selection
    (:mod:`memory.retrieval.choosing.merge`, :mod:`memory.retrieval.choosing.gap`) treats its hits.

    A new signal is a module defining one of these and one line in the registry
    (:data:`memory.retrieval.mechanisms.MECHANISMS`): recall runs it under the deadline, the
    selection judges and fuses its list by these attributes, and every report names it.
    """

    name: str
    """The list's name, as reports show it and as a hit's ``mechanism`` says."""
    find: Callable[[RecallRun], Awaitable[list[Hit] | None]]
    """Its ranked list for the run, closest first; None when it scores zero for the message
    (it did not fire). Run concurrently with the others, abandoned at the deadline."""
    priority: int
    """Which list an entry several found is reported under: the lowest (most specific) first."""
    topical: bool = False
    """Run only for a message that names something (not only greetings and function words)."""
    question_search: str | None = None
    """Which of the question's shared searches its list is (:data:`BY_MEANING`, :data:`BY_WORDS`):
    recall starts that search only when a mechanism asked for reads it."""
    prefetch: bool = True
    """Among the lists a turn builds; False: only when a caller asks for it by name."""
    ratio: Callable[[Retrieval, Hit, bool], float] = _relevance_ratio
    """The stand-out ratio for a hit (retrieval settings, hit, judged meaning first): a hit stands
    out below ratio × the background."""
    min_kept: Callable[[Retrieval], int] = _none_kept
    """How many of its closest are kept whatever the ratio says (a selection in itself)."""
    closest_kept: str = "among the closest of its list"
    """Why a hit kept by ``min_kept`` alone was kept, as a verdict says it."""
    weight: Callable[[Retrieval, bool], float] = _full_weight
    """Its ranks' weight in the fusion (retrieval settings, judged meaning first)."""
    by_distance: bool = True
    """Fused in order of distance; False: in its own order (the words' BM25)."""
    gap_without_background: bool = True
    """With no background yet, judged by the gap test; False: nothing of it stands out then."""
    exact_at_zero: bool = False
    """A hit at distance 0 holds a key the message names: kept whatever the test says, and scored
    as fully similar."""
    reported: Callable[[Note], dict[str, Any]] = _as_noted
    """Its note (``{}`` when it noted nothing) as the reports carry it, fields beside the outcome's
    (`goat inspect --json`, /why, ``diagnose_last_turn``): as noted unless it says otherwise."""
    logged: Callable[[Note], dict[str, Any]] | None = None
    """Its note as the turn log keeps it (never the message's own words); None: as reported."""
    said: Callable[[Note], list[str]] = _said_as_noted
    """Its note in a report's line (`goat inspect`, /why), phrase by phrase."""

    def rendered(self, note: Note) -> MechanismNote:
        """Its note as every report shows it, rendered once, as the recall ends."""
        reported = self.reported(note)
        return {"reported": reported, "logged": reported if self.logged is None else self.logged(note),
                "said": self.said(note)}
