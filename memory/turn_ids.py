"""A turn's id in the archive: deterministic per chat and turn, so that replaying an archive never
duplicates it."""

from __future__ import annotations

_TURN_IDS = ":turn_"  # between a chat's id and a turn's number, in the turn's archive id


def archive_id(chat_id: str, turn: int) -> str:
    """Deterministic per (chat, turn), so replaying an archive never duplicates it."""
    return f"{chat_id}{_TURN_IDS}{turn:04d}"


def is_archive_id(chat_id: str, entry_id: str) -> bool:
    """Whether ``entry_id`` has the form of the chat's turns' ids (:func:`archive_id`): a turn's,
    archived or still to come."""
    number = entry_id.removeprefix(f"{chat_id}{_TURN_IDS}")
    return number != entry_id and number.isascii() and number.isdigit()
