"""The whole settings tree, composed here: memory's sections (memory/settings.py), the model's
(nodes/settings.py), and the sections of the faces (Telegram, MCP) and of LangGraph's server and the
turn log. Every ``goat`` command loads it: it imports no more than the settings of the layers below."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from memory.settings import Section, SettingsError
from nodes.settings import NodeSettings

MIN_SECRET_CHARS = 16  # a webhook secret or an MCP token shorter than this could be guessed


class Telegram(Section):
    token: SecretStr | None = Field(None, description="the bot's token, from @BotFather")
    api_url: str = Field("https://api.telegram.org", description="the Bot API server's root (requests go to "
                         "{root}/bot{token}/{method}): a self-hosted telegram-bot-api, say")
    allowed_users: tuple[int, ...] = Field((), description="Telegram user ids the bot serves, comma-separated; "
                                           "nobody else")
    webhook_secret: SecretStr | None = Field(None, description="what Telegram must send in "
                                             "X-Telegram-Bot-Api-Secret-Token (16–256 characters of A-Z a-z 0-9 _ "
                                             "-); unset: a strong one is made once in Redis")
    edit_interval: float = Field(1.0, gt=0, description="seconds between two edits of a streaming reply, per chat")
    listen_groups: tuple[int, ...] = Field((), description="group chat ids whose whole conversation the bot keeps "
                                           "(comma-separated), unless their administrators send /listen off; any "
                                           "other group is listened to only after /listen on")
    listen_days: float = Field(0.0, ge=0, description="days a listening group's heard messages are kept (older "
                               "ones erased from every file); 0: until forgotten. A group's administrators may set "
                               "their own with /listen keep N")
    operators: tuple[int, ...] = Field((), description="Telegram user ids whose /listen is honoured in any group, "
                                       "beside the group's administrators")

    @field_validator("allowed_users", "listen_groups", "operators", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):  # GOAT_ALLOWED_USERS=123,456
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_takes_it(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{%d,256}" % MIN_SECRET_CHARS, value.get_secret_value()):
            raise ValueError(f"must be {MIN_SECRET_CHARS} to 256 characters of A-Z, a-z, 0-9, _ and - (Telegram's "
                             "rule), e.g. from `openssl rand -hex 32`; unset, a strong one is made")
        return value


def _guessable(secret: SecretStr) -> bool:
    return len(secret.get_secret_value().strip()) < MIN_SECRET_CHARS


class Mcp(Section):
    token: SecretStr | None = Field(None, description="the bearer token `goat mcp --http` requires on every "
                                    "request, at least 16 characters (unset: it refuses to start)")

    @field_validator("token")
    @classmethod
    def _hard_to_guess(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and _guessable(value):
            raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters, e.g. from `openssl rand -hex 32`")
        return value


class Server(Section):
    """Who the graph serves on LangGraph's server (``langgraph dev``, LangGraph Platform)."""

    tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="user id → bearer token (alice=<token>,bob=<token>): every request "
        "carries one (each at least 16 characters) and a run's user is its token's; empty: every request is "
        "server.developer's")
    developer: str = Field("developer", min_length=1, description="who every request is when server.tokens is "
                           "empty (langgraph dev on loopback)")

    @field_validator("tokens", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        if isinstance(value, str):  # GOAT_SERVER_TOKENS=alice=<token>,bob=<token>
            pairs = [part.strip().partition("=") for part in value.split(",") if part.strip()]
            if any(not user.strip() or not sep for user, sep, _ in pairs):
                raise ValueError("expected user=token pairs separated by commas")
            return {user.strip(): token.strip() for user, _, token in pairs}
        return value

    @field_validator("tokens")
    @classmethod
    def _hard_to_guess(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if any(map(_guessable, value.values())):
            raise ValueError(f"each token must be at least {MIN_SECRET_CHARS} characters, e.g. from `openssl rand -hex 32`")
        return value

    def user_of(self, given: str) -> str | None:
        """Whose token ``given`` is (surrounding spaces ignored), compared in constant time with
        every token; None when it is nobody's."""
        given_bytes = given.strip().encode("utf-8", "surrogatepass")
        matched = [user for user, token in self.tokens.items()
                   if hmac.compare_digest(given_bytes, token.get_secret_value().encode("utf-8", "surrogatepass"))]
        return matched[0] if matched else None


class Observability(Section):
    log_content: bool = Field(False, description="message and reply text in the per-turn line (secrets never)")
    report_every: int = Field(50, ge=1, description="turns between two latency-percentile reports")
    latency_window: int = Field(1000, ge=1, description="latency samples kept per node for those reports")
    log_max_bytes: int = Field(10_000_000, ge=10_000, description="<data_dir>/logs/turns.jsonl is rotated at this "
                               "size; one previous file is kept")


class Settings(NodeSettings):
    """Every setting of every layer: the tree a process loads."""

    telegram: Telegram = Telegram()
    mcp: Mcp = Mcp()
    server: Server = Server()
    observability: Observability = Observability()


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (or ``$GOAT_CONFIG``, or ``./goat.toml`` if present) and the environment."""
    return Settings.load(path, environ)


def load_settings_leaving_out_invalid(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Settings, SettingsError | None]:
    """As :func:`load_settings`, each value refused left at its default (for `goat doctor`): see
    :meth:`memory.settings.MemorySettings.load_leaving_out_invalid`.

    Returns:
        The settings, and the error naming every value left out (None when none was).
    """
    return Settings.load_leaving_out_invalid(path, environ)
