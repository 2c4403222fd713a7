"""What every request of `goat web` passes on its way to a route and back: the Host check (on
loopback, a page reached under another name is refused: DNS rebinding's shape), the security
headers on every response, and every fault a request meets answered as a page of one line (a
backend down: 503, naming it), logged as one line, never a traceback."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import ClientDisconnect
from starlette.responses import HTMLResponse

from bot.web.html import notice, page
from graph.replies import MEMORY_UNREACHABLE
from memory.credentials import without_credentials

log = logging.getLogger(__name__)

SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make a form's Origin "null"
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
TITLES = {400: "Refused", 401: "Sign in", 403: "Not yours", 404: "Not found", 409: "Not done", 429: "Too many attempts",
          500: "Failed", 503: "A backend is down"}
RETRY = "try again in a moment, once it is back"
# A backend's connection lost or refused, or its answer late: what the failure's chain holds.
CUT_OFF = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
CLIENTS = {"redis": "Redis", "chromadb": "Chroma"}  # a backend's client library's package: the backend


def refusal_page(status: int, text: str, nav: str = "", headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """A page saying, in one line, why the request was not done."""
    return HTMLResponse(page(TITLES.get(status, "Refused"), notice(text, "error"), nav), status_code=status,
                        headers=headers)


def with_security_headers(app: Any) -> Any:
    """``app`` with :data:`SECURITY_HEADERS` on every response."""

    async def secured(scope: dict, receive: Any, send: Any) -> None:
        async def send_secured(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await app(scope, receive, send_secured if scope["type"] == "http" else send)

    return secured


def with_host_check(app: Any, hosts: frozenset[str] | None) -> Any:
    """``app`` answering only requests whose Host is one of ``hosts`` (lower case); None: any."""
    if hosts is None:
        return app
    answers_to = " or ".join(sorted(host for host in hosts if ":" in host.rpartition("]")[2]))

    async def checked(scope: dict, receive: Any, send: Any) -> None:
        host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").lower()
        if scope["type"] == "http" and host not in hosts:
            refused = refusal_page(400, f"This page answers only to {answers_to}: open it at one of them.")
            await refused(scope, receive, send)
            return
        await app(scope, receive, send)

    return checked


def answering_faults(app: Any) -> Any:
    """``app`` with every exception a request's route lets out answered as :func:`fault` says, and
    logged as one line (nothing of it is shown when the response had started: it is cut short)."""

    async def guarded(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracked)
        except Exception as exc:
            found = fault(exc)
            log.warning("goat web: %s %s answered %d: %s", scope["method"], scope["path"], found.status, found.detail)
            if not started:
                await refusal_page(found.status, found.said)(scope, receive, send)

    return guarded


@dataclass(frozen=True)
class Fault:
    status: int
    said: str  # the page's line: what failed and what to do, no more
    detail: str  # the log's line: the error too (its type and, for a backend, its words)


def fault(exc: Exception) -> Fault:
    """How a request's fault is answered: a backend down (503, which, and to retry), a request cut
    off (400), anything else (500, named by its type and where it was raised, never its words: they
    may hold a message's)."""
    for cause in _chain(exc):
        if isinstance(cause, MEMORY_UNREACHABLE):  # its words say which, and what to do
            return Fault(503, str(cause), str(cause))
        if isinstance(cause, CUT_OFF):
            backend = _backend_of(exc)
            return Fault(503, f"{backend} is unavailable: {RETRY}.", f"{backend} is unavailable ({_line(cause)})")
    if isinstance(exc, ClientDisconnect):
        return Fault(400, "The request ended before all of it was sent.", "the client went away mid-request")
    return Fault(500, f"The request failed ({type(exc).__name__}); the server's log has a line of it.",
                 f"{type(exc).__name__} at {_where(exc)}")


def _backend_of(exc: BaseException) -> str:
    """The backend whose client library the failure went through, by name ("A backend" if none)."""
    for cause in _chain(exc):
        for frame, _ in traceback.walk_tb(cause.__traceback__):
            package = str(frame.f_globals.get("__name__", "")).partition(".")[0]
            if package in CLIENTS:
                return CLIENTS[package]
    return "A backend"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and those it was raised from or while handling, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _line(exc: BaseException) -> str:
    text = without_credentials(" ".join(str(exc).split()))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _where(exc: BaseException) -> str:
    """Where it was raised: the innermost frame's file and line."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
