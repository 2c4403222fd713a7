"""Who may write into a chat: the one rule, for every door that writes (docs/security.md).

A chat belongs to the people already in it, its owners. A door that vouches for the chat (a live
turn of the bot, `goat chat` or a server run, MCP's chat and user, the operator's `goat import
--into`) always writes, and its writer is one of the owners from then on: a Telegram group is
everyone's who talks there. An import writes only into a chat that holds no one else's turns, and
its people become owners. On a shared page (goat web with server tokens) an import is a claim: its
importer chose the id, which may be someone else's (a Telegram chat's id is its user's), so the
first person vouched for there who is not among the claimants takes the chat, and the claims go
with what they wrote, before anything of that person's is written or read: the importer never
sees their turns, nor do the imported lines reach their prompt.

The caller holds the chat (its turn's lease) around :meth:`ChatOwners.enter` and the writes it
allows: a turn and an import of the same chat cannot interleave.
"""

from __future__ import annotations

from collections.abc import Mapping

from memory.errors import ChatHeldByOthers
from memory.stores.archive import Archive
from memory.stores.chat_users import CLAIMED, HELD, add_owners, holds, owners_of
from memory.stores.l3_backend import L3Backend
from memory.stores.privacy import forget_chat
from memory.stores.redis_backend import RedisBackend
from memory.turns import Standing, Writers


class ChatOwners:
    def __init__(self, redis: RedisBackend, l3: L3Backend, archive: Archive) -> None:
        """``redis``: where owners are recorded; ``l3``, ``archive``: what a chat taken from
        claims is emptied of."""
        self._redis, self._l3, self._archive = redis, l3, archive

    async def check_import(self, people: Mapping[str, frozenset[str]]) -> None:
        """Refuse an import before it writes: each chat (its people: who the import writes as)
        must hold no one else's turns.

        Raises:
            ChatHeldByOthers: the first chat that does.
        """
        for chat_id, owners in (await owners_of(self._redis, list(people))).items():
            _refuse_others(chat_id, owners.held_by, people[chat_id])

    async def enter(self, chat_id: str, writers: Writers) -> None:
        """The writers are owners of the chat from now on, as their standing allows (the caller
        holds the chat): vouched for, always, a chat only strangers' claims are in emptied first;
        else only where no one else is.

        Raises:
            ChatHeldByOthers: an import, into a chat holding another person's turns.
        """
        people = writers.people
        if writers.standing is Standing.VOUCHED and len(people) == 1 and await holds(self._redis, chat_id, *people):
            return  # every turn after a person's first in the chat: one read
        owners = (await owners_of(self._redis, [chat_id]))[chat_id]
        held_by = owners.held_by
        unrecorded = {} if owners.recorded else held_by  # recorded now, with the newcomers
        if writers.standing is not Standing.VOUCHED:
            _refuse_others(chat_id, held_by, people)
        elif held_by and HELD not in held_by.values() and not people & held_by.keys():
            # Claims alone, none of these people's: the id was theirs, not the importers'.
            await forget_chat(self._redis, self._l3, self._archive, chat_id)
            held_by = unrecorded = {}
        how = CLAIMED if writers.standing is Standing.CLAIMED else HELD
        if (added := {person: how for person in people if held_by.get(person) not in (HELD, how)}) or unrecorded:
            await add_owners(self._redis, chat_id, {**unrecorded, **added})


def _refuse_others(chat_id: str, held_by: Mapping[str, str], people: frozenset[str]) -> None:
    if held_by.keys() - people:
        raise ChatHeldByOthers(chat_id)

