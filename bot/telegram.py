"""`goat bot`: GOAT on Telegram, with python-telegram-bot.

Each text message is one turn of the same graph as `goat chat` (thread = the chat, user =
the Telegram user). The reply streams: sent once its first sentence is there, edited as the
model writes (at most every ``telegram.edit_interval`` seconds per chat), and finished with
the whole text before the turn is saved and archived. Turns of one chat run in arrival order
(the runner's chat lock); different chats run concurrently.

A personal bot: only ``telegram.allowed_users`` are served. Anyone else gets one polite
refusal telling them their id, and nothing of theirs is stored. In a group the bot answers
only when mentioned or replied to, in a reply to that message, and the group's memory is the
group's. An edited message runs no turn: its new text replaces what its turn stored.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import logging
import re
import time
from urllib.parse import urlsplit
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from telegram import BotCommand, Chat, Message, ReplyParameters, Update
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, InvalidToken, TelegramError
from telegram.ext import (AIORateLimiter, Application, ApplicationHandlerStop, CommandHandler, ContextTypes,
                          MessageHandler, TypeHandler, filters)

from bot.commands import COMMANDS as MEMORY_COMMANDS, Asker, Command
from bot.webhook import Inbox, WebhookWorker, shared_secret
from graph.observability import Redactor, TurnLog, render_stats, summarize, turns_log_path
from graph.runner import ModelUnavailable, TurnRunner
from memory.errors import BackendUnavailable, ForgetUnfinished
from memory.settings import Settings
from nodes.state import InvalidTurn, check_input, turn_input

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096  # characters Telegram takes in one message
TYPING_EVERY_S = 4.0  # Telegram shows "typing…" for ~5 s per chat action
_SENTENCE_END = re.compile(r"[.!?…](\s|$)|\n")
APOLOGY = "Sorry, something went wrong on my side and I could not answer. Please send that again."
MODEL_UNREACHABLE = ("My language model cannot be reached right now, so I cannot answer yet. Your message is "
                     "kept in our conversation: no need to send it again, I will have it in mind when you write next.")
TEXT_ONLY = "I can only read text for now."
EDIT_NOT_KEPT = ("I could not take your edit into my memory just now, so I keep the earlier version of that "
                 "message. Edit it again in a while to update it.")

# The memory commands are goat chat's too (bot/commands.py); these are the bot's own.
COMMANDS = [
    ("start", "what this bot is"),
    ("help", "the commands"),
    *((name, command.what) for name, command in MEMORY_COMMANDS.items()),
    ("stats", "latency and memory figures"),
    ("export", "everything I keep about you, as a JSON file"),
    ("forget_me", "delete everything I keep about you"),
]
HELP = "\n".join(f"{MEMORY_COMMANDS[name].usage if name in MEMORY_COMMANDS else f'/{name}'} — {what}"
                 for name, what in COMMANDS)
COMMAND_NAMES = frozenset(name for name, _ in COMMANDS)

# New messages only: an edited command is not run again, an edited text is no new turn.
NEW_MESSAGE = filters.UpdateType.MESSAGE
NEW_COMMAND = NEW_MESSAGE & filters.COMMAND
NEW_TEXT = NEW_MESSAGE & filters.TEXT & ~filters.COMMAND
NEW_NOT_TEXT = NEW_MESSAGE & ~filters.TEXT & ~filters.COMMAND & ~filters.StatusUpdate.ALL


@dataclass
class Goat:
    """What the handlers share: the runner, the settings, who was refused, who asked to be forgotten."""

    runner: TurnRunner
    settings: Settings
    refused: set[int] = field(default_factory=set)
    forgetting: set[int] = field(default_factory=set)
    inbox: Inbox | None = None  # webhook mode: where updates wait in Redis until handled

    @property
    def memory(self) -> Any:
        return self.runner.services.memory

    @cached_property
    def redact(self) -> Redactor:
        """Masks the secrets in what is logged: errors' texts may echo the token or the API key."""
        return Redactor.for_settings(self.settings)


def goat_of(context: ContextTypes.DEFAULT_TYPE) -> Goat:
    return context.bot_data["goat"]


