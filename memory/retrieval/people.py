"""Which of a chat's people a message is about (pure): those it names ("What are Kate's hobbies?",
"what did Anna say about the venue"), and in a chat of several people the one asking when they
say "I" or "my". Names are matched word by word, in any case, a possessive's "'s" dropped: a
first name alone names its person."""

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
