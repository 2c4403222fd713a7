"""`goat bot`: GOAT on Telegram, with python-telegram-bot.

Each text message is one turn of the same graph as `goat chat` (thread = the chat, user =
the Telegram user). The reply streams: sent once its first sentence is there, edited as the
model writes (at most every ``telegram.edit_interval`` seconds per chat), and finished with
the whole text before the turn is saved and archived. Turns of one chat run in arrival order
(the runner's chat lock); different chats run concurrently.

A personal bot: only ``telegram.allowed_users`` are served. Anyone else gets one polite
refusal telling them their id, and nothing of theirs is stored. In a group the bot answers
only when mentioned or replied to, in a reply to that message, and the group's memory is the
group's; a group that asks for it (`/listen on`) is heard whole (bot/telegram_groups.py). An
edited message runs no turn: its new text replaces what its turn stored.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from telegram import BotCommand, Update
from telegram.constants import ChatType
from telegram.ext import (AIORateLimiter, Application, ApplicationHandlerStop, CommandHandler, ContextTypes,
                          MessageHandler, TypeHandler, filters)

from bot.commands import COMMANDS as MEMORY_COMMANDS, Asker, Command
from bot.telegram_groups import GROUPS, PRIVACY_ON, GroupListening, HearingQueue, is_administrator, notice
from bot.telegram_messages import StreamingReply, addressed, answer, command_parts, keep_typing, named_for_bot
from bot.webhook import Inbox
from graph.observability.redaction import Redactor
from graph.replies import (APOLOGY, FORGET_UNFINISHED, FORGET_UNFINISHED_REPLY, MEMORY_UNREACHABLE, failed_for,
                           failure_reply, refusal)
from graph.runner import TurnRunner
from graph.observability.stats import render_stats, summarize
from graph.observability.turn_log import TurnLog, turns_log_path
from graph.settings import Settings
from memory.turns import usable_name
from nodes.state import InvalidTurn, check_input, turn_input

log = logging.getLogger(__name__)

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
    ("listen", "in a group: on, off, or keep N days of its conversation in my memory"),
]
HELP = "\n".join(f"{MEMORY_COMMANDS[name].usage if name in MEMORY_COMMANDS else f'/{name}'} — {what}"
                 for name, what in COMMANDS)
COMMAND_NAMES = frozenset(name for name, _ in COMMANDS)
# A person a listening group's members may be without being served: their own data is theirs to take or erase.
ANYONE_S_COMMANDS = frozenset({"export", "forget_me"})
LISTEN_USAGE = ("Usage, by a group's administrator: /listen on, /listen off, /listen keep N (days of the "
                "group's messages I keep; 0: until forgotten)")

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
    def groups(self) -> GroupListening:
        return GroupListening(self.memory, self.settings.telegram)

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
    hearing = HearingQueue()
    application = (
        Application.builder()
        .token(telegram.token.get_secret_value())
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .rate_limiter(AIORateLimiter(max_retries=3))
        .concurrent_updates(True)
        .update_queue(hearing)
        .build()
    )
    application.bot_data["goat"] = Goat(runner, settings)
    hearing.take_in = taking_in(application)
    application.add_handler(TypeHandler(Update, gate), group=-1)  # before any handler: strangers stop there
    handlers = {"start": start, "help": show_help, "stats": stats, "export": export, "forget_me": forget_me,
                "listen": listen, **{name: memory_command(command) for name, command in MEMORY_COMMANDS.items()}}
    for name, handler in handlers.items():
        application.add_handler(CommandHandler(name, handler, filters=NEW_MESSAGE))
    application.add_handler(MessageHandler(NEW_COMMAND, unknown_command))
    application.add_handler(MessageHandler(NEW_TEXT, on_text))
    application.add_handler(MessageHandler(NEW_NOT_TEXT, text_only))
    application.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE & filters.TEXT, on_edit))
    application.add_error_handler(on_error)
    return application


def taking_in(application: Application) -> Callable[[Update], Awaitable[None]]:
    """What keeps a listening group's line of an update before the update is let go (polling: put
    in the updater's queue; webhook: out of its inbox): bot/telegram_groups.py."""
    groups = application.bot_data["goat"].groups
    return lambda update: groups.take_in(update, application.bot.username)


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
    if user is not None and (user.id in goat.settings.telegram.allowed_users or anyones_command(update)):
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


def anyones_command(update: Update) -> bool:
    """Whether the update is a command anyone may send: in their private chat, one that takes or
    erases their own data (a listening group keeps the lines of members the bot does not serve)."""
    message = update.message
    return (NEW_COMMAND.check_update(update) and message.chat.type == ChatType.PRIVATE
            and command_parts(message.text)[0][1:].lower() in ANYONE_S_COMMANDS)


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
        # The sender's name as Telegram gives it now: a name changed later shows from then on.
        await goat.runner.run(str(chat_id), text, user_id=str(update.effective_user.id),
                              user_name=usable_name(update.effective_user.full_name), on_token=reply.feed,
                              on_reply=finish, message_ref=str(message.message_id), keep_unanswered=True)
    except InvalidTurn as exc:
        await message.reply_text(failure_reply(exc))
    except Exception as exc:  # the model or a backend failed: the reply says what to do
        log_failure(goat, chat_id, failed_for(exc))
        await reply.fail(failure_reply(exc))
    finally:
        typing.cancel()


