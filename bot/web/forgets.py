"""Forgetting from the page: a turn, a chat, or everything of a person, each through the verb
every face's forget calls, and what it erased where, from what the verb reports. Every forget
ends by erasing what it deleted from the data folder's files, the graph's checkpoints included
(docs/security.md); when it could not (another process uses the embedded data folder), the report
says so in the erasure's own words."""

from __future__ import annotations

from collections.abc import Mapping

from bot.web import views
from bot.web.html import href
from bot.web.reading import Reading, Refused
from graph.replies import MEMORY_UNREACHABLE
from graph.runner import TurnRunner
from memory.errors import BackendUnavailable
from memory.facade import Memory

KINDS = ("turn", "chat", "person")
ERASED = ("then erased from the data folder's files: Redis's append-only file rewritten, Chroma's write-ahead log, "
          "full-text index and database rewritten, the vector indexes' unset bytes zeroed")


class Forgets:
    def __init__(self, runner: TurnRunner, reading: Reading) -> None:
        self.runner, self.reading = runner, reading

    @property
    def memory(self) -> Memory:
        return self.runner.services.memory

    async def fields(self, viewer: views.Viewer, given: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """What is to be forgotten, checked as the viewer's: its kind and the ids naming it."""
        what = given.get("what", "")
        if what == "turn":
            fields = {"c": given.get("c", ""), "id": given.get("id", "")}
            entry = await self.reading.entry(viewer, fields["c"], fields["id"])
            if self.reading.shared and entry["metadata"].get("user_id") != viewer.person:
                raise Refused(403, "This turn is someone else's: a turn is forgotten by whoever said it.")
            return what, fields
        if what == "chat":
            await self.reading.check_chat(viewer, chat_id := given.get("c", ""))
            return what, {"c": chat_id}
        if what == "person":
            return what, {"u": self.reading.check_person(viewer, given.get("u", ""))}
        raise Refused(404, f"Forget what? One of {', '.join(KINDS)}.")

    async def what_it_erases(self, viewer: views.Viewer, what: str, fields: dict[str, str]) -> tuple[str, str]:
        """The confirmation's words, and where cancelling goes back to."""
        if what == "turn":
            entry = await self.reading.entry(viewer, fields["c"], fields["id"])
            return (f"Turn {entry['metadata'].get('turn', entry['id'])} of chat {fields['c']} (“{views.entry_title(entry)}”):"
                    " its message and reply are deleted from the archive (L3) with their vector and words, from the "
                    "recent conversation (L2), cut out of the chat's graph checkpoints, and erased from the data "
                    "folder's files.", href("/turn", c=fields["c"], id=fields["id"]))
        if what == "chat":
            held = await self.reading.archived(fields["c"], viewer.person)
            return (f"Chat {fields['c']}, whole: the {held} turn(s) and notes of its archive (L3) and the word "
                    "index, its recent conversation (L2), its import records, cached searches and graph "
                    "checkpoints; then erased from the data folder's files. Its people's facts stay.",
                    href("/chat", c=fields["c"]))
        person = fields["u"]
        chats = await self.memory.admin.chats_of(person)
        return (f"Everything of {person}: their facts; the chats only they wrote to ({len(chats)} chat(s) in all "
                "are theirs), and their turns in chats others wrote to too; those chats' graph checkpoints, their "
                "lines of the turn log, cached searches; then erased from the data folder's files.",
                href("/person", u=person))

    async def forget(self, viewer: views.Viewer, what: str, fields: dict[str, str]) -> tuple[list[str], str]:
        """Forget it. Returns what was erased where, line by line, and the page to go back to."""
        if what == "turn":
            return await self._turn(fields["c"], fields["id"]), href("/chat", c=fields["c"])
        if what == "chat":
            return await self._chat(viewer, fields["c"]), "/"
        return await self._person(fields["u"]), "/"

    async def _turn(self, chat_id: str, entry_id: str) -> list[str]:
        try:
            deleted = await self.memory.entries.delete(chat_id, entry_id)  # as MCP's delete_memory
        except MEMORY_UNREACHABLE as exc:  # the deletes are done; the files were not rewritten
            return [f"{entry_id}: deleted from the archive (L3), the word index and L2", str(exc)]
        if not deleted:
            raise Refused(404, "This chat holds no turn of that id (forgotten already?).")
        return [f"{entry_id}: deleted from the archive (L3, Chroma) with its vector, from the word index, and its "
                "messages from the recent conversation (L2, Redis)",
                "cut out of the chat's graph checkpoints (what its last turns read)", ERASED]

    async def _chat(self, viewer: views.Viewer, chat_id: str) -> list[str]:
        """The chat, whole, inside the hold and erase a person's forget makes: as the only writer's
        (the person, or the operator's choice of a chat one person wrote to)."""
        users = await self.reading.users_of(chat_id)
        if len(users) > 1:
            raise Refused(409, f"Several people wrote to this chat ({', '.join(users)}): forget their turns one "
                               "by one, or each person.")
        held = await self.reading.archived(chat_id, viewer.person)
        failed: BaseException | None = None
        # forgetting() holds the person's chats and erases the files when it ends; a failure inside
        # it is let out only after, so no forget of the whole person is left recorded as unfinished.
        async with self.memory.admin.forgetting(users[0] if users else viewer.person):
            try:
                await self.memory.admin.forget_chat(chat_id)
                await (await self.runner.services.checkpointer()).adelete_thread(chat_id)
            except Exception as exc:
                failed = exc
        if failed is not None:
            raise BackendUnavailable(getattr(failed, "backend", "a backend"),
                                     f"chat {chat_id} was not wholly forgotten ({type(failed).__name__}: {failed}); "
                                     "forget it again once the backend is back")
        return [f"chat {chat_id}: the {held} turn(s) and notes of its archive deleted (L3, Chroma), with the word "
                "index, its recent conversation (L2), import records and cached searches (Redis)",
                "its graph checkpoints deleted", ERASED]

    async def _person(self, person: str) -> list[str]:
        forgotten = await self.runner.forget_user(person)  # as `goat forget-user` and /forget_me
        whole = f" ({', '.join(forgotten.chats)})" if forgotten.chats else ""
        return [f"{forgotten.facts} fact(s) of {person} deleted (L1)",
                f"{len(forgotten.chats)} chat(s) only they wrote to deleted whole{whole}: archive (L3), word index, "
                "recent conversation (L2), graph checkpoints",
                f"from {len(forgotten.shared)} chat(s) others wrote to too: {forgotten.entries} archive entr(ies) "
                f"and {forgotten.messages} L2 message(s) of theirs; those chats' graph checkpoints deleted",
                "their lines of the turn log dropped", ERASED]
