"""A group's own conversation, heard where the group asks for it (`/listen on`, or the operator's
``telegram.listen_groups``): which messages are heard, the group's choice and its retention.

A message heard is kept before its update is confirmed to Telegram (by polling, the updater's
queue takes it only then, :class:`HearingQueue`; by webhook, before its inbox lets it go): a
restart loses none. Kept, it waits in Redis and is written behind the conversation
(``memory/heard.py``). Heard is every text message of a listening group that is no turn: not a
command, and not addressed to the bot by a user it serves (a stranger's line is the group's, and
heard; they still get no answer). An edit of a message in such a group waits in line behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from telegram import Message, Update
from telegram.constants import ChatMemberStatus, ChatType

from bot.telegram_messages import addressed
from graph.replies import MEMORY_UNREACHABLE
from graph.settings import Telegram
from memory.facade import HeardLine, Listening, Memory
from memory.turns import clean_text, message_problem, usable_name

log = logging.getLogger(__name__)

GROUPS = (ChatType.GROUP, ChatType.SUPERGROUP)
ADMINISTRATORS = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
DAY_S = 86_400.0
EXPIRE_EVERY_S = 3600.0  # how often the heard lines past a group's retention are erased
STORE_RETRY_MAX_S = 30.0  # a line that cannot be kept yet (Redis down) is tried again, its update unconfirmed


def notice(days: float) -> str:
    """The line a group reads when the bot starts listening to it."""
    kept = f"for {days:g} days" if days else "until it is forgotten"
    return (f"I'm listening to this group from now on: I keep its text messages, with who wrote them and when, "
            f"{kept}, to recall them when someone mentions me. An administrator stops it with /listen off; anyone "
            f"can erase their own messages with /forget_me in a private chat with me.")


PRIVACY_ON = ("Telegram's privacy mode is on for this bot, so it shows me only the messages addressed to me. The "
              "bot's owner turns it off in @BotFather: /setprivacy, choose the bot, Disable, then removes the bot "
              "from the group and adds it again (or make me an administrator here).")


@dataclass(frozen=True)
class GroupListening:
    """Which groups are listened to and for how long: the group's own choice, else the operator's."""

    memory: Memory
    telegram: Telegram

    async def listens(self, chat_id: int) -> bool:
        choice = await self.memory.heard.listening(str(chat_id))
        return choice.on if choice.on is not None else chat_id in self.telegram.listen_groups

    async def days(self, chat_id: int) -> float:
        """How many days the group's heard lines are kept (0: until forgotten)."""
        choice = await self.memory.heard.listening(str(chat_id))
        return choice.days if choice.days is not None else self.telegram.listen_days

    async def choose(self, chat_id: int, *, on: bool | None = None, days: float | None = None) -> None:
        """Record the group's choice: what is given changes, the rest stays."""
        held = await self.memory.heard.listening(str(chat_id))
        await self.memory.heard.choose(str(chat_id), Listening(held.on if on is None else on,
                                                               held.days if days is None else days))

    async def listening_groups(self) -> list[int]:
        """Every group listened to now."""
        choices = await self.memory.heard.choices()
        chosen = {int(chat) for chat, choice in choices.items() if choice.on}
        return sorted(chosen | {chat for chat in self.telegram.listen_groups
                                if choices.get(str(chat), Listening()).on is not False})

    async def take_in(self, update: Update, username: str) -> None:
        """Keep what a listening group said in the update, if it is heard; durable when this
        returns. A backend that cannot keep it yet is tried again until it can (the update stays
        unconfirmed meanwhile)."""
        message = update.message or update.edited_message
        if message is None or not await self._heard(message, update.edited_message is not None, username):
            return
        # An edit of a turn's message is taken as the turn took it: without the bot's mention.
        text = addressed(message, username) if message.from_user.id in self.telegram.allowed_users else None
        line = HeardLine(str(message.message_id), str(message.from_user.id), clean_text(text or message.text or ""),
                         (message.edit_date or message.date).timestamp(), usable_name(message.from_user.full_name),
                         edited=update.edited_message is not None)
        if message_problem(line.text):  # nothing a line could hold (an edit down to the mention alone)
            return
        pause = 0.5
        while True:
            try:
                return await self.memory.heard.keep(str(message.chat_id), line)
            except (RedisError, OSError, *MEMORY_UNREACHABLE) as exc:  # the update stays unconfirmed until kept
                log.warning("a heard message waits to be kept: %s", type(exc).__name__)
                await asyncio.sleep(pause)
                pause = min(2 * pause, STORE_RETRY_MAX_S)

    async def _heard(self, message: Message, edited: bool, username: str) -> bool:
        """Whether the message is heard: a group's text, no command, from a person, in a listening
        group, and no turn (a new message addressed to the bot by a user it serves is one)."""
        sender = message.from_user
        if message.chat.type not in GROUPS or sender is None or sender.is_bot or not message.text:
            return False
        if message.text.startswith("/") or not await self.listens(message.chat_id):
            return False
        turn = sender.id in self.telegram.allowed_users and addressed(message, username) is not None
        return edited or not turn

    async def expire(self, now: float | None = None) -> int:
        """Erase every listening group's heard lines older than its retention; returns how many."""
        now = time.time() if now is None else now
        erased = 0
        for chat in sorted({*await self.listening_groups(), *map(int, await self.memory.heard.choices())}):
            if days := await self.days(chat):
                erased += await self.memory.heard.erase_before(str(chat), now - days * DAY_S)
        return erased

    async def expire_every(self, seconds: float = EXPIRE_EVERY_S) -> None:
        """:meth:`expire`, now and then every ``seconds``, until cancelled."""
        while True:
            try:
                await self.expire()
            except Exception as exc:  # noqa: BLE001 — the next round tries again
                log.warning("heard messages past their retention not erased now: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(seconds)


async def is_administrator(bot: Any, chat_id: int, user_id: int) -> bool:
    """Whether Telegram reports the user as the group's creator or one of its administrators."""
    return (await bot.get_chat_member(chat_id, user_id)).status in ADMINISTRATORS


class HearingQueue(asyncio.Queue):
    """The polling updater's queue. The updater confirms the updates it fetched with its next
    getUpdates, once each is put here: :meth:`put` keeps what a group said in it first."""

    def __init__(self) -> None:
        super().__init__()
        self.take_in: Callable[[Update], Awaitable[None]] | None = None

    async def put(self, item: Any) -> None:
        if isinstance(item, Update) and self.take_in is not None:
            await self.take_in(item)
        await super().put(item)
