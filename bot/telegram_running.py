"""`goat bot` running: the Application receiving updates, by long polling or as one of the
workers behind a webhook (bot/webhook.py), what it checks and says at start, and serving until
the process is stopped. Its handlers are bot/telegram.py's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application

from bot.telegram import register_commands, taking_in
from bot.webhook import Inbox, WebhookWorker, shared_secret
from graph.observability.redaction import Redactor
from graph.settings import Settings
from memory.errors import BackendUnavailable
from memory.facade import async_client

log = logging.getLogger("bot.telegram")  # the bot's lines, under one name whichever module writes them


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
        await warn_of_privacy_mode(application)
        goat = application.bot_data["goat"]
        goat.memory.heard.wake()  # lines an earlier process kept and did not write
        expiring = asyncio.create_task(goat.groups.expire_every(), name="goat-heard-retention")
        stack.callback(expiring.cancel)
        # The operator's line at start: what the bot serves, and with what (no token, no URL).
        log.info("goat bot: %s; model %s; %d allowed user(s); data folder %s",
                 f"webhook, listening on {listen}:{port}" if webhook else "polling",
                 settings.llm.model or "none (set GOAT_MODEL)", len(settings.telegram.allowed_users),
                 Path(settings.data_dir).resolve())
        yield


async def warn_of_privacy_mode(application: Application) -> None:
    """At start, the operator's warning when groups listen but Telegram sends the bot only what is
    addressed to it (privacy mode, which getMe reports)."""
    if application.bot.can_read_all_group_messages:
        return
    listening = await application.bot_data["goat"].groups.listening_groups()
    if listening:
        log.warning("%d group(s) listen (%s), but Telegram's privacy mode is on for this bot: they send it only "
                    "the messages addressed to it. Turn it off in @BotFather (/setprivacy, choose the bot, Disable), "
                    "then remove the bot from each group and add it again.", len(listening),
                    ", ".join(map(str, listening)))


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
    lease = settings.redis.chat_lock_seconds
    # The inbox's keys live beside memory's, on the same Redis, through a client of the worker's own.
    redis = async_client((await goat.memory.connect()).redis_url, cluster=settings.redis.cluster)
    try:
        # Never open: whoever reaches the port could post any user's messages (and their /export).
        token = configured.get_secret_value() if configured else await shared_secret(redis)
        goat.inbox = Inbox(redis, lease)
        worker = WebhookWorker(application, goat.runner, goat.inbox, secret=token, path=urlsplit(webhook).path,
                               sweep_seconds=lease / 2, take_in=taking_in(application))
        await application.bot.set_webhook(webhook, secret_token=token)
        async with worker.serving(listen, port):
            yield
    finally:
        await redis.aclose()


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
