"""The turns just before and after the best entries chosen, injected after what was chosen.

A conversation tells an event over a few turns: it is announced in one, then named, dated or
answered in the next, and a question's words often match only one of them ("adopting Buddy":
the turn naming the dog, not the one telling of the shelter before it). A turn in another
language than the one it is beside is taken for another telling, not this one's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from memory.retrieval.choosing.excerpts import holds_a_long_message
from memory.turns import Hit, Verdict, archive_id, turn_parts
from memory.words import reads_as_english

BESIDE = "beside"  # the mechanism of an entry injected beside a chosen one
# Reads archived turns by id (the chats they are in, their ids); one the chats lack is left out.
ReadTurns = Callable[[list[str], list[str]], Awaitable[list[Hit]]]


def turn_place(hit: Hit) -> tuple[str, int] | None:
    """(chat, turn number) of an archived turn; None for entries that are not turns."""
    metadata = hit.get("metadata") or {}
    turn, chat = metadata.get("turn"), metadata.get("chat_id")
    return (chat, int(turn)) if isinstance(turn, int) and chat is not None else None


def wanted_beside(chosen: list[Hit], best: int, whole_chars: int) -> dict[str, str]:
    """The turns to read beside the ``best`` first chosen entries, but for one holding a message
    over ``whole_chars`` characters: a long reply or pasted page tells its matter whole, and the
    turns beside it are as long and bear on it less than a short line's do. A lone message (a line
    of a chat between people) counts as half an exchange: twice as many of them get theirs.

    Args:
        chosen: what gap_filter chose, best first.
        best: ``retrieval.beside_best``.
        whole_chars: ``retrieval.whole_message_chars``.

    Returns:
        Id of the turn just before or after one of the best -> id of that best entry, in the
        order they would be injected; none already chosen.
    """
    chosen_ids = {hit["id"] for hit in chosen}
    wanted: dict[str, str] = {}
    counted = 0.0
    for hit in chosen:
        if counted >= best:
            break
        counted += 0.5 if None in turn_parts(hit["content"]) else 1.0
        if (place := turn_place(hit)) is None or holds_a_long_message(hit["content"], whole_chars):
            continue
        chat, turn = place
        for next_to in (archive_id(chat, turn - 1), archive_id(chat, turn + 1)):
            if next_to not in chosen_ids:
                wanted.setdefault(next_to, hit["id"])
    return wanted


def placed_beside(chosen: list[Hit], found: list[Hit], wanted: dict[str, str]) -> list[Hit]:
    """``chosen``, then each turn found that reads as the same language as the entry it is
    beside. They come last, scored as the last chosen: context for the best, not rivals of the
    rest, and the first a tight budget leaves out.

    Args:
        chosen: what gap_filter chose, best first.
        found: the turns read of :func:`wanted_beside`'s ids (one the chat lacks is not among them).
        wanted: :func:`wanted_beside`'s answer.

    Returns:
        The entries to inject, best first.
    """
    by_id = {hit["id"]: hit for hit in chosen}
    read = {hit["id"]: hit for hit in found}
    floor = chosen[-1].get("blended_score", 0.0) if chosen else 0.0
    return chosen + [
        {**read[next_to_id], "mechanism": BESIDE, "mechanisms": [BESIDE], "blended_score": floor,
         "beside": beside_id}
        for next_to_id, beside_id in wanted.items()
        if next_to_id in read and beside_id in by_id
        and reads_as_english(read[next_to_id]["content"]) == reads_as_english(by_id[beside_id]["content"])]


def beside_verdicts(placed: list[Hit]) -> list[Verdict]:
    """Why each turn placed beside a chosen entry is injected, for whoever steps the turn.

    Args:
        placed: :func:`placed_beside`'s answer.

    Returns:
        One kept verdict per turn injected beside another, naming that entry.
    """
    number = {hit["id"]: place[1] for hit in placed if (place := turn_place(hit)) is not None}
    return [{"list": BESIDE, "id": hit["id"], "distance": 0.0, "kept": True,
             "why": f"the turn just {'before' if number.get(hit['id'], 0) < number.get(hit['beside'], 0) else 'after'} "
                    f"{hit['beside']}, one of the best"}
            for hit in placed if "beside" in hit]


async def with_turns_beside(chosen: list[Hit], best: int, whole_chars: int,
                            read: ReadTurns) -> tuple[list[Hit], list[Verdict]]:
    """The entries chosen, then the turns just before and after the ``best`` first (as
    :func:`wanted_beside` picks them and :func:`placed_beside` places them), read with ``read``;
    and a kept verdict for each turn placed so."""
    wanted = wanted_beside(chosen, best, whole_chars)
    if not wanted:
        return chosen, []
    chats = sorted({place[0] for hit in chosen[:best] if (place := turn_place(hit)) is not None})
    placed = placed_beside(chosen, await read(chats, list(wanted)), wanted)
    return placed, beside_verdicts(placed)
