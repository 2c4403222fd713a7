"""The text of the system prompt's memory sections (L0 + time + L1, and the L3 block)."""

from __future__ import annotations

from datetime import datetime, timezone

RECALL_HEADER = "[Recalled from earlier conversations]"
FACTS_HEADER = "[Known facts about the user]"


def system_header(base_prompt: str, now: float, facts: dict[str, str]) -> str:
    """L0 identity, the current time, and L1 facts: the part of the prompt that is always there."""
    when = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d %H:%M UTC (%A)")
    parts = [base_prompt.strip(), f"Current time: {when}"]
    if facts:
        parts.append(FACTS_HEADER + "\n" + "\n".join(f"- {k}: {v}" for k, v in sorted(facts.items())))
    return "\n\n".join(parts)


def recall_block(lines: list[str]) -> str:
    return RECALL_HEADER + "\n" + "\n".join(lines) if lines else ""