def build_application(runner: TurnRunner, settings: Settings) -> Application:
    """The bot: handlers, rate limiting (a 429 is retried after the delay Telegram advises)."""
    set_log_levels()  # before the bot is built: it logs its URLs, the token in them, as it is
    telegram = settings.telegram
    root = telegram.api_url.rstrip("/")
    application = (
        Application.builder()
        .token(telegram.token.get_secret_value())
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .rate_limiter(AIORateLimiter(max_retries=3))
        .concurrent_updates(True)
        .build()
    )
    application.bot_data["goat"] = Goat(runner, settings)
    application.add_handler(TypeHandler(Update, gate), group=-1)  # before any handler: strangers stop there
    handlers = {"start": start, "help": show_help, "stats": stats, "export": export, "forget_me": forget_me,
                **{name: memory_command(command) for name, command in MEMORY_COMMANDS.items()}}
    for name, handler in handlers.items():
        application.add_handler(CommandHandler(name, handler, filters=NEW_MESSAGE))
    application.add_handler(MessageHandler(NEW_COMMAND, unknown_command))
    application.add_handler(MessageHandler(NEW_TEXT, on_text))
    application.add_handler(MessageHandler(NEW_NOT_TEXT, text_only))
    application.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE & filters.TEXT, on_edit))
    application.add_error_handler(on_error)
    return application


# The libraries under the bot log what GOAT never logs: httpx each request's URL at INFO, which
# holds the token ({api_url}/bot<token>/method); python-telegram-bot, at DEBUG, its URLs and every
# Bot API call's parameters and result, the users' messages included. Whatever level the process
# logs at, they log from these levels up (python-telegram-bot's own advice for httpx); so does the
# bot, whose line at start (INFO) tells the operator what it serves.
LOG_LEVELS = {"httpx": logging.WARNING, "telegram": logging.INFO, __name__: logging.INFO}


def set_log_levels() -> None:
    for name, level in LOG_LEVELS.items():
        logger = logging.getLogger(name)
        if logger.level < level:  # NOTSET (0) included; a stricter level someone set stays
            logger.setLevel(level)


async def register_commands(application: Application) -> None:
    await application.bot.set_my_commands([BotCommand(name, what) for name, what in COMMANDS])


# ---- who may talk to it ----------------------------------------------------------------------


async def gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The one way to the handlers (group -1): an allowed user's update goes on; anyone else's stops
    here, and a stranger the bot would have answered is told once, with their id, and nothing more."""
    goat, user = goat_of(context), update.effective_user
    if user is not None and user.id in goat.settings.telegram.allowed_users:
        return
    if user is not None and user.id not in goat.refused and would_answer(update, context.bot.username):
        goat.refused.add(user.id)
        try:
            await update.effective_message.reply_text(
                f"Sorry, this is a personal assistant and it only talks to its owner. Your Telegram user id is "
                f"{user.id}: if the owner wants to let you in, they can add it to GOAT_ALLOWED_USERS.")
        except Exception as exc:  # noqa: BLE001 — reported as a handler's failure would be; raised, it
            await context.application.process_error(update, exc)  # would let the update on to the handlers
    raise ApplicationHandlerStop


def would_answer(update: Update, username: str) -> bool:
    """Whether the handlers answer this update when its sender is allowed: a new message that is a
    command for this bot, a text addressed to it, or anything but text that is no status update."""
    message = update.message
    if NEW_COMMAND.check_update(update):
        # As CommandHandler reads it: one of ours runs bare (/name) in any chat, or named for this bot.
        name, *named = message.text[1:message.entities[0].length].split("@")
        ours = name.lower() in COMMAND_NAMES and (not named or named[0].lower() == username.lower())
        return ours or named_for_bot(message.text, message.chat, username)  # else unknown_command's rule
    if NEW_TEXT.check_update(update):
        return addressed(message, username) is not None
    return bool(NEW_NOT_TEXT.check_update(update))


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


# ---- turns -------------------------------------------------------------------------------------


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    text = addressed(message, context.bot.username)
    if text is None:
        return
    goat, chat_id = goat_of(context), message.chat_id
    in_group = message.chat.type != ChatType.PRIVATE
    reply = StreamingReply(context.bot, chat_id, goat.settings.telegram.edit_interval,
                           reply_to=message.message_id if in_group else None)
    typing = asyncio.create_task(keep_typing(context, chat_id))

    async def shown() -> None:  # the reply is in the chat: a worker taking over won't answer again
        await goat.inbox.mark_answered(str(chat_id), update.update_id)

    async def finish(text: str) -> None:
        await reply.finish(text, shown=shown if goat.inbox is not None else None)

    try:
        await goat.runner.run(str(chat_id), text, user_id=str(update.effective_user.id), on_token=reply.feed,
                              on_reply=finish, message_ref=str(message.message_id), keep_unanswered=True)
    except InvalidTurn as exc:
        await message.reply_text(refusal(exc))
    except ModelUnavailable as exc:  # the message is kept: sending it again would make it twice
        log_failure(goat, chat_id, exc.__cause__)
        await reply.fail(MODEL_UNREACHABLE)
    except Exception as exc:  # a backend failed: nothing is half-written, sending it again works
        log_failure(goat, chat_id, exc)
        await reply.fail(APOLOGY)
    finally:
        typing.cancel()


def log_failure(goat: Goat, chat_id: int, error: BaseException) -> None:
    """The operator's line for a failed turn: what failed, in the error's own words, secrets masked."""
    log.warning("a turn of chat %s failed: %s: %s", chat_id, type(error).__name__, goat.redact(str(error)))


async def on_edit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An edited message: its new text replaces what its turn stored (L2, L3, the word index), and
    no turn runs. An edit of a message no turn stored (a command, an older message) changes nothing."""
    message, goat = update.edited_message, goat_of(context)
    # The text as a turn takes it: in a group, without the bot's mention (an edit may drop it).
    text = addressed(message, context.bot.username)
    chat_id, user_id = _ids(update)
    edit = turn_input(chat_id, message.text if text is None else text, user_id)
    try:
        check_input(edit)
    except InvalidTurn:  # nothing a turn could take (only the mention is left): what is stored stays
        return
    try:
        await goat.memory.edit_message(chat_id, str(message.message_id), user_id, edit["message"])
    except BackendUnavailable as exc:  # what was stored stays whole; sending the text again would make a turn
        log.warning("an edit was not kept: %s", goat.redact(str(exc)))
        await message.reply_text(EDIT_NOT_KEPT)


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


