"""The user commands every text face offers (`goat chat`, Telegram): each written once, over one
user's memory in one chat; a face reads the command's argument and shows the text it returns.
The MCP server and the model's memory tools call the same verbs (``MemoryScope``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.report import render_report
from graph.replies import FACT_REFUSED, SEARCH_REFUSED
from graph.runner import TurnRunner
from graph.observability.why_report import LastTurn, turn_report
from memory.facade import MemoryScope
from nodes.toolkit.flow import evidence_line


@dataclass(frozen=True)
class Asker:
    """Who asks, where: the user and the chat a command acts on."""

    runner: TurnRunner
    chat_id: str
    user_id: str

    def memory(self) -> MemoryScope:
        return self.runner.services.memory.scope(self.chat_id, self.user_id)


async def facts(asker: Asker, _: str) -> str:
    known = await asker.memory().facts()
    return "\n".join(f"{key}: {value}" for key, value in sorted(known.items())) or "I keep no facts about you yet."


async def remember(asker: Asker, argument: str) -> str:
    key, sep, value = argument.partition("=")
    if not sep or not key.strip() or not value.strip():
        return "Usage: /remember key=value, e.g. /remember city=Porto"
    try:
        await asker.memory().remember(key, value)
    except FACT_REFUSED as exc:
        return str(exc)
    return f"Noted: {key.strip()} = {value.strip()}"


async def forget(asker: Asker, key: str) -> str:
    if not key.strip():
        return "Usage: /forget key (/facts lists the keys)"
    return f"Forgot {key.strip()}." if await asker.memory().forget_fact(key) else f"I keep no fact called {key.strip()}."


async def search(asker: Asker, query: str) -> str:
    if not query.strip():
        return "Usage: /search what to look for"
    try:
        found = await asker.memory().search(query)
    except SEARCH_REFUSED as exc:
        return str(exc)
    return "\n".join(found) or "Nothing in memory stands out for that."


async def why(asker: Asker, _: str) -> str:
    return render_why(await asker.runner.last_turn(asker.chat_id))


async def reset(asker: Asker, _: str) -> str:
    await asker.runner.services.memory.start_afresh(asker.chat_id)
    return "Starting afresh: the recent conversation is cleared; earlier turns are still recalled when they matter."


def render_why(last: LastTurn) -> str:
    """What memory injected for the last turn and why (the table of `goat inspect`), and the
    tools it called."""
    if not last.state:
        return "No turn yet in this chat: /why explains the last answer."
    if not last.answered:
        return "The chat's last message got no answer (it failed or was cancelled): /why explains an answer."
    called = [f"    {evidence_line(result)}" for result in last.state.get("tool_results") or []]
    return "\n".join([render_report(turn_report(last.state)), f"  tools called: {len(called) or 'none'}", *called])


@dataclass(frozen=True)
class Command:
    run: Callable[[Asker, str], Awaitable[str]]
    usage: str  # the command and its argument, as /help shows it
    what: str  # what it does, in a few words
    own_data: bool  # shows the asker's own data: a group must not read it
    table: bool = False  # fixed-width lines: a face that has other fonts shows it in its fixed one


COMMANDS: dict[str, Command] = {
    "facts": Command(facts, "/facts", "what I keep about you", own_data=True),
    "remember": Command(remember, "/remember key=value", "keep a fact about you", own_data=False),
    "forget": Command(forget, "/forget key", "drop one of your facts", own_data=False),
    "search": Command(search, "/search text", "search this chat's memory", own_data=True),
    "why": Command(why, "/why", "what I recalled for the last message, and why", own_data=True,
                   table=True),
    "reset": Command(reset, "/reset", "start this conversation afresh (the archive stays)", own_data=False),
}
