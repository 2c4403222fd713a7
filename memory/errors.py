"""Errors the memory layer raises to its callers (light to import: the CLI catches them)."""

from __future__ import annotations

import re

MASK = "[redacted]"
# scheme://user:password@host, and scheme://:password@host as Redis URLs carry a password alone
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s:@]*:[^/\s@]+(?=@)")


def without_credentials(text: str) -> str:
    """``text`` with the credentials of every URL in it masked (``scheme://user:password@host``,
    ``scheme://:password@host``)."""
    return _URL_CREDENTIALS.sub(MASK, text)


class BackendUnavailable(RuntimeError):
    """A backend could not be reached; the message says which and what to do. It names the
    backend's URL without its credentials: the message is printed and logged as it is."""

    def __init__(self, backend: str, detail: str, fix: str = "") -> None:
        self.backend = backend
        super().__init__(without_credentials(f"{backend} is unavailable: {detail}" + (f" — {fix}" if fix else "")))