def refusal(problem: InvalidTurn) -> str:
    return f"I cannot take that message: {problem}."


async def text_only(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    # An empty text is no text to the filters; it is a message that cannot be taken, not a sticker.
    await message.reply_text(TEXT_ONLY if message.text is None else refusal(InvalidTurn("the message is empty")))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.warning("update failed: %s: %s", type(context.error).__name__, goat_of(context).redact(str(context.error)))
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await update.effective_message.reply_text(APOLOGY)
        except Exception:  # noqa: BLE001 — Telegram unreachable: the log line is all there is
            pass


# ---- commands ------------------------------------------------------------------------------------


def _ids(update: Update) -> tuple[str, str]:
    return str(update.effective_chat.id), str(update.effective_user.id)


async def shown_privately(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Whether a command that shows the sender's own data (their facts, export, recalled lines,
    searches, forgetting) may answer here: only in their private chat with the bot. In a group,
    everyone would read it, so the group is told to ask privately instead."""
    if update.effective_chat.type == ChatType.PRIVATE:
        return True
    await update.effective_message.reply_text(
        f"That shows your own data, so I answer it only in a private chat: message me at "
        f"@{context.bot.username} and send it there.")
    return False


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(
        "Hi! I am GOAT, an assistant with a long memory: I keep our conversation verbatim and recall "
        "what matters before I answer. /help lists the commands; /export and /forget_me give you your data.")


async def show_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(HELP)


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command the bot does not have: the list of those it has. In a group, only a command
    named for this bot (``/name@bot``) is answered: a bare one may be meant for another bot there."""
    message = update.effective_message
    if named_for_bot(message.text, message.chat, context.bot.username):
        await message.reply_text(f"I have no {command_parts(message.text)[0]} command. These are mine:\n{HELP}")


def memory_command(command: Command) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]:
    """The handler of one of the memory commands goat chat has too; in a group, one that shows
    the sender's own data answers only privately."""

    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if command.own_data and not await shown_privately(update, context):
            return
        chat_id, user_id = _ids(update)
        text = await command.run(Asker(goat_of(context).runner, chat_id, user_id), " ".join(context.args))
        await answer(update.effective_message, text, table=command.table)

    return handle


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    settings = goat_of(context).settings
    turns = TurnLog(turns_log_path(settings), settings.observability.log_max_bytes).tail(1000)
    # The log is named, not its path: where the server keeps its files is no user's business.
    await answer(update.effective_message, render_stats(summarize(turns), "the turn log"), table=True)


