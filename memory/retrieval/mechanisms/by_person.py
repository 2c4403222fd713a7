"""By person: for a message about people of the chat (:mod:`memory.retrieval.message.people`), the
entries nearest it by meaning among those they said, the closest few kept whatever the gap test
says (a selection in itself, as a named period is). It favours their lines without dropping the
others': the list by meaning still holds what others said about them ("How was your trip,
Kate?"). Their lines seldom hold their own names, so they are ranked against the message without
them."""

from __future__ import annotations

from memory.retrieval.mechanism import Mechanism, RecallRun
from memory.retrieval.message.people import named_people, unknown_names, whose_name, without_names
from memory.settings import Retrieval
from memory.turns import USER_PREFIX, Hit

# How deep the search by meaning looks for the people's lines: a person's lines are a share of
# the chat's, so their nearest are found among more than the list by meaning keeps.
_DEPTH = 4
# A name that is no one's: how many of the chat's lines holding it are read to tell whose it is,
# and how many such names of a message are looked up.
_NAME_LINES, _NAMES_LOOKED_UP = 64, 2


async def _find(run: RecallRun) -> list[Hit] | None:
    question = run.question
    people = await (await question.reads.redis.working()).people(run.query.chat_id)
    if len(people) < 2:
        return None  # a chat of one: every line is theirs
    speakers = named_people(run.message, people, run.query.user_id)
    named = [speaker for speaker in speakers if speaker != run.query.user_id]
    chats = await question.chats
    for name in unknown_names(run.message, people)[:_NAMES_LOOKED_UP]:
        lines = await question.reads.holding_words(chats, name, await question.scale, _NAME_LINES)
        owner = whose_name(name, [(str(hit["metadata"].get("user_id")), hit["content"].removeprefix(USER_PREFIX))
                                  for hit in lines], people)
        if owner is not None and owner not in speakers:
            speakers.append(owner)
            named.append(owner)
            people = {**people, owner: f"{people[owner]} {name}"}  # left out of the query with theirs
    if not speakers:
        return None  # scored zero: it names no one of the chat
    asked = without_names(run.message, people)
    scale = await question.ahead.measure(asked, chats) if asked.strip() else await question.scale
    found = await question.reads.search(chats, scale, _DEPTH * question.k)
    theirs = [hit for hit in found if hit["metadata"].get("user_id") in speakers][:question.k]
    if named or scale.background is None:
        return theirs
    # The asker alone ("how do I…"): their lines are favoured where they bear on the message, not
    # brought in whatever it is.
    ceiling = run.settings.retrieval.relevance_ratio * scale.background
    return [hit for hit in theirs if hit["distance"] <= ceiling]


def _min_kept(retrieval: Retrieval) -> int:
    return retrieval.person_min_results


BY_PERSON = Mechanism("by_person", _find, priority=1, topical=True, min_kept=_min_kept,
                      closest_kept="among the closest of the named people's lines")
