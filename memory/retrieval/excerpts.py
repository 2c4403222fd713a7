"""The lines of a long turn that bear on the message, verbatim, instead of the whole turn.

An assistant's reply runs to hundreds of tokens and a person may paste a page: a whole turn of
that kind fills the L3 slice on its own, and most of it bears on nothing asked. A message up to
``whole_chars`` long is injected whole; a longer one is cut to its sentences holding the most of
the message's words, in their order, each cut marked `` … ``, at most ``excerpt_chars`` of them.
Nothing is reworded: an excerpt is the original words, and its entry keeps the turn's id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from memory.turns import ASSISTANT_PREFIX, USER_PREFIX, Hit, turn_parts
from memory.words import Words, names_nothing, terms

CUT = " … "  # marks where an excerpt leaves words out
# A sentence ends at its stop and the space after it, or at a line's end.
# A stop after a digit ("1. Patagonia", "in 2014. Then") does not end one: a list's number stays
# with its item.
_SENTENCE = re.compile(r"[^\n]*?(?:(?<!\d)[.!?](?=\s)|\n|$)")
_WINDOW_END = re.compile(r"\s")
# A sentence longer than this is cut in windows of about this many characters, whatever the run's
# excerpt_chars: the pieces an excerpt can hold are then the same in every run, and a forget cuts
# them all out of the turns' copies (:func:`excerpt_pieces`).
_LONGEST_PIECE = 200
_folded = Words()


def query_terms(message: str) -> frozenset[str]:
    """The message's words that name something (not its language's commonest), folded as the
    word index folds them."""
    return frozenset(term for word in set(terms(message)) if not names_nothing(word) for term in _folded(word))


def excerpted(hits: Iterable[Hit], message: str, whole_chars: int, excerpt_chars: int) -> list[Hit]:
    """Each hit whose turn holds a message over ``whole_chars`` characters, with that message cut
    to its sentences holding the most of ``message``'s words (:func:`query_terms`), at most
    ``excerpt_chars`` characters of them; the others as they are.

    Args:
        hits: the entries to inject, best first.
        message: the message they are injected for.
        whole_chars: ``retrieval.whole_message_chars``.
        excerpt_chars: ``retrieval.excerpt_chars``.

    Returns:
        The hits in the same order; an excerpted one is a copy with ``content`` the excerpt and
        ``excerpt`` True.
    """
    hits = list(hits)
    if not any(_holds_a_long_message(hit["content"], whole_chars) for hit in hits):  # most chats
        return hits
    weights = term_weights(query_terms(message), [hit["content"] for hit in hits])
    found = []
    for hit in hits:
        cut = excerpt(hit["content"], weights, whole_chars, excerpt_chars)
        found.append(hit if cut == hit["content"] else {**hit, "content": cut, "excerpt": True})
    return found


def _holds_a_long_message(content: str, whole_chars: int) -> bool:
    """Whether an archived turn holds a message over ``whole_chars`` characters (one
    :func:`excerpted` would cut)."""
    return len(content) > whole_chars and any(len(text) > whole_chars for text in _messages(content))


def _messages(content: str) -> list[str]:
    """An archived turn's messages, without their labels."""
    user, reply = turn_parts(content)
    return [text for text in (None if user is None else user.removeprefix(USER_PREFIX), reply) if text is not None]


def excerpt_pieces(content: str) -> list[str]:
    """Every piece of the text an excerpt of it can hold (its messages' sentences, a long one's
    windows): what a forget cuts out of the turns' copies besides the whole text."""
    return [text[start:end] for text in _messages(content) for start, end in _sentences(text)]


def term_weights(terms: Iterable[str], texts: list[str]) -> dict[str, float]:
    """Each term weighed by how few of the texts hold it (``log(1 + texts / holding)``): the words
    every candidate shares ("file", "trip") are why they were found, and tell their sentences apart
    less than a rare one ("jumpsuit") does. A term is held where its folded form is a part of the
    lower-cased text (a stem is a prefix of its words)."""
    lowered = [text.lower() for text in texts]
    return {term: math.log(1 + len(lowered) / max(1, sum(term in text for text in lowered))) for term in terms}


def excerpt(content: str, weights: Mapping[str, float], whole_chars: int, excerpt_chars: int) -> str:
    """An archived turn (``user: …\\nassistant: …``, either alone) with each message over
    ``whole_chars`` cut as :func:`excerpted` says, its sentences scored by the ``weights`` of the
    terms they hold (:func:`term_weights`); a reply none of whose sentences holds a term is left
    out but for its label."""
    user, reply = turn_parts(content)
    parts = []
    if user is not None:
        text = user.removeprefix(USER_PREFIX)
        cut = text if len(text) <= whole_chars else _cut(text, weights, excerpt_chars, keep_first=True)
        parts.append(user[:len(user) - len(text)] + cut)
    if reply is not None:
        cut = reply if len(reply) <= whole_chars else _cut(reply, weights, excerpt_chars, keep_first=False)
        parts.append(ASSISTANT_PREFIX + (cut or CUT.strip()))
    return "\n".join(parts)


def _cut(text: str, weights: Mapping[str, float], chars: int, keep_first: bool) -> str:
    """The sentences of ``text`` holding the most weight of terms, best first until ``chars`` are
    taken (and the one after each ending in a colon), put back in their order with each gap
    marked; with none holding a term, the first sentence (``keep_first``: what a person's long
    message is about) or nothing."""
    spans = list(_sentences(text))
    scores = [sum(weights.get(term, 0.0) for term in set(_folded(text[start:end]))) for start, end in spans]
    ranked = sorted((i for i, score in enumerate(scores) if score > 0), key=lambda i: (-scores[i], i))
    if not ranked:
        ranked = [0] if keep_first and spans else []
    chosen: list[int] = []
    taken = 0
    for i in ranked:
        size = spans[i][1] - spans[i][0]
        if chosen and taken + size > chars:
            continue
        chosen.append(i)
        taken += size
    # A sentence that ends in a colon introduces what follows it (a reply's list): its first item too.
    chosen += [i + 1 for i in chosen if text[spans[i][1] - 1] == ":" and i + 1 < len(spans) and i + 1 not in chosen]
    return _joined(text, [spans[i] for i in sorted(set(chosen))])


def _sentences(text: str) -> Iterable[tuple[int, int]]:
    """(start, end) of each sentence, without its surrounding space; one longer than
    ``_LONGEST_PIECE`` in windows of about that many characters, cut at a space."""
    longest = _LONGEST_PIECE
    for match in _SENTENCE.finditer(text):
        start, end = match.start(), match.end()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        while end - start > longest:
            space = _WINDOW_END.search(text, start + longest // 2, start + longest)
            window_end = space.start() if space else start + longest
            yield start, window_end
            start = window_end
            while start < end and text[start].isspace():
                start += 1
        if end > start:
            yield start, end


def _joined(text: str, spans: list[tuple[int, int]]) -> str:
    """The spans of ``text`` in order, a cut marked before, between and after them wherever words
    are left out."""
    if not spans:
        return ""
    pieces = [CUT.lstrip() if text[:spans[0][0]].strip() else ""]
    for number, (start, end) in enumerate(spans):
        if number and text[spans[number - 1][1]:start].strip():
            pieces.append(CUT)
        elif number:
            pieces.append(text[spans[number - 1][1]:start])
        pieces.append(text[start:end])
    if text[spans[-1][1]:].strip():
        pieces.append(CUT.rstrip())
    return "".join(pieces)
