"""Test doubles that speak real protocols over loopback (no real providers)."""

from .openai_server import (
    FakeOpenAI,
    Reply,
    error_reply,
    text_reply,
    tool_calls_reply,
)

__all__ = ["FakeOpenAI", "Reply", "error_reply", "text_reply", "tool_calls_reply"]
