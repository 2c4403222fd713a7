"""By person: for a message about people of the chat (:mod:`memory.retrieval.people`), the
entries nearest it by meaning among those they said, the closest few kept whatever the gap test
says (a selection in itself, as a named period is). It favours their lines without dropping the
others': the list by meaning still holds what others said about them ("How was your trip,
Kate?")."""

from __future__ import annotations

from memory.retrieval.mechanism import Mechanism, RecallRun
from memory.retrieval.people import named_people
from memory.settings import Retrieval
from memory.turns import Hit

# How deep the search by meaning looks for the people's lines: a person's lines are a share of
# the chat's, so their nearest are found among more than the list by meaning keeps.
_DEPTH = 4


async def _by_person(run: RecallRun) -> list[Hit] | None:
    question = run.question
    people = await (await question.reads.redis.working()).people(run.query.chat_id)
    speakers = named_people(run.message, people, run.query.user_id)
    if not speakers:
        return None  # scored zero: it names no one of the chat
    found = await question.reads.search(await question.chats, await question.scale, _DEPTH * question.k)
    return [hit for hit in found if hit["metadata"].get("user_id") in speakers][:question.k]


def _min_kept(retrieval: Retrieval) -> int:
    return retrieval.person_min_results


BY_PERSON = Mechanism("by_person", _by_person, priority=1, topical=True, min_kept=_min_kept,
                      closest_kept="among the closest of the named people's lines")