def log_failure(goat: Goat, chat_id: int, error: BaseException) -> None:
    """The operator's line for a failed turn: what failed, in the error's own words, secrets masked."""
    log.warning("a turn of chat %s failed: %s: %s", chat_id, type(error).__name__, goat.redact(str(error)))


async def on_edit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An edited message: its new text replaces what its turn stored (L2, L3, the word index), and
    no turn runs. An edit of a message no turn stored (a command, an older message) changes nothing.
    In a listening group, every edit waits in line behind the messages heard (bot/telegram_groups.py)."""
    message, goat = update.edited_message, goat_of(context)
    if message.chat.type in GROUPS and await goat.groups.listens(message.chat_id):
        return
    # The text as a turn takes it: in a group, without the bot's mention (an edit may drop it).
    text = addressed(message, context.bot.username)
    chat_id, user_id = _ids(update)
    edit = turn_input(chat_id, message.text if text is None else text, user_id)
    try:
        check_input(edit)
    except InvalidTurn:  # nothing a turn could take (only the mention is left): what is stored stays
        return
    try:
        await goat.memory.entries.edit_message(chat_id, str(message.message_id), user_id, edit["message"])
    except MEMORY_UNREACHABLE as exc:  # what was stored stays whole; sending the text again would make a turn
        log.warning("an edit was not kept: %s", goat.redact(str(exc)))
        await message.reply_text(EDIT_NOT_KEPT)


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
    _, user_id = _ids(update)
    document = await goat_of(context).runner.services.memory.admin.export(user_id)  # everything of theirs
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
    except FORGET_UNFINISHED as exc:
        log.warning("%s", exc)
        await update.effective_message.reply_text(FORGET_UNFINISHED_REPLY)
        return
    await update.effective_message.reply_text(
        f"Done: I forgot {forgotten.facts} fact(s), {len(forgotten.chats)} conversation(s), and your part of "
        f"{len(forgotten.shared)} group(s).")


async def listen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/listen on|off|keep N`` in a group, from its administrators (as Telegram reports them) or
    an operator; ``/listen`` alone says how the group is listened to."""
    message, goat, chat_id = update.effective_message, goat_of(context), update.effective_chat.id
    if update.effective_chat.type not in GROUPS:
        await message.reply_text("/listen is for groups: send it there, as one of the group's administrators.")
        return
    groups, args = goat.groups, [arg.lower() for arg in context.args]
    if not args:
        days = await groups.days(chat_id)
        kept = f", keeping {days:g} days of it" if days else ""
        await message.reply_text(f"I am listening to this group{kept}." if await groups.listens(chat_id) else
                                 "I am not listening to this group: I keep only what is addressed to me.")
        return
    choice = listen_choice(args)
    if choice is None:
        await message.reply_text(LISTEN_USAGE)
        return
    user = update.effective_user.id
    if user not in goat.settings.telegram.operators and not await is_administrator(context.bot, chat_id, user):
        await message.reply_text("Only the group's administrators can change what I keep of it.")
        return
    await answer_choice(update, context, groups, *choice)


def listen_choice(args: list[str]) -> tuple[bool | None, float | None] | None:
    """``/listen``'s arguments as (on, days), each None when not given; None when unreadable."""
    if args in (["on"], ["off"]):
        return args == ["on"], None
    if len(args) == 2 and args[0] == "keep":
        try:
            days = float(args[1])
        except ValueError:
            return None
        return (None, days) if 0 <= days < 100_000 else None
    return None


async def answer_choice(update: Update, context: ContextTypes.DEFAULT_TYPE, groups: GroupListening,
                        on: bool | None, days: float | None) -> None:
    message, chat_id = update.effective_message, update.effective_chat.id
    was = await groups.listens(chat_id)
    await groups.choose(chat_id, on=on, days=days)
    if days is not None:
        await message.reply_text(f"I keep {days:g} days of this group's messages." if days else
                                 "I keep this group's messages until they are forgotten.")
    elif on and not was:
        await context.bot.send_message(chat_id, notice(await groups.days(chat_id)))
        if not context.bot.can_read_all_group_messages:
            await message.reply_text(PRIVACY_ON)
    elif on:
        await message.reply_text("I am already listening to this group.")
    else:
        await message.reply_text("I stopped listening: from now on I keep only what is addressed to me. What I "
                                 "heard stays, until its retention ends or its writers forget it.")
