"""A turn written to memory, the one way every writer of a turn takes: its messages into the chat's
L2 under its number (the ``save`` node), its exchange into L3 behind them (the ``archive`` node),
and both at once for a message whose model could not answer (:func:`write_unanswered`, for the
runner's ``keep_unanswered``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from memory.facade import Archived, Memory
from memory.turns import Exchange, Hit, Message
from nodes.state import TurnConflict, spoken_message


async def save_messages(memory: Memory, turn: Mapping[str, Any], messages: list[Message]) -> None:
    """Append the turn's messages to its chat's L2 under its number (``turn["turn"]``).

    Raises:
        TurnConflict: another turn of this chat took the number (nothing written): never let
            the archive overwrite that turn's entry.
    """
    if not await memory.save_turn(turn["chat_id"], turn["turn"], messages):
        raise TurnConflict(f"turn {turn['turn']} of chat {turn['chat_id']} was already saved by another turn")


async def archive_exchange(memory: Memory, turn: Mapping[str, Any], reply: str | None, *,
                           accessed: Iterable[Hit] = ()) -> tuple[Exchange, Archived]:
    """Archive the turn (its user's message, its speaker's name, and ``reply``, None when the model
    did not answer) verbatim in L3, at the turn's time; ``accessed``: the L3 entries it used.

    Returns:
        The exchange archived (its ``id`` is the turn's L3 entry) and how the archive went.
    """
    exchange = Exchange(chat_id=turn["chat_id"], user_id=turn["user_id"], turn=turn["turn"],
                        timestamp=turn["now"], user_text=turn["message"], assistant_text=reply,
                        name=turn.get("user_name"))
    return exchange, await memory.archive([exchange], turn["now"], accessed=accessed)


async def write_unanswered(memory: Memory, turn: Mapping[str, Any]) -> dict[str, Any]:
    """The user's message of a turn its model could not answer, kept as a turn of its own (in L2,
    and in L3 behind it, with no reply), under the chat's next number: the conversation holds it
    when the model is back.

    Returns:
        The turn as kept: ``turn`` with its number.
    Raises:
        TurnConflict: another turn of the chat took that number.
    """
    kept = {**turn, "turn": (await memory.working(turn["chat_id"], 0)).completed + 1}
    await save_messages(memory, kept, [spoken_message(kept)])
    await archive_exchange(memory, kept, None)
    return kept
