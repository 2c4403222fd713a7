"""What the page reads, through memory's doors, and who may read it: the operator (no server
tokens) every chat and every person; with tokens, a person the chats they wrote to and their own
facts, as the Store serves them (``graph/server/auth.py``)."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from bot import commands
from bot.web import views
from graph.observability.turn_log import TurnLog, turns_log_path
from graph.observability.why_report import turn_report
from graph.runner import TurnRunner
from graph.settings import Settings
from memory.facade import Memory
from memory.retrieval import why_kept
from memory.turns import Hit

LOG_LINES = 20_000  # of the turn log, read back for a turn's line
SAMPLE = 12  # a chat's newest entries read for its languages and last activity


class Refused(Exception):
    """A request the page refuses: its status (403: not the viewer's) and why, in words."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class Reading:
    def __init__(self, runner: TurnRunner, settings: Settings, shared: bool) -> None:
        self.runner, self.settings, self.shared = runner, settings, shared

    @property
    def memory(self) -> Memory:
        return self.runner.services.memory

    # ---- who sees what --------------------------------------------------------------------------

    async def visible_chats(self, viewer: views.Viewer) -> list[str]:
        if viewer.operator:
            return (await self.memory.admin.users_and_chats())[1]
        return await self.memory.admin.chats_of(viewer.person)

    async def people(self, viewer: views.Viewer) -> list[str]:
        """Everyone memory knows: the operator's list (a person sees their own facts only)."""
        if not viewer.operator:
            raise Refused(403, "The list of people is the operator's.")
        return (await self.memory.admin.users_and_chats())[0]

    async def check_chat(self, viewer: views.Viewer, chat_id: str) -> None:
        """Refused (403) unless the viewer may see the chat."""
        if chat_id not in await self.visible_chats(viewer):
            raise Refused(403, "This chat is not one of yours." if not viewer.operator else "No chat has that id.")

    def check_person(self, viewer: views.Viewer, person: str) -> str:
        """The person, if the viewer may see their facts (the operator: anyone's; else their own)."""
        if not person.strip():
            raise Refused(404, "The address names no person.")
        if not viewer.operator and person != viewer.person:
            raise Refused(403, "These are not your facts.")
        return person

    async def users_of(self, chat_id: str) -> list[str]:
        """Who wrote to the chat."""
        users, _ = await self.memory.admin.users_and_chats()
        return [user for user in users if chat_id in await self.memory.admin.chats_of(user)]

    # ---- chats and turns --------------------------------------------------------------------------

    async def chat_rows(self, viewer: views.Viewer) -> list[views.ChatRow]:
        rows = []
        for chat_id in await self.visible_chats(viewer):
            newest, _ = await self.memory.entries.page(chat_id, SAMPLE)
            last = max((entry["timestamp"] for entry in newest), default=None)
            rows.append(views.ChatRow(chat_id, await self.archived(chat_id, viewer.person), last,
                                      languages(entry["content"] for entry in newest)))
        return sorted(rows, key=lambda row: -(row.last or 0))

    async def archived(self, chat_id: str, person: str) -> int:
        """How many entries (turns and notes) the chat's archive holds, as memory's health counts them."""
        return (await self.memory.admin.health(chat_id, person)).layers.get("l3_entries", 0)

    async def entry(self, viewer: views.Viewer, chat_id: str, entry_id: str) -> Hit:
        await self.check_chat(viewer, chat_id)
        found = await self.memory.entries.of_ids(chat_id, [entry_id])
        if not found:
            raise Refused(404, "This chat holds no turn of that id (forgotten?).")
        return found[0]

    async def before(self, chat_id: str, entry: Hit) -> tuple[Mapping[str, Any] | None, str]:
        """What preceded the turn's reply: its line of the turn log, and what was injected (as
        HTML): for the chat's last turn as its checkpoint keeps it, with why; for an earlier one,
        the entries its log line names, as the archive holds them now."""
        number = entry["metadata"].get("turn")
        if number is None:
            return None, ""
        log = TurnLog(turns_log_path(self.settings), self.settings.observability.log_max_bytes)
        lines = [line for line in log.tail(LOG_LINES) if line.get("chat_id") == chat_id and line.get("turn") == number]
        logged = lines[-1] if lines else None
        last = await self.runner.last_turn(chat_id)
        if last.state.get("turn") == number:
            return logged, views.injected_before(list(last.state.get("l3") or []),
                                                 why_kept(last.state.get("verdicts") or []))
        named = (logged or {}).get("prefetch", {}).get("injected_entries")
        if named is None:
            return logged, ""
        found = {hit["id"]: hit for hit in await self.memory.entries.of_ids(chat_id, [e["id"] for e in named])}
        return logged, views.injected_logged(named, found)

    # ---- recall -----------------------------------------------------------------------------------

    async def recall(self, viewer: views.Viewer, chat_id: str, message: str, now: float | None) -> str:
        """What GOAT's recall would inject for ``message`` in the chat (as `goat inspect` runs it:
        the turn up to the model, nothing written), as HTML."""
        user = None if viewer.operator else viewer.person
        try:
            state = await self.runner.inspect(chat_id, message, user_id=user, now=now)
        except ValueError as exc:  # a message GOAT refuses (too long, empty)
            raise Refused(409, str(exc)) from None
        verdicts = state.get("verdicts") or []
        return views.recall_report(turn_report(state), verdicts, why_kept(verdicts))

    async def examples(self, chat_id: str) -> list[tuple[str, str]]:
        """The demo's questions, each with the day it asks them on (the day after its last session),
        for the demo's chat; none for another."""
        from bot.demo.bundled import CHAT_ID, questions

        if chat_id != CHAT_ID:
            return []
        newest, _ = await self.memory.entries.page(chat_id, 1)
        if not newest:
            return []
        day = (datetime.fromtimestamp(newest[0]["timestamp"], timezone.utc).date() + timedelta(days=1)).isoformat()
        return [(question, day) for question in questions()]

    # ---- the commands every face shares -------------------------------------------------------------

    async def command(self, name: str, person: str, argument: str) -> str:
        """One of the chat commands (/remember, /forget) for the person, as `goat chat` and Telegram
        run it, and what it answers."""
        return await commands.COMMANDS[name].run(commands.Asker(self.runner, person, person), argument)


def languages(texts: Any) -> list[str]:
    """The scripts a chat's texts are written in (Latin, Cyrillic, Greek…), by their letters: what
    the page can tell of their languages without reaching memory's word rooms."""
    found = set()
    for text in texts:
        counts: dict[str, int] = {}
        for char in text:
            if char.isalpha():
                script = unicodedata.name(char, "OTHER").split()[0]
                counts[script] = counts.get(script, 0) + 1
        if counts:
            found.add(f"{max(counts, key=counts.__getitem__).title()} script")
    return sorted(found)
