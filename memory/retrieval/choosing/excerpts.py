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

from memory.retrieval.choosing.latest import QUESTION_SCAN_CHARS
from memory.turns import ASSISTANT_PREFIX, USER_PREFIX, Hit, turn_parts
from memory.words import Words, names_nothing, terms

CUT = " … "  # marks where an excerpt leaves words out
# A sentence ends at its stop and the space after it, or at a line's end: where a reader splits
# one, so an excerpt holds whole sentences by any count.
_SENTENCE = re.compile(r"[^\n]*?(?:[.!?](?=\s)|\n|$)")
# A list's number ("1.", "* 2.") stays with its item.
_LIST_NUMBER = re.compile(r"\W*\d{1,3}[.)]")
_WINDOW_END = re.compile(r"\s")
# A table's row ("| Sunday | Admon |") means little without the table's first row, its header.
_TABLE_ROW = re.compile(r"\s*\|")
# A question about what was said in this chat ("the trail you recommended", "our previous
# conversation"): the words it echoes sit beside the answer, so a long message's best sentence
# brings the ones either side of it.
_ASKS_BACK = re.compile(
    r"\byou(?:'ve| had| have)? (?:recommend|mention|suggest|provid|sa(?:id|y)|told|gave|give|list|shar|wr[io]te|"
    r"describ|explain|propos|came up)|\b(?:our|the|that) (?:previous|earlier|last|past|other) "
    r"(?:conversation|chat|discussion|talk|exchange)|\bremind me\b|\bwe (?:discussed|talked|spoke|chatted)\b",
    re.IGNORECASE)
# A question naming a place in a list ("the 7th job", "the fifth bottle") wants that item.
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12}
_POSITION = re.compile(
    r"\bthe (?:(\d{1,2})(?:st|nd|rd|th)|(" + "|".join(_ORDINALS) + r"))\b|(?:\bnumber|\bno\.|#) ?(\d{1,2})\b",
    re.IGNORECASE)
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
    if not any(holds_a_long_message(hit["content"], whole_chars) for hit in hits):  # most chats
        return hits
    weights = term_weights(query_terms(message), [hit["content"] for hit in hits])
    position, asks_back = list_position(message), asks_about_this_chat(message)
    found = []
    for rank, hit in enumerate(hits):
        # Only the best entry's words are widened: the question echoes one answer, not every hit.
        cut = excerpt(hit["content"], weights, whole_chars, excerpt_chars, position, asks_back and rank == 0)
        found.append(hit if cut == hit["content"] else {**hit, "content": cut, "excerpt": True})
    return found


def list_position(message: str) -> int | None:
    """The place in a list the message names ("the 7th job", "the fifth bottle"), if any."""
    match = _POSITION.search(message[:QUESTION_SCAN_CHARS])
    if match is None:
        return None
    digits, word, numbered = match.groups()
    return _ORDINALS[word.lower()] if word else int(digits or numbered)


def asks_about_this_chat(message: str) -> bool:
    """Whether the message asks back what was said before in the chat ("the trail you
    recommended", "remind me", "our previous conversation")."""
    return _ASKS_BACK.search(message[:QUESTION_SCAN_CHARS]) is not None


def holds_a_long_message(content: str, whole_chars: int) -> bool:
    """Whether an archived turn holds a message over ``whole_chars`` characters (one
    :func:`excerpted` cuts)."""
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
    return {term: math.log((len(lowered) + 1) / (sum(term in text for text in lowered) + 0.5)) for term in terms}


def excerpt(content: str, weights: Mapping[str, float], whole_chars: int, excerpt_chars: int,
            position: int | None = None, asks_back: bool = False) -> str:
    """An archived turn (``user: …\\nassistant: …``, either alone) with each message over
    ``whole_chars`` cut as :func:`excerpted` says, its sentences scored by the ``weights`` of the
    terms they hold (:func:`term_weights`); a reply none of whose sentences holds a term is left
    out but for its label. A list's item numbered ``position`` comes first; with ``asks_back``, the
    best sentence brings the ones either side of it."""
    user, reply = turn_parts(content)
    parts = []
    if user is not None:
        text = user.removeprefix(USER_PREFIX)
        cut = text if len(text) <= whole_chars else _cut(text, weights, excerpt_chars, True, position, asks_back)
        parts.append(user[:len(user) - len(text)] + cut)
    if reply is not None:
        cut = reply if len(reply) <= whole_chars else _cut(reply, weights, excerpt_chars, False, position, asks_back)
        parts.append(ASSISTANT_PREFIX + (cut or CUT.strip()))
    return "\n".join(parts)


def _cut(text: str, weights: Mapping[str, float], chars: int, keep_first: bool, position: int | None,
         asks_back: bool) -> str:
    """The sentences of ``text`` holding the most weight of terms, best first until ``chars`` are
    taken, put back in their order with each gap marked; with none holding a term, the first
    sentence (``keep_first``: what a person's long message is about) or nothing. The list item
    numbered ``position`` is taken first; what a taken sentence needs to be read is brought with it
    (:func:`_brought`)."""
    spans = list(_sentences(text))
    scores = [sum(weights.get(term, 0.0) for term in set(_folded(text[start:end]))) for start, end in spans]
    ranked = sorted((i for i, score in enumerate(scores) if score > 0), key=lambda i: (-scores[i], i))
    if not ranked:
        ranked = [0] if keep_first and spans else []
    numbered = re.compile(rf"\W*{position}[.)]\s") if position else None
    ranked = [i for i, (start, _) in enumerate(spans) if numbered and numbered.match(text, start)] + ranked
    chosen: list[int] = []
    taken = 0
    for i in ranked:
        size = spans[i][1] - spans[i][0]
        if i in chosen or chosen and taken + size > chars:
            continue
        chosen.append(i)
        taken += size
    return _joined(text, [spans[i] for i in sorted(_brought(text, spans, chosen, asks_back))])


def _brought(text: str, spans: list[tuple[int, int]], chosen: list[int], asks_back: bool) -> set[int]:
    """The chosen sentences with what each needs to be read: after one ending in a colon, its first
    item (a reply's list); before a table's row, the table's header; with ``asks_back``, the
    sentences either side of the best."""
    brought = set(chosen)
    for i in chosen:
        start, end = spans[i]
        if text[end - 1] == ":" and i + 1 < len(spans):
            brought.add(i + 1)
        if _TABLE_ROW.match(text, start):
            brought.add(_table_header(text, spans, i))
    if asks_back and chosen:
        brought |= {i for i in (chosen[0] - 1, chosen[0] + 1) if 0 <= i < len(spans)}
    return brought


def _table_header(text: str, spans: list[tuple[int, int]], row: int) -> int:
    """The first row of the table holding sentence ``row``: the rows above it, each on its own line."""
    while row > 0 and _TABLE_ROW.match(text, spans[row - 1][0]) and "\n" in text[spans[row - 1][1]:spans[row][0]]:
        row -= 1
    return row


def _sentences(text: str) -> Iterable[tuple[int, int]]:
    """(start, end) of each sentence, without its surrounding space; one longer than
    ``_LONGEST_PIECE`` in windows of about that many characters, cut at a space."""
    longest = _LONGEST_PIECE
    carried = None  # where a list's number began, its item still to come
    for match in _SENTENCE.finditer(text):
        start, end = match.start(), match.end()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start and _LIST_NUMBER.fullmatch(text, start, end) and end < len(text) and text[end] != "\n":
            carried = start if carried is None else carried
            continue
        if carried is not None:
            start, carried = carried, None
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
