"""The text of the system prompt's sections: L0 + time + L1, the L3 block, and the tool guidance."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone

RECALL_HEADER = "[Recalled from earlier conversations]"
FACTS_HEADER = "[Known facts about the user]"
TOOLS_HEADER = "[Tools]"

# What memory puts in the prompt is shown on one line, so a stored text can never start a
# line, and so a block, of its own: every character that str.splitlines() or a model reads
# as a line or paragraph break becomes a visible marker, every other control character a space.
LINE_BREAK_MARKER = " ⏎ "
_LINE_BREAKS = re.compile(r"\s*[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+\s*")
_CONTROLS = re.compile(r"[\x00-\x09\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]")

TOOLS_INTRO = (
    "Memory relevant to each message is recalled for you above; use a tool only when that is not enough."
)
# One short line per memory tool, by name (the tools themselves are in nodes/toolkit/memory_tools.py).
MEMORY_TOOL_GUIDANCE = {
    "search_memory": "search_memory(query, after?, before?): look further back in this chat's memory than "
    "the recalled lines; after/before are ISO-8601 dates or times.",
    "store_memory": "store_memory(content, tags?): keep a note worth finding later, in full (not a summary).",
    "promote_memory": "promote_memory(key, value): save a lasting fact about the user (name, preference); "
    "it is shown in every later prompt, so keep it short.",
    "forget_fact": "forget_fact(key): remove a saved fact that is wrong or that the user wants forgotten.",
    "list_facts": "list_facts(): the facts saved about the user.",
}


def system_header(base_prompt: str, now: float, facts: dict[str, str]) -> str:
    """L0 identity, the current time, and L1 facts: the part of the prompt that is always there."""
    when = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d %H:%M UTC (%A)")
    return "\n\n".join(part for part in (base_prompt.strip(), f"Current time: {when}", facts_block(facts)) if part)


def facts_block(facts: Mapping[str, str]) -> str:
    """L1 as the prompt shows it ("" without facts); its size is what ``l1_facts_max_tokens`` limits."""
    if not facts:
        return ""
    return FACTS_HEADER + "\n" + "\n".join(f"- {one_line(k)}: {one_line(v)}" for k, v in sorted(facts.items()))


def one_line(text: str) -> str:
    """``text`` as memory shows it in a prompt: on one line, breaks as `` ⏎ ``, no control characters."""
    return _LINE_BREAKS.sub(LINE_BREAK_MARKER, _CONTROLS.sub(" ", text.strip()))


# A name as the prompt shows it keeps letters, digits, spaces and . ' - _ alone: whatever else a
# person puts in their display name (a line break, "system:", a block's brackets) cannot make it
# more than a name.
_NOT_IN_NAMES = re.compile(r"[^\w .'\-]+")
MAX_SHOWN_NAME_CHARS = 40


def speaker_name(name: str) -> str:
    """A speaker's display name (or id) as the prompt shows it, before their words: on one line, of
    letters, digits, spaces and . ' - _ alone, at most 40 characters; "someone" when nothing is left."""
    shown = " ".join(_NOT_IN_NAMES.sub(" ", name).split())[:MAX_SHOWN_NAME_CHARS].strip()
    return shown or "someone"


def people_note(people: Mapping[str, str], speaker: str) -> str:
    """The system prompt's line for a chat of several people: their lines are named, and who is
    asking now (``speaker``: their user id)."""
    asking = speaker_name(people.get(speaker) or speaker)
    return (f"[People] Several people talk in this chat: each of their messages, and each recalled line, starts "
            f"with its speaker's name. The message to answer is from {asking}: \"I\" and \"my\" in it mean {asking}.")


def recall_block(lines: list[str]) -> str:
    return RECALL_HEADER + "\n" + "\n".join(lines) if lines else ""


def tool_guidance(tools: Mapping[str, str]) -> str:
    """One line per offered tool (name -> description); "" when none is offered.

    Memory tools get their fixed line; any other tool the first line of its own description."""
    if not tools:
        return ""
    lines = [
        f"- {MEMORY_TOOL_GUIDANCE.get(name) or _first_line(name, description)}" for name, description in tools.items()
    ]
    return "\n".join([TOOLS_HEADER, TOOLS_INTRO, *lines])


def _first_line(name: str, description: str) -> str:
    summary = description.strip().splitlines()[0] if description.strip() else ""
    return f"{name}: {summary}" if summary else name
