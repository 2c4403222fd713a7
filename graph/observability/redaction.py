"""Secret redaction: the configured API key, tokens and secrets, and credentials inside URLs,
masked in every string of a JSON-able value (a turn's line) and of every log record a handler emits."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import SecretStr

from graph.settings import Settings
from memory.errors import MASK, url_secrets, without_credentials


class Redactor:
    """Masks secret values and URL credentials (``memory.errors.without_credentials``: userinfo
    passwords, secret-named query parameters) in every string value of a JSON-able value.

    Values shorter than ``MIN_SECRET_CHARS`` are left alone: no real key is that short, and
    masking a placeholder such as ``k`` would shred every word that contains it."""

    MIN_SECRET_CHARS = 8

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= self.MIN_SECRET_CHARS}, key=len, reverse=True)

    @classmethod
    def for_settings(cls, settings: Settings) -> "Redactor":
        keys = (settings.llm.api_key, settings.telegram.token, settings.telegram.webhook_secret, settings.mcp.token,
                settings.letta.token, *settings.server.tokens.values())
        # Plain strings too: a settings copy made without validation (model_copy) keeps them so.
        secrets = [key.get_secret_value() if isinstance(key, SecretStr) else str(key) for key in keys if key]
        # The passwords and secret parameters inside the configured URLs, should one be echoed bare.
        urls = (settings.redis.url, settings.chroma.url, settings.letta.url, settings.llm.base_url,
                settings.telegram.api_url)
        return cls(secrets + [secret for url in urls for secret in url_secrets(url)])

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, MASK)
            return without_credentials(value)
        if isinstance(value, Mapping):
            return {k: self(v) for k, v in value.items()}  # the keys are field and node names
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


class RedactingFilter(logging.Filter):
    """A log handler's filter that masks secrets and URL credentials in every record it emits,
    whichever library wrote it (an exception's text may hold a URL with its password)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._redact(record.getMessage()), None
        return True
