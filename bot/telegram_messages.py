"""Telegram messages as the bot reads and writes them, by Telegram's rules alone (what GOAT
does with them is the handlers', in bot/telegram.py).

Read: which text of a message is meant for the bot (in a group, only when it is mentioned or
replied to) and which bot a command names. Written: "typing…" while a turn runs, the reply
streamed into a message as the model writes it, cut into parts under Telegram's limit, sent
as Markdown, or plain when Telegram refuses its formatting.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Chat, Message, ReplyParameters
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest
from telegram.ext import ContextTypes

MESSAGE_LIMIT = 4096  # characters Telegram takes in one message
TYPING_EVERY_S = 4.0  # Telegram shows "typing…" for ~5 s per chat action
_SENTENCE_END = re.compile(r"[.!?…](\s|$)|\n")


def named_for_bot(text: str, chat: Chat, username: str) -> bool:
    """Whether a command (``text``, its message's) is meant for this bot: named for it (``/name@bot``),
    or bare in a private chat; in a group, a bare one may be meant for another bot there."""
    named = command_parts(text)[1]
    return named.lower() == username.lower() if named else chat.type == ChatType.PRIVATE


def command_parts(text: str) -> tuple[str, str]:
    """A command message's command and the bot it names: ("/name", "bot") of "/name@bot …"
    ("" when it names none)."""
    command, _, named = text.split(maxsplit=1)[0].partition("@")
    return command, named


def addressed(message: Message, username: str) -> str | None:
    """The text meant for the bot: all of it in a private chat; in a group, only when the bot is
    mentioned (the mention taken out) or replied to, else None."""
    text = message.text or ""
    if message.chat.type == ChatType.PRIVATE:
        return text
    mention = f"@{username}"
    if mention.lower() in text.lower():
        return re.sub(re.escape(mention), "", text, flags=re.IGNORECASE).strip()
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.username == username:
        return text
    return None


async def keep_typing(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> None:
    while True:
        await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
        await asyncio.sleep(TYPING_EVERY_S)  # Telegram's indicator lasts ~5 s: renewed while the turn runs


class StreamingReply:
    """One reply, streamed into a Telegram message: sent at its first sentence, edited at most
    every ``interval`` seconds, finished with the whole text (split past 4096 characters). With
    ``reply_to``, its first message replies to that message (in a group: which one it answers)."""

    def __init__(self, bot: Any, chat_id: int, interval: float, reply_to: int | None = None) -> None:
        self.bot, self.chat_id, self.interval = bot, chat_id, interval
        # Sent even if the user deleted their message meanwhile.
        self.reply_parameters = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
        self.text = ""
        self.shown = ""
        self.message: Message | None = None
        self.last_edit = 0.0
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task | None = None
        self.done = False

    def feed(self, chunk: str) -> None:
        """A chunk of the reply as the model writes it (called synchronously by the runner)."""
        self.text += chunk
        due = (self.message is None and _SENTENCE_END.search(self.text)) or (
            self.message is not None and time.monotonic() - self.last_edit >= self.interval)
        if due and (self._pending is None or self._pending.done()):
            self._pending = asyncio.ensure_future(self._show(self.text[:MESSAGE_LIMIT]))

    async def _show(self, text: str) -> None:
        async with self._lock:
            if self.done or not text.strip() or text == self.shown:
                return
            if self.message is None:
                self.message = await self.bot.send_message(self.chat_id, text, reply_parameters=self.reply_parameters)
            else:
                await self.message.edit_text(text)
            self.shown, self.last_edit = text, time.monotonic()

    async def finish(self, text: str, *, shown: Callable[[], Awaitable[None]] | None = None) -> None:
        """The whole reply: the first part into the streamed message, the rest as new messages.
        ``shown`` is awaited once the reply's first message is in the chat (the streamed one
        delivered, or the first part sent), before its last edit and its other parts."""
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
        async with self._lock:
            self.done = True
            first, *rest = split_message(text)
            try:
                if self.message is None:
                    self.message = await send_formatted(self.bot, self.chat_id, first,
                                                        reply_parameters=self.reply_parameters)
                    self.shown = first
                if shown is not None:
                    await shown()
                if first != self.shown:
                    await edit_formatted(self.message, first)
                    self.shown = first
                for part in rest:
                    await send_formatted(self.bot, self.chat_id, part)
            except Exception:
                self.done = False  # the reply did not get through: fail() still apologises
                raise

    async def fail(self, apology: str) -> None:
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
        async with self._lock:
            if self.done:
                return
            self.done = True
            if self.message is not None:
                await self.message.edit_text(f"{self.shown}\n\n{apology}"[:MESSAGE_LIMIT])
            else:
                await self.bot.send_message(self.chat_id, apology, reply_parameters=self.reply_parameters)


async def send_formatted(bot: Any, chat_id: int, text: str, **options: Any) -> Message:
    """Sent as Markdown; if Telegram refuses its formatting, the same text, plain."""
    try:
        return await bot.send_message(chat_id, text, parse_mode=ParseMode.MARKDOWN, **options)
    except BadRequest as exc:
        if "parse entities" not in str(exc).lower():
            raise
        return await bot.send_message(chat_id, text, **options)


async def edit_formatted(message: Message, text: str) -> None:
    try:
        await message.edit_text(text, parse_mode=ParseMode.MARKDOWN)
    except BadRequest as exc:
        if "parse entities" in str(exc).lower():
            await message.edit_text(text)
        elif "not modified" not in str(exc).lower():
            raise


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Parts of at most ``limit`` characters, cut at paragraph, else sentence, else word ends."""
    parts, rest = [], text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), -1)
        if cut < limit // 2:
            sentence = max((m.end() for m in re.finditer(r"[.!?…](\s)", window)), default=-1)
            cut = sentence if sentence >= limit // 2 else (window.rfind(" ") if window.rfind(" ") > 0 else limit)
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    return [*parts, rest] if rest or not parts else parts


async def answer(message: Message, text: str, *, table: bool = False) -> None:
    """``text`` in parts under the limit, the first in reply to ``message`` in a group. A ``table``
    is sent as a <pre> block, which Telegram shows in a fixed-width font: its columns stay aligned."""
    for n, part in enumerate(split_message(text)):
        await message.reply_text(f"<pre>{html.escape(part)}</pre>" if table else part,
                                 parse_mode=ParseMode.HTML if table else None,
                                 do_quote=n == 0 and message.chat.type != ChatType.PRIVATE)
