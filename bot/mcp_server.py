"""`goat mcp`: GOAT's memory for any agent, over the Model Context Protocol.

The tools hand another agent what GOAT's own turns get: the proactive recall (prefetch, gap
filter and budget, no model call), the verbatim archive, the memory tools and L1 facts,
plus read-only diagnostics of this chat's turns, and its memories listed and deleted by id.
Each tool is annotated (read-only, destructive, idempotent) as MCP clients expect. Served over
stdio (what desktop clients spawn) or streamable HTTP behind a bearer token.

The chat and user are fixed when the server starts: no tool takes them as an argument, so
no call can reach another chat's or user's memory. Message text is logged only with
``observability.log_content`` on (the SDK itself logs neither arguments nor results).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
from datetime import datetime, timedelta, timezone
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field
from redis.asyncio import Redis, RedisCluster

from bot.doctor import backend_fix, backend_mode
from graph.importing.importer import parse_timestamp
from graph.json_limits import MAX_VALUE_BYTES, MAX_VALUE_ITEMS, JsonBeyondLimits, JsonScan, JsonTooLarge
from graph.observability.redaction import Redactor
from graph.replies import error_line, says_what_to_do
from graph.runner import TurnRunner
from graph.observability.turn_log import TurnLog, turns_log_path
from graph.observability.why_report import mechanisms
from graph.settings import Settings
from memory.facade import Memory, async_client
from memory.retrieval import why_kept
from memory.prompt import one_line
from memory.turns import Hit, ImportedTurn, Message, Standing, Writers, archive_id, iso_time, message_problem, name_problem
from nodes.toolkit.memory_tools import MemoryToolbox

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "GOAT's long-term memory of one conversation: every exchange kept verbatim, plus facts about "
    "the user. Call recall with the user's message before answering to get what GOAT would recall "
    "for it; call archive_turn after answering to keep the exchange."
)
_ERROR_LINES = 2_000  # of the turn log, read back by recent_errors
# An exchange archived again without a time or a client id within this many seconds is a
# client's retry of the same turn, not a new one.
RETRY_WINDOW_S = 300.0
SEEN_PREFIX = "goat:seen"  # where an exchange sent without a time or a client id is marked, on memory's Redis
PAGE_MAX = 100  # memories a page of list_memories holds at most
NAME = "the user's display name, shown beside their words in a conversation of several people (default: none)"

# What each tool does to this chat's memory, as MCP clients read it (a client may ask before a
# destructive call). Every tool acts on GOAT's memory alone: a closed world.
READS = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
UPSERTS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
APPENDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DELETES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)

# A tool's call into the memory server: ``guarded(action, *args)``, the result redacted.
Guarded = Callable[..., Awaitable[dict[str, Any]]]


class MemoryServer:
    """The tools of one server: one chat and one user, fixed at start."""

    def __init__(self, runner: TurnRunner, chat_id: str, user_id: str) -> None:
        self.runner = runner
        self.chat_id = chat_id
        self.user_id = user_id
        self._redis: Redis | RedisCluster | None = None  # the retries' marks: opened on the first, closed by aclose
        self._joined = False

    @property
    def memory(self) -> Memory:
        return self.runner.services.memory

    @property
    def settings(self) -> Settings:
        return self.runner.services.settings

    async def join(self) -> None:
        """Before a tool's first call reads or writes: the user is one of the chat's owners, as
        goat chat's user is (a chat only strangers' claims were in is theirs, emptied first)."""
        if not self._joined:
            await self.memory.scope(self.chat_id, self.user_id).join()
            self._joined = True

    def toolbox(self) -> MemoryToolbox:
        return MemoryToolbox(self.memory.scope(self.chat_id, self.user_id))

    async def recall(self, message: str) -> dict[str, Any]:
        state = await self.runner.inspect(self.chat_id, message, user_id=self.user_id)
        why = why_kept(state.get("verdicts") or [])
        return {
            "recalled": [{"id": r["id"], "time": _iso(r["timestamp"]), "content": r["content"], "why": why[r["id"]]}
                         for r in state.get("l3") or []],
            "facts": state.get("facts") or {},
            "tokens": state.get("tokens"),
            "budget": {"total": (state.get("aits") or {}).get("budget"), **(state.get("split") or {})},
            "mechanisms": mechanisms(state.get("prefetch") or {}),
        }

    async def archive_turn(self, user: str, assistant: str, timestamp: str | float | None,
                           client_id: str | None = None, name: str | None = None) -> dict[str, Any]:
        for field, text in (("user", user), ("assistant", assistant)):
            if problem := message_problem(text):  # refused as a live message, or a line of `goat import`
                raise ValueError(f"{field} {problem}")
        if name is not None and (problem := name_problem(name)):
            raise ValueError(f"name {problem}")
        if client_id is not None and not client_id.strip():
            raise ValueError("client_id is empty: leave it out, or name the exchange")
        if timestamp is not None:
            when = parse_timestamp(timestamp)
        elif client_id is not None:
            when = time.time()
        else:  # a retry sends the same exchange again: it is the turn first sent, at that time
            when = await self.first_seen(f"mcp:{_digest(self.chat_id, self.user_id, user, assistant)}",
                                         time.time(), RETRY_WINDOW_S)
        messages = tuple(Message(role=role, content=text, timestamp=when, user_id=self.user_id,
                                 **({"name": name} if name and role == "user" else {}))
                         for role, text in (("user", user), ("assistant", assistant)))
        # The same exchange at a time that shows the same (to the second, as memories are listed) is
        # one exchange: a resend whose clock moved a millisecond is no second turn at an identical
        # time. (A whole second gives the key it gave before times were rounded here.)
        shown = repr(float(math.floor(when)))
        key = f"mcp-id:{_digest(client_id)}" if client_id is not None else f"mcp:{_digest(shown, user, assistant)}"
        # Written as its chat's turns are, by its user (whom the operator vouched for at start).
        written = await self.memory.entries.import_turns(self.chat_id, [ImportedTurn(key, self.user_id, messages)],
                                                         writers=Writers(frozenset({self.user_id}), Standing.VOUCHED))
        if not written:
            return {"archived": False, "note": f"this exchange{' (by its client_id)' if client_id else ''} was "
                                               "archived before"}
        return {"archived": True, "id": archive_id(self.chat_id, written[0]), "turn": written[0],
                "time": _iso(when)}

    async def first_seen(self, key: str, now: float, window: float) -> float:
        """When ``key`` (naming what a client sent, e.g. a digest of it) was first seen in the last
        ``window`` seconds: a request retried within the window is known by it. Marked on memory's
        Redis, so every server of the chat (and the next one) knows it.

        Returns:
            That time; ``now`` when it was not seen (it is seen now, from then on).
        """
        if self._redis is None:
            self._redis = async_client((await self.memory.connect()).redis_url, cluster=self.settings.redis.cluster)
        name = f"{SEEN_PREFIX}:{key}"
        if await self._redis.set(name, repr(now), nx=True, px=max(1, round(window * 1000))):
            return now
        seen = await self._redis.get(name)
        return now if seen is None else float(seen)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def store_memory(self, content: str, tags: list[str] | None, name: str | None) -> dict[str, Any]:
        return {"stored": await self.memory.scope(self.chat_id, self.user_id).store(content, tags, name=name)}

    async def list_memories(self, limit: int, cursor: str | None) -> dict[str, Any]:
        entries, following = await self.memory.entries.page(self.chat_id, limit, cursor)
        return {"memories": [{"id": entry["id"], "time": _iso(entry["timestamp"]), **_named(entry),
                              "text": one_line(entry["content"])} for entry in entries],
                "next_cursor": following}

    async def delete_memory(self, entry_id: str) -> dict[str, Any]:
        if not await self.memory.entries.delete(self.chat_id, entry_id):
            raise LookupError(f"no memory of this conversation has the id {entry_id!r}")
        return {"deleted": entry_id}

    async def remember_fact(self, key: str, value: str) -> dict[str, Any]:
        return await self.toolbox().promote(key, value)

    async def forget_fact(self, key: str) -> dict[str, Any]:
        return await self.toolbox().forget(key)

    async def diagnose_last_turn(self) -> dict[str, Any]:
        return (await self.runner.last_turn(self.chat_id)).diagnosis()

    async def memory_snapshot(self) -> dict[str, Any]:
        health = await self.memory.admin.health(self.chat_id, self.user_id)
        working = (await self.memory.working(self.chat_id, 1)).messages
        last = working[-1]["timestamp"] if working and "timestamp" in working[-1] else None
        return {
            "chat_id": self.chat_id,
            "user_id": self.user_id,
            "layers": health.layers,
            "last_write": _iso(last),
            "backends": [{"name": b.name, "mode": backend_mode(b.name, self.settings), "ok": b.ok, "detail": b.detail,
                          **({} if b.ok else {"fix": backend_fix(b, self.settings)})}
                         for b in health.backends],
        }

    async def recent_errors(self, minutes: float) -> dict[str, Any]:
        if minutes <= 0:
            raise ValueError("minutes must be positive")
        since = datetime.now(timezone.utc) - timedelta(minutes=minutes)
        lines = TurnLog(turns_log_path(self.settings), self.settings.observability.log_max_bytes).tail(
            _ERROR_LINES, events=("turn", "turn_failed"))
        errors = [
            {"time": line["timestamp"], "turn": line.get("turn"),
             **({"error": line["error"]} if line["event"] == "turn_failed" else {"degraded": line["degraded"]})}
            for line in lines
            if line.get("chat_id") == self.chat_id and datetime.fromisoformat(line["timestamp"]) >= since
            and (line["event"] == "turn_failed" or line.get("degraded"))
        ]
        return {"minutes": minutes, "errors": errors}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _named(entry: Hit) -> dict[str, str]:
    """The entry's speaker's (or note writer's) name, when one was given."""
    return {"name": name} if (name := entry["metadata"].get("name")) else {}


def _iso(moment: float | None) -> str | None:
    return None if moment is None else iso_time(moment)


def build_server(memory_server: MemoryServer) -> MCPServer:
    """The MCP server and its tools, each a thin call into ``memory_server``: a refusal or a
    backend outage becomes a tool error with its message, never a crashed server."""
    server = MCPServer("goat", version=version("goat"), instructions=INSTRUCTIONS, log_level="WARNING")
    # What goes back to the client holds no secret: backends' URLs and error texts may carry them.
    guarded = _guard(Redactor.for_settings(memory_server.settings), memory_server.join)
    _add_recall_tools(server, memory_server, guarded)
    _add_memory_list_tools(server, memory_server, guarded)
    _add_fact_tools(server, memory_server, guarded)
    _add_diagnostic_tools(server, memory_server, guarded)
    return server


def _guard(redact: Redactor, join: Callable[[], Awaitable[None]]) -> Guarded:
    """How every tool calls into the memory server: once its user joined the chat, its result
    redacted, a failure a tool error."""

    async def guarded(action: Callable[..., Awaitable[dict[str, Any]]], *args: Any) -> dict[str, Any]:
        try:
            await join()
            return redact(await action(*args))
        except Exception as exc:  # the client gets what failed, never a dead server
            if not says_what_to_do(exc):
                log.warning("goat mcp: a tool failed: %s", type(exc).__name__)
            raise ToolError(redact(error_line(exc))) from None

    return guarded


def _add_recall_tools(server: MCPServer, calls: MemoryServer, guarded: Guarded) -> None:
    """Recall for a message, search and store notes, archive an exchange."""

    @server.tool(annotations=READS)
    async def recall(message: Annotated[str, Field(description="the user's message, as they wrote it")]) -> dict[str, Any]:
        """What GOAT recalls for this message right now, before any model answers: the earlier
        exchanges of this conversation that stand out for it (verbatim, with their time and why
        each was kept), the facts known about the user, and the tokens they take. Call it with
        every user message and put what it returns in front of your answer."""
        return await guarded(calls.recall, message)

    @server.tool(annotations=READS)
    async def search_memory(
        query: Annotated[str, Field(description="what to look for, in words")],
        after: Annotated[str | None, Field(description="only memories from this ISO-8601 date or time on")] = None,
        before: Annotated[str | None, Field(description="only memories up to this ISO-8601 date or time")] = None,
    ) -> dict[str, Any]:
        """Search this conversation's long-term memory (earlier exchanges and stored notes)
        beyond what recall returned, optionally within a period."""
        return await guarded(calls.toolbox().search, query, after, before)

    @server.tool(annotations=UPSERTS)
    async def store_memory(
        content: Annotated[str, Field(description="the note, in full")],
        tags: Annotated[list[str] | None, Field(description="short labels to find it by")] = None,
        name: Annotated[str | None, Field(description=NAME)] = None,
    ) -> dict[str, Any]:
        """Keep a note in this conversation's long-term memory, verbatim, to be found later."""
        return await guarded(calls.store_memory, content, tags, name)

    @server.tool(annotations=APPENDS)
    async def archive_turn(
        user: Annotated[str, Field(description="the user's message, verbatim")],
        assistant: Annotated[str, Field(description="your reply, verbatim")],
        timestamp: Annotated[str | float | None, Field(
            description="when it was said: ISO-8601 or unix seconds (default: now)")] = None,
        client_id: Annotated[str | None, Field(
            description="your own id for this exchange; sent again, it archives nothing")] = None,
        name: Annotated[str | None, Field(description=NAME)] = None,
    ) -> dict[str, Any]:
        """Archive one exchange of your conversation verbatim, as GOAT archives its own turns, so
        that later recall finds it. Archived once: the same exchange at the same time (to the
        second), the same client_id, or the same exchange sent again without either within a few
        minutes. A memory deleted with delete_memory can be archived again."""
        return await guarded(calls.archive_turn, user, assistant, timestamp, client_id, name)


def _add_memory_list_tools(server: MCPServer, calls: MemoryServer, guarded: Guarded) -> None:
    """The conversation's memories listed a page at a time, and deleted by id."""

    @server.tool(annotations=READS)
    async def list_memories(
        limit: Annotated[int, Field(ge=1, le=PAGE_MAX, description="memories in the page")] = 20,
        cursor: Annotated[str | None, Field(
            description="the next_cursor of the previous page (default: the newest memories)")] = None,
    ) -> dict[str, Any]:
        """The memories of this conversation (archived exchanges and stored notes), newest first,
        a page at a time: each with its id, time and text. next_cursor is null after the last page."""
        return await guarded(calls.list_memories, limit, cursor)

    @server.tool(annotations=DELETES)
    async def delete_memory(id: Annotated[str, Field(description="the memory's id, as list_memories gives it")]
                            ) -> dict[str, Any]:
        """Delete one memory of this conversation for good: the archived exchange or note, and the
        exchange's messages in the recent conversation too."""
        return await guarded(calls.delete_memory, id)


def _add_fact_tools(server: MCPServer, calls: MemoryServer, guarded: Guarded) -> None:
    """The facts about the user: listed, saved, forgotten."""

    @server.tool(annotations=READS)
    async def list_facts() -> dict[str, Any]:
        """The facts saved about the user, by key (they are part of every recall)."""
        return await guarded(calls.toolbox().facts)

    @server.tool(annotations=UPSERTS)
    async def remember_fact(
        key: Annotated[str, Field(description="a short name for the fact, e.g. 'dog_name'")],
        value: Annotated[str, Field(description="the fact")],
    ) -> dict[str, Any]:
        """Save or update a lasting fact about the user. Refused when the facts would grow past
        their token limit: shorten the value or forget a fact that no longer matters."""
        return await guarded(calls.remember_fact, key, value)

    @server.tool(annotations=DELETES)
    async def forget_fact(key: Annotated[str, Field(description="the key of the saved fact")]) -> dict[str, Any]:
        """Remove a saved fact about the user."""
        return await guarded(calls.forget_fact, key)


def _add_diagnostic_tools(server: MCPServer, calls: MemoryServer, guarded: Guarded) -> None:
    """Read-only diagnostics: the last turn, what each layer holds, the recent failures."""

    @server.tool(annotations=READS)
    async def diagnose_last_turn() -> dict[str, Any]:
        """Read-only: what the last turn of this conversation saw — the mechanisms that fired,
        every candidate and why it was injected, kept or dropped, the budget split, the prompt's
        size, latency per step and anything that failed."""
        return await guarded(calls.diagnose_last_turn)

    @server.tool(annotations=READS)
    async def memory_snapshot() -> dict[str, Any]:
        """Read-only: what each memory layer holds for this conversation and user, the last
        write, and whether each backend is healthy."""
        return await guarded(calls.memory_snapshot)

    @server.tool(annotations=READS)
    async def recent_errors(
        minutes: Annotated[float, Field(description="how far back to look (default 60)")] = 60,
    ) -> dict[str, Any]:
        """Read-only: this conversation's turns of the last minutes that failed or ran degraded,
        with what went wrong."""
        return await guarded(calls.recent_errors, minutes)


def bearer_only(app: Any, token: str) -> Any:
    """``app``, answering 401 to any HTTP request without ``Authorization: Bearer <token>``
    (the scheme in any case, as HTTP has it; the token compared in constant time). Lifespan
    events pass through (the MCP session manager)."""
    expected = token.encode()

    async def app_with_token(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scheme, _, given = dict(scope.get("headers") or []).get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), expected):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": b'{"error": "a valid bearer token is required"}'})
                return
        await app(scope, receive, send)

    return app_with_token


def json_bounded(app: Any) -> Any:
    """``app``, refusing a POST whose JSON passes the bounds of :mod:`graph.json_limits` (413 over
    its size, 400 nested too deeply or with too many values), checked as its body arrives: the
    MCP SDK reads a body whole, then parses it."""

    async def bounded(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await app(scope, receive, send)
            return
        scan, chunks, more = JsonScan(), [], True
        try:
            declared = dict(scope.get("headers") or []).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > MAX_VALUE_BYTES:
                raise JsonTooLarge("the request", 0)
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunk, more = message.get("body", b""), message.get("more_body", False)
                if scan.offset + len(chunk) > MAX_VALUE_BYTES:
                    raise JsonTooLarge("the request", scan.offset)
                scan.feed(chunk)
                chunks.append(chunk)
            if scan.items > MAX_VALUE_ITEMS:
                raise JsonTooLarge("the request", 0)
        except JsonBeyondLimits as exc:
            error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": str(exc)}}
            await send({"type": "http.response.start", "status": 413 if isinstance(exc, JsonTooLarge) else 400,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": json.dumps(error).encode()})
            return
        body = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> dict:
            return body.pop() if body else await receive()

        await app(scope, replayed, send)

    return bounded
