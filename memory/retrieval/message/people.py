"""Which of a chat's people a message is about (pure): those it names ("What are Kate's hobbies?",
"what did Anna say about the venue"), and in a chat of several people the one asking when they
say "I" or "my". Names are matched word by word, in any case, a possessive's "'s" dropped: a
first name alone names its person. A person is not always called by the name their account
gives ("Emi" is called Kate): a name the message holds that is no one's (:func:`unknown_names`)
is someone's when the chat's lines show it, as people use names (:func:`whose_name`)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_POSSESSIVE = re.compile(r"['’]s$")
SELF_WORDS = frozenset({"i", "me", "my", "mine", "myself", "i'm", "i've", "i'd", "i'll", "i’m", "i’ve", "i’d",
                        "i’ll"})


def _words(text: str) -> set[str]:
    return {_POSSESSIVE.sub("", word.lower()) for word in _WORD.findall(text)}


def named_people(message: str, people: Mapping[str, str], asker: str) -> list[str]:
    """The user ids of the chat's ``people`` (user id -> name) the message is about, in the
    chat's order: each one a word of whose name it holds, and ``asker`` when it says "I" or "my"
    in a chat of several people (in a chat of one, every line is theirs: nothing to favour)."""
    said = _words(message)
    named = [user_id for user_id, name in people.items()
             if any(len(word) > 1 and word in said for word in _words(name) - SELF_WORDS)]
    if len(people) > 1 and asker in people and asker not in named and said & SELF_WORDS:
        named.append(asker)
    return named


def without_names(message: str, people: Mapping[str, str]) -> str:
    """The message with the words of its people's names left out (a possessive's "'s" with them):
    their lines seldom hold their own names, which only pull a search toward lines addressed to
    them."""
    names = {word for name in people.values() for word in _words(name) - SELF_WORDS if len(word) > 1}
    kept = [word for word in _WORD.findall(message) if _POSSESSIVE.sub("", word.lower()) not in names]
    return " ".join(kept)


def unknown_names(message: str, people: Mapping[str, str]) -> list[str]:
    """The capitalised words past the message's first that are no name of its people: names of
    someone the chat may call otherwise (or places, brands…: the chat's lines tell)."""
    known = {word for name in people.values() for word in _words(name)}
    words = _WORD.findall(message)[1:]
    found = [_POSSESSIVE.sub("", word) for word in words if word[:1].isupper() and word[1:].islower()]
    return list(dict.fromkeys(word for word in found if len(word) > 2 and word.lower() not in known))


# How people use a name in a chat: greeting or addressing someone by it ("Hey Kate!", "so true
# Kate!", "Kate, look"), or giving it as their own ("I'm Kate").
_GREETINGS = ("hi|hey|hello|hiya|heya|yo|thanks|thank you|thx|bye|goodnight|good night|morning|good morning|"
              "night|love you|miss you|sorry|congrats|congratulations|dear|oh|ok|okay|haha|omg|wow|yes|yeah|no")
_OWN = "i'm|i’m|i am|im|my name is|my name's|my name’s|call me"


def whose_name(name: str, lines: list[tuple[str, str]], people: Mapping[str, str]) -> str | None:
    """Whose ``name`` is, by the chat's ``lines`` holding it ((speaker's user id, text)): the
    speaker who gives it as their own, else, in a chat of two, the other of the one who addresses
    someone by it (twice at least, and at least three times as often as the other does); None
    when the lines do not tell."""
    word = re.escape(name)
    addressed = re.compile(rf"(?i:\b(?:{_GREETINGS}))[\s,!.]+{word}\b|,\s*{word}\s*[!?.…]*\s*$|\b{word}\s*[!?]+\s*$|^{word}\s*[,!]")
    own = re.compile(rf"(?i:\b(?:{_OWN}))\s+{word}\b")
    counts: dict[str, int] = {user_id: 0 for user_id in people}
    for speaker, text in lines:
        if own.search(text) and speaker in people:
            return speaker
        if speaker in counts and addressed.search(text):
            counts[speaker] += 1
    if len(people) != 2:
        return None  # in a group, who is addressed is not who speaks
    (first, once), (second, twice) = counts.items()
    if max(once, twice) >= 2 and max(once, twice) >= 3 * min(once, twice):
        return second if once > twice else first
    return None
