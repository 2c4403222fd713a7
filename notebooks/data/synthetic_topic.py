"""What a topic of the synthetic chats is: the templates of a kind of storyline, and the questions
it answers in LoCoMo's categories."""

from __future__ import annotations

from dataclasses import dataclass

MULTI_HOP, TEMPORAL, OPEN_DOMAIN, SINGLE_HOP = 1, 2, 3, 4


@dataclass(frozen=True)
class Ask:
    """A question a storyline answers: from its event alone, or from the event and its follow-up."""

    category: int
    question: str
    answer: str
    needs: str = "event"  # "event" or "both"


@dataclass(frozen=True)
class Topic:
    """A kind of storyline. Templates are ``str.format`` strings over the storyline's slot values,
    ``owner`` and ``partner`` (the speakers' names), ``when``/``When`` (the event's time phrase),
    ``date`` (the date it names) and, in chatter, ``other[slot]`` (a value the storyline lacks)."""

    name: str
    label: str  # what a dated question calls the topic ("What did Maya say about {label} ...")
    slots: dict[str, tuple]  # slot -> options; an option that is a dict sets several slots
    event: tuple[str, ...]  # the owner tells it
    reaction: tuple[str, ...]  # the partner answers
    summary: str  # the event, as a dated question's answer
    asks: tuple[Ask, ...]
    chatter: tuple[tuple[str, str], ...]  # exchanges on the topic that answer nothing
    echo: tuple[tuple[str, str], ...]  # an exchange that repeats one slot value elsewhere
    # After the event: the owner comes back to it, answering nothing (recent turns on the question's words).
    callbacks: tuple[tuple[str, str], ...]
    follow_up: tuple[str, ...] = ()  # a later session: a detail, naming the event by a handle only
    follow_up_reaction: tuple[str, ...] = ()
    tally: tuple[str, str] | None = None  # (question, slot): a speaker's storylines of the topic, together