async def export(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await shown_privately(update, context):
        return
    chat_id, user_id = _ids(update)
    document = await Asker(goat_of(context).runner, chat_id, user_id).memory().export()
    data = json.dumps(document, ensure_ascii=False, indent=2).encode()
    await context.bot.send_document(update.effective_chat.id, document=io.BytesIO(data),
                                    filename=f"goat-export-{user_id}.json",
                                    caption="Everything I keep about you: facts, messages and archived turns.")


async def forget_me(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await shown_privately(update, context):
        return
    goat, user = goat_of(context), update.effective_user.id
    if context.args[:1] != ["yes"] or user not in goat.forgetting:
        goat.forgetting.add(user)
        await update.effective_message.reply_text(
            "This deletes everything I keep about you: your facts, your conversations with me, and your "
            "messages in groups. It cannot be undone. Send /forget_me yes to confirm.")
        return
    goat.forgetting.discard(user)
    try:
        forgotten = await goat.runner.forget_user(str(user))
    except ForgetUnfinished as exc:
        log.warning("%s", exc)
        await update.effective_message.reply_text(
            "I could not finish forgetting you: part of my memory is unreachable right now. It is recorded and "
            "will be finished when it is back; you can also send /forget_me again later.")
        return
    await update.effective_message.reply_text(
        f"Done: I forgot {forgotten.facts} fact(s), {len(forgotten.chats)} conversation(s), and your part of "
        f"{len(forgotten.shared)} group(s).")


async def answer(message: Message, text: str, *, table: bool = False) -> None:
    """``text`` in parts under the limit, the first in reply to ``message`` in a group. A ``table``
    is sent as a <pre> block, which Telegram shows in a fixed-width font: its columns stay aligned."""
    for n, part in enumerate(split_message(text)):
        await message.reply_text(f"<pre>{html.escape(part)}</pre>" if table else part,
                                 parse_mode=ParseMode.HTML if table else None,
                                 do_quote=n == 0 and message.chat.type != ChatType.PRIVATE)


# ---- running it ----------------------------------------------------------------------------------


@asynccontextmanager
async def running(application: Application, settings: Settings, *, webhook: str | None = None,
                  listen: str = "127.0.0.1", port: int = 8443, poll_timeout: int = 10) -> AsyncIterator[None]:
    """The bot receiving updates, by long polling or as one of the workers behind a webhook
    (which checks Telegram's secret token, ``telegram.webhook_secret``, on every update)."""
    try:
        await application.initialize()  # getMe: the server and the token, checked
    except TelegramError as exc:
        raise telegram_unavailable(settings, exc) from None
    async with application, AsyncExitStack() as stack:  # already initialized: on leaving, it is shut down
        await application.start()
        stack.push_async_callback(application.stop)
        try:
            await register_commands(application)
            await stack.enter_async_context(
                _webhook_worker(application, settings, webhook, listen, port) if webhook
                else _polling(application, poll_timeout))
        except TelegramError as exc:
            raise telegram_unavailable(settings, exc) from None
        # The operator's line at start: what the bot serves, and with what (no token, no URL).
        log.info("goat bot: %s; model %s; %d allowed user(s); data folder %s",
                 f"webhook, listening on {listen}:{port}" if webhook else "polling",
                 settings.llm.model or "none (set GOAT_MODEL)", len(settings.telegram.allowed_users),
                 Path(settings.data_dir).resolve())
        yield


@asynccontextmanager
async def _polling(application: Application, poll_timeout: int) -> AsyncIterator[None]:
    # A restart resumes from the offset Telegram kept: no update is answered twice.
    await application.updater.start_polling(poll_interval=0.0, timeout=poll_timeout)
    try:
        yield
    finally:
        await application.updater.stop()


@asynccontextmanager
async def _webhook_worker(application: Application, settings: Settings, webhook: str, listen: str,
                          port: int) -> AsyncIterator[None]:
    """One of the workers behind ``webhook`` (bot/webhook.py): updates queued in Redis, each
    chat's drained in order by whichever worker holds it."""
    goat, configured = application.bot_data["goat"], settings.telegram.webhook_secret
    redis, lease = await goat.memory.redis(), settings.redis.chat_lock_seconds
    # Never open: whoever reaches the port could post any user's messages (and their /export).
    token = configured.get_secret_value() if configured else await shared_secret(redis)
    goat.inbox = Inbox(redis, lease)
    worker = WebhookWorker(application, goat.runner, goat.inbox, secret=token, path=urlsplit(webhook).path,
                           sweep_seconds=lease / 2)
    await application.bot.set_webhook(webhook, secret_token=token)
    async with worker.serving(listen, port):
        yield


def telegram_unavailable(settings: Settings, exc: TelegramError) -> BackendUnavailable:
    """What `goat bot` says when the Bot API cannot be used: one line, never the token (the
    library's own messages and URLs carry it)."""
    where = settings.telegram.api_url
    if isinstance(exc, InvalidToken):
        return BackendUnavailable("telegram", f"the Bot API at {where} refused the bot token",
                                  "check TELEGRAM_BOT_TOKEN (@BotFather gives it with /token)")
    problem = Redactor.for_settings(settings)(f"{type(exc).__name__}: {exc}")
    return BackendUnavailable("telegram", f"cannot reach the Bot API at {where} ({problem})",
                              "check the network, or GOAT_TELEGRAM_API_URL")


async def serve(application: Application, settings: Settings, *, webhook: str | None, listen: str = "127.0.0.1",
                port: int = 8443) -> None:
    async with running(application, settings, webhook=webhook, listen=listen, port=port):
        await asyncio.Event().wait()  # until the process is stopped
