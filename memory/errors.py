"""Errors the memory layer raises to its callers (light to import: the CLI catches them)."""

from __future__ import annotations


class BackendUnavailable(RuntimeError):
    """A backend could not be reached; the message says which and what to do."""

    def __init__(self, backend: str, detail: str, fix: str = "") -> None:
        self.backend = backend
        super().__init__(f"{backend} is unavailable: {detail}" + (f" — {fix}" if fix else ""))
