"""`goat web`'s application: who may see which page (``access.py``), and each route, reading and
changing memory through its doors (``Memory.scope``, ``Memory.admin``, ``Memory.entries``), the
runner's recall (``TurnRunner.inspect``) and forget (``TurnRunner.forget_user``), and the commands
every face shares (``bot/commands.py``'s /remember and /forget).

Every change is a POST carrying the session's CSRF token, from the page's own origin; a request
without a session gets 401, a POST without the token, or a page of another person's, 403; a sign-in
past the limit 429; and nothing else. Each response forbids framing and any script, style or image
not served here (``guards.py``, with the Host check and the pages every fault is answered with)."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot.telegram_groups import GroupListening
from bot.web import views
from bot.web.access import SESSION_COOKIE, SIGN_IN_COOKIE, Access, Held, Session
from bot.web.forgets import Forgets
from bot.web.guards import answering_faults, refusal_page, with_host_check, with_security_headers
from bot.web.html import link, notice, page, post_form
from bot.web.imports import FORMATS, Imports, Upload, saved_upload, upload_name_problem
from bot.web.reading import Reading, Refused
from graph.runner import TurnRunner
from graph.settings import Settings

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_FIELDS = 10
# What one POST may send (an export's JSON, or its zip with what the export kept): past it the
# request is refused before a byte is read, so a signed-in person cannot fill the host's disk.
# Larger exports: `goat import FILE` on the host.
MAX_POST_BYTES = 1 << 30

Handler = Callable[..., Awaitable[Response]]


def signed_in(handler: Handler) -> Handler:
    """A page for whoever is signed in: else 401 and the way to sign in; a refusal its status."""

    @functools.wraps(handler)
    async def route(self: "WebApp", request: Request) -> Response:
        session = self.access.session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return self.sign_in_page(request, status=401)
        return await self.answered(handler(self, request, self.viewer(session)), self.viewer(session))

    return route


def changes(handler: Handler) -> Handler:
    """A change: a POST of a signed-in session from the page's own origin with its CSRF token, else
    401 (no session) or 403 (no token, a wrong one, another site's request)."""

    @functools.wraps(handler)
    async def route(self: "WebApp", request: Request) -> Response:
        session = self.access.session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return self.refusal(401, "Sign in first.")
        if (origin := request.headers.get("origin")) is not None and origin != _origin(request):
            return self.refusal(403, "A change is made from this page only.")
        if (refused := _oversized(request)) is not None:
            return self.refusal(*refused)
        async with request.form(max_files=1, max_fields=MAX_UPLOAD_FIELDS) as form:
            if not self.access.csrf_ok(session, form.get("csrf")):
                return self.refusal(403, "This form is stale or not this page's: reload the page and try again.")
            return await self.answered(handler(self, request, self.viewer(session), form), self.viewer(session))

    return route


def _oversized(request: Request) -> tuple[int, str] | None:
    """Why a POST's body is not read: its size unsaid (411) or over :data:`MAX_POST_BYTES` (413)."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        return 411, "The request does not say its size."
    if int(length) > MAX_POST_BYTES:
        return 413, (f"Over {MAX_POST_BYTES >> 20} MB: import a file this large with `goat import FILE` "
                     "on the host running GOAT.")
    return None


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _address(request: Request) -> str:
    """The client's address: the connection's own (`goat web` reads no proxy's headers)."""
    return request.client.host if request.client else ""


class WebApp:
    """The routes of one `goat web` process, over its runner."""

    def __init__(self, runner: TurnRunner, settings: Settings, access: Access) -> None:
        self.runner, self.settings, self.access = runner, settings, access
        self.reading = Reading(runner, settings, access.shared)
        self.forgets = Forgets(runner, self.reading)
        self.imports = Imports(runner)

    def routes(self) -> list[Route | Mount]:
        return [
            Route("/", self.index), Route("/login", self.login_page), Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]), Route("/people", self.people),
            Route("/chat", self.chat), Route("/turn", self.turn), Route("/person", self.person),
            Route("/export", self.export), Route("/facts/remember", self.remember, methods=["POST"]),
            Route("/facts/forget", self.forget_fact, methods=["POST"]), Route("/forget", self.confirm_forget),
            Route("/forget", self.forget, methods=["POST"]), Route("/import", self.import_page),
            Route("/import", self.upload, methods=["POST"]), Route("/import/progress", self.import_progress),
            Route("/import/status", self.import_status),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]

    # ---- answering ----------------------------------------------------------------------------

    @staticmethod
    def viewer(session: Session) -> views.Viewer:
        return views.Viewer(session.person, session.operator, session.csrf)

    def html(self, title: str, body: str, viewer: views.Viewer | None = None, status: int = 200) -> HTMLResponse:
        return HTMLResponse(page(title, body, views.nav(viewer) if viewer else ""), status_code=status)

    @staticmethod
    def refusal(status: int, text: str, viewer: views.Viewer | None = None) -> HTMLResponse:
        return refusal_page(status, text, views.nav(viewer) if viewer else "")

    async def answered(self, answer: Awaitable[Response], viewer: views.Viewer) -> Response:
        """The route's answer; a refusal as a page saying why (a fault is ``guards.py``'s)."""
        try:
            return await answer
        except Refused as refused:
            return self.refusal(refused.status, str(refused), viewer)

    @staticmethod
    async def starlettes_refusal(request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (no such path, not that method, a form that does not read) as pages."""
        assert isinstance(exc, HTTPException)
        return refusal_page(exc.status_code, exc.detail, headers=exc.headers)

    @staticmethod
    def held_back(held: Held) -> Response:
        return refusal_page(429, held.why, headers={"retry-after": str(held.seconds)})

    def sign_in_page(self, request: Request, status: int = 200, problem: str = "") -> Response:
        """How to sign in: the token form (server tokens), else where the one-time link is."""
        if not self.access.shared:
            return self.refusal(status, problem or "Open the link `goat web` printed when it started. It opens once: "
                                                   "to get another, start `goat web` again.")
        value, csrf = self.access.sign_in_form()
        form = post_form("/login", csrf, {}, "sign in",
                         inputs='<label>your token <input type="password" name="token" autocomplete="current-password" '
                                'required autofocus></label>')
        answer = self.html("Sign in", (notice(problem, "error") if problem else "") + form, status=status)
        answer.set_cookie(SIGN_IN_COOKIE, value, httponly=True, samesite="strict", path="/login")
        return answer

    # ---- signing in -----------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        if (given := request.query_params.get("token")) is not None:
            if (held := self.access.sign_ins.attempt(_address(request))) is not None:
                return self.held_back(held)
            opened = self.access.open_link(given)
            if opened is None:
                return self.refusal(401, "This link was opened already, or is not the one `goat web` printed.")
            answer = RedirectResponse("/", status_code=303)  # the token leaves the address bar
            _set_session(answer, opened[0])
            return answer
        return await self.chats(request)

    async def login_page(self, request: Request) -> Response:
        return self.sign_in_page(request)

    async def login(self, request: Request) -> Response:
        if (held := self.access.sign_ins.attempt(_address(request))) is not None:
            return self.held_back(held)
        async with request.form(max_files=0, max_fields=MAX_UPLOAD_FIELDS) as form:
            if not self.access.shared or not self.access.sign_in_form_ok(request.cookies.get(SIGN_IN_COOKIE),
                                                                         form.get("csrf")):
                return self.refusal(403, "This form is stale or not this page's: reload the page and try again.")
            signed = self.access.sign_in(str(form.get("token") or ""))
        if signed is None:
            return self.sign_in_page(request, 401, "That token is not one this page knows.")
        self.access.end(request.cookies.get(SESSION_COOKIE))  # a session of this browser's before ends
        answer = RedirectResponse("/", status_code=303)
        _set_session(answer, signed[0])
        answer.delete_cookie(SIGN_IN_COOKIE, path="/login")
        return answer

    @changes
    async def logout(self, request: Request, viewer: views.Viewer, form: FormData) -> Response:
        self.access.end(request.cookies.get(SESSION_COOKIE))
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(SESSION_COOKIE, path="/")
        return answer

    # ---- reading --------------------------------------------------------------------------------

    @signed_in
    async def chats(self, request: Request, viewer: views.Viewer) -> Response:
        rows = await self.reading.chat_rows(viewer)
        return self.html("Chats", views.chats(rows, viewer), viewer)

    @signed_in
    async def people(self, request: Request, viewer: views.Viewer) -> Response:
        return self.html("People", views.people(await self.reading.people(viewer)), viewer)

    @signed_in
    async def chat(self, request: Request, viewer: views.Viewer) -> Response:
        chat_id, query = _required(request, "c"), request.query_params.get("q", "").strip()
        await self.reading.check_chat(viewer, chat_id)
        cursor = request.query_params.get("cursor") or None
        try:
            entries, following = await self.runner.services.memory.entries.page(chat_id, 20, cursor)
        except ValueError:
            raise Refused(404, "That page of turns does not exist: start from the newest.") from None
        as_of = request.query_params.get("asof") or ""
        recalled = await self.reading.recall(viewer, chat_id, query, _noon(as_of)) if query else ""
        body = (await self.listening(chat_id) + views.search_form(chat_id, query, as_of, await self.reading.examples(chat_id)) + recalled
                + views.turns_list(chat_id, entries, following, cursor)
                + f'<p>{link("/forget", "forget this whole chat…", what="chat", c=chat_id)}</p>')
        return self.html(f"Chat {chat_id}", body, viewer)

    async def listening(self, chat_id: str) -> str:
        """A Telegram group's listening and retention (``/listen``), as its chat page shows them."""
        if not chat_id.startswith("-") or not chat_id[1:].isdigit():  # Telegram's groups have negative ids
            return ""
        groups = GroupListening(self.runner.services.memory, self.settings.telegram)
        return views.listening(await groups.listens(int(chat_id)), await groups.days(int(chat_id)))

    @signed_in
    async def turn(self, request: Request, viewer: views.Viewer) -> Response:
        chat_id, entry_id = _required(request, "c"), _required(request, "id")
        entry = await self.reading.entry(viewer, chat_id, entry_id)
        logged, injected = await self.reading.before(chat_id, entry)
        return self.html(f"Turn {entry['metadata'].get('turn', '')} of {chat_id}",
                         views.turn(chat_id, entry, logged, injected, viewer), viewer)

    @signed_in
    async def person(self, request: Request, viewer: views.Viewer) -> Response:
        person = self.reading.check_person(viewer, _required(request, "u"))
        known = await self.runner.services.memory.scope(person, person).facts()
        return self.html(f"{person}", views.facts(person, known, viewer), viewer)

    @signed_in
    async def export(self, request: Request, viewer: views.Viewer) -> Response:
        person = self.reading.check_person(viewer, _required(request, "u"))
        document = await self.runner.services.memory.admin.export(person)  # as `goat export` writes it
        return Response(json.dumps(document, ensure_ascii=False, indent=2), media_type="application/json",
                        headers={"content-disposition": f'attachment; filename="goat-export-{_file_safe(person)}.json"'})

    # ---- facts ----------------------------------------------------------------------------------

    @changes
    async def remember(self, request: Request, viewer: views.Viewer, form: FormData) -> Response:
        person = self.reading.check_person(viewer, str(form.get("u") or ""))
        said = await self.reading.command("remember", person, f"{form.get('key') or ''}={form.get('value') or ''}")
        known = await self.runner.services.memory.scope(person, person).facts()
        return self.html(person, notice(said) + views.facts(person, known, viewer), viewer)

    @changes
    async def forget_fact(self, request: Request, viewer: views.Viewer, form: FormData) -> Response:
        person = self.reading.check_person(viewer, str(form.get("u") or ""))
        said = await self.reading.command("forget", person, str(form.get("key") or ""))
        known = await self.runner.services.memory.scope(person, person).facts()
        return self.html(person, notice(said) + views.facts(person, known, viewer), viewer)

    # ---- forgetting -----------------------------------------------------------------------------

    @signed_in
    async def confirm_forget(self, request: Request, viewer: views.Viewer) -> Response:
        what, fields = await self.forgets.fields(viewer, dict(request.query_params))
        erases, back = await self.forgets.what_it_erases(viewer, what, fields)
        return self.html("Forget for good?", views.confirm(what, fields, erases, viewer, back), viewer)

    @changes
    async def forget(self, request: Request, viewer: views.Viewer, form: FormData) -> Response:
        what, fields = await self.forgets.fields(viewer, {key: str(value) for key, value in form.items()})
        lines, back = await self.forgets.forget(viewer, what, fields)
        return self.html("Forgotten", views.forgotten(lines, back), viewer)

    # ---- importing ------------------------------------------------------------------------------

    @signed_in
    async def import_page(self, request: Request, viewer: views.Viewer) -> Response:
        return self.html("Import an export", views.import_form(viewer, FORMATS), viewer)

    @changes
    async def upload(self, request: Request, viewer: views.Viewer, form: FormData) -> Response:
        file = form.get("file")
        if isinstance(file, str) or file is None or not file.filename:
            raise Refused(409, "Choose a file to import.")
        if (problem := upload_name_problem(file.filename)) is not None:
            raise Refused(400, problem)
        chosen = str(form.get("format") or "") or None
        if chosen is not None and chosen not in FORMATS:
            raise Refused(409, f"Unknown format {chosen!r}: choose one of {', '.join(FORMATS)}.")

        async def chunks() -> Any:
            while chunk := await file.read(1 << 20):
                yield chunk

        path = await saved_upload(file.filename, chunks())
        me, into = (str(form.get(name) or "").strip() or None for name in ("me", "into"))
        upload = Upload(path, chosen, me if viewer.operator else None, into if viewer.operator else None)
        job_id = self.imports.start(upload, file.filename, viewer.person, only_theirs=self.access.shared)
        return RedirectResponse("/import/progress?" + urlencode({"job": job_id}), status_code=303)

    @signed_in
    async def import_progress(self, request: Request, viewer: views.Viewer) -> Response:
        job_id = _required(request, "job")
        job = self.imports.job(job_id, viewer.person)
        if job is None:
            raise Refused(404, "No import of yours has that id.")
        return self.html("Importing", views.import_progress(job_id, job.name, job.as_json()), viewer)

    @signed_in
    async def import_status(self, request: Request, viewer: views.Viewer) -> Response:
        job = self.imports.job(_required(request, "job"), viewer.person)
        if job is None:
            raise Refused(404, "No import of yours has that id.")
        return JSONResponse(job.as_json())


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if not value:
        raise Refused(404, f"The address names no {name}.")
    return value


def _noon(day: str) -> float | None:
    """Noon UTC of an ISO date (a search asked on that day; the demo's questions are), None for
    today (or a date that does not read)."""
    try:
        return datetime.combine(datetime.fromisoformat(day).date(), time(12, tzinfo=timezone.utc)).timestamp()
    except ValueError:
        return None


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "person"


def _set_session(answer: Response, session_id: str) -> None:
    answer.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="strict", path="/")


def build_app(runner: TurnRunner, settings: Settings, access: Access,
              hosts: frozenset[str] | None) -> tuple[Any, WebApp]:
    """The ASGI application `goat web` serves, answering to ``hosts`` (the Host headers it takes; None:
    any), and its routes' owner (to close its imports)."""
    web = WebApp(runner, settings, access)
    routes = Starlette(routes=web.routes(), middleware=[Middleware(answering_faults)],
                       exception_handlers={HTTPException: web.starlettes_refusal})
    return with_security_headers(with_host_check(routes, hosts)), web
