"""The demo's bundled conversation and its follow-up questions, and the chat it is imported into:
what `goat demo` runs, and `goat web` offers as examples in that chat."""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).parent
CHAT_ID = "demo"


def conversation() -> list[str]:
    return (DEMO_DIR / "conversation.jsonl").read_text("utf-8").splitlines()


def questions() -> list[str]:
    return [q for q in (DEMO_DIR / "questions.txt").read_text("utf-8").splitlines() if q.strip()]
