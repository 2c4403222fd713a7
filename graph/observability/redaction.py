"""Secret redaction: the configured API key, tokens and secrets, and credentials inside URLs,
masked in every string of a JSON-able value (a turn's line) and of every log record a handler emits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, get_args

from pydantic import BaseModel, SecretStr

from graph.settings import Settings
from memory.credentials import MASK, url_secrets, without_credentials


class Redactor:
    """Masks secret values and URL credentials (``memory.credentials.without_credentials``: userinfo
    passwords, secret-named query parameters) in every string value of a JSON-able value.

    Values shorter than ``MIN_SECRET_CHARS`` are left alone: no real key is that short, and
    masking a placeholder such as ``k`` would shred every word that contains it."""

    MIN_SECRET_CHARS = 8

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= self.MIN_SECRET_CHARS}, key=len, reverse=True)

    @classmethod
    def for_settings(cls, settings: Settings) -> "Redactor":
        """The redactor of every secret the settings hold, read from the tree itself.

        Args:
            settings: the process's settings.
        Returns:
            A redactor of each ``SecretStr`` setting (a token, a key, a server's tokens), and the
            passwords and secret parameters inside each URL setting, should one be echoed bare:
            a setting added later is masked without being listed here.
        """
        secrets = list(_values(settings, _is_secret))
        return cls(secrets + [secret for url in _values(settings, _is_url) for secret in url_secrets(url)])

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


def _values(section: BaseModel, wanted: Callable[[str, Any], bool]) -> Iterator[str]:
    """The set values, as strings, of every setting of ``section`` (and of its sections) whose
    ``wanted(name, annotation)`` holds; a dict setting's values each."""
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            yield from _values(value, wanted)
        elif value and wanted(name, field.annotation):
            # Plain strings too: a settings copy made without validation (model_copy) keeps them so.
            for item in value.values() if isinstance(value, Mapping) else [value]:
                yield item.get_secret_value() if isinstance(item, SecretStr) else str(item)


def _is_secret(name: str, annotation: Any) -> bool:
    """Whether a setting holds secrets: typed ``SecretStr``, alone, optional or in a dict."""
    return annotation is SecretStr or any(_is_secret(name, argument) for argument in get_args(annotation))


def _is_url(name: str, annotation: Any) -> bool:
    """Whether a setting is a URL (``url``, ``base_url``, ``api_url``…)."""
    return name == "url" or name.endswith("_url")


class RedactingFilter(logging.Filter):
    """A log handler's filter that masks secrets and URL credentials in every record it emits,
    whichever library wrote it (an exception's text may hold a URL with its password)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._redact(record.getMessage()), None
        return True
