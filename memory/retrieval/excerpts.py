"""The lines of a long turn that bear on the message, verbatim, instead of the whole turn.

An assistant's reply runs to hundreds of tokens and a person may paste a page: a whole turn of
that kind fills the L3 slice on its own, and most of it bears on nothing asked. A message up to
``whole_chars`` long is injected whole; a longer one is cut to its sentences holding the most of
the message's words, in their order, each cut marked `` … ``, at most ``excerpt_chars`` of them.
Nothing is reworded: an excerpt is the original words, and its entry keeps the turn's id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from memory.turns import ASSISTANT_PREFIX, USER_PREFIX, Hit
from memory.words import Words, names_nothing

CUT = " … "  # marks where an excerpt leaves words out
# A sentence ends at its stop and the space after it, or at a line's end.
_SENTENCE = re.compile(r"[^\n]*?(?:[.!?](?=\s)|\n|$)")
_WINDOW_END = re.compile(r"\s")
_folded = Words()


def query_terms(message: str) -> frozenset[str]:
    """The message's words that name something (not its language's commonest), folded as the
    word index folds them."""
    return frozenset(term for word in set(re.findall(r"\w+", message.lower()))
                     if not names_nothing(word) for term in _folded(word))


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
    if all(len(hit["content"]) <= whole_chars for hit in hits):  # most chats: no message is long
        return hits
    terms = query_terms(message)
    found = []
    for hit in hits:
        cut = excerpt(hit["content"], terms, whole_chars, excerpt_chars)
        found.append(hit if cut == hit["content"] else {**hit, "content": cut, "excerpt": True})
    return found


def excerpt(content: str, terms: frozenset[str], whole_chars: int, excerpt_chars: int) -> str:
    """An archived turn (``user: …\\nassistant: …``, either alone) with each message over
    ``whole_chars`` cut as :func:`excerpted` says; a reply none of whose sentences holds a term
    is left out but for its label."""
    user, labelled, reply = content.partition(f"\n{ASSISTANT_PREFIX}")
    if not labelled:
        user, reply = (content, None) if not content.startswith(ASSISTANT_PREFIX) else (None, content)
        reply = None if reply is None else reply.removeprefix(ASSISTANT_PREFIX)
    parts = []
    if user is not None:
        text = user.removeprefix(USER_PREFIX)
        cut = text if len(text) <= whole_chars else _cut(text, terms, excerpt_chars, keep_first=True)
        parts.append(user[:len(user) - len(text)] + cut)
    if reply is not None:
        cut = reply if len(reply) <= whole_chars else _cut(reply, terms, excerpt_chars, keep_first=False)
        parts.append(ASSISTANT_PREFIX + (cut or CUT.strip()))
    return "\n".join(parts)


def _cut(text: str, terms: frozenset[str], chars: int, keep_first: bool) -> str:
    """The sentences of ``text`` holding the most of ``terms``, best first until ``chars`` are
    taken, put back in their order with each gap marked; with none holding a term, the first
    sentence (``keep_first``: what a person's long message is about) or nothing."""
    spans = list(_sentences(text, chars))
    scores = [len(terms.intersection(_folded(text[start:end]))) for start, end in spans]
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
    return _joined(text, [spans[i] for i in sorted(chosen)])


def _sentences(text: str, longest: int) -> Iterable[tuple[int, int]]:
    """(start, end) of each sentence, without its surrounding space; one longer than ``longest``
    in windows of about that many characters, cut at a space."""
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
            pieces.append(" ")
        pieces.append(text[start:end])
    if text[spans[-1][1]:].strip():
        pieces.append(CUT.rstrip())
    return "".join(pieces)
