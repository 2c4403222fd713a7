"""Who is at the page. Without server tokens (``server.tokens``, ``GOAT_SERVER_TOKENS``) the page is
one person's, the operator's, as ``langgraph dev`` is: `goat web` prints a link carrying a random
token, which the first browser to open it exchanges for a session (the link then opens nothing). With
tokens, each person signs in with theirs and is that token's user, as on the Store and MCP.

A session lives in this process only: a random id in a cookie (HttpOnly, SameSite=Strict), and a
CSRF token every POST form carries. Every secret is compared in constant time."""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from graph.settings import Server

SESSION_COOKIE = "goat_web"
MAX_SESSIONS = 1_000  # browsers at the page at once, at most: the oldest session goes first


def same(given: str, expected: str) -> bool:
    """Whether a secret given matches, in constant time."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


@dataclass
class Session:
    """One browser's session: its CSRF token and, once signed in, whose memory it sees."""

    csrf: str
    person: str | None = None  # None: not signed in
    operator: bool = False  # sees every chat and every person (no server tokens)


class Access:
    def __init__(self, server: Server) -> None:
        """Args:
            server: the server's tokens (``server.tokens``; empty, the page is the operator's) and
                who opens the printed link (``server.developer``).
        """
        self._server = server
        self.operator = server.developer
        self._link_token: str | None = None if server.tokens else secrets.token_urlsafe(32)
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    @property
    def shared(self) -> bool:
        """Whether several people use the page, each with a token (else it is the operator's)."""
        return bool(self._server.tokens)

    def link(self, base_url: str) -> str | None:
        """The one-time link to print (None with server tokens, or once it was opened)."""
        return None if self._link_token is None else f"{base_url}/?token={self._link_token}"

    def start(self) -> tuple[str, Session]:
        """A new session, not signed in: its id (the cookie's value) and itself."""
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = session = Session(csrf=secrets.token_urlsafe(32))
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session_id, session

    def session(self, session_id: str | None) -> Session | None:
        return self._sessions.get(session_id) if session_id else None

    def open_link(self, given: str) -> tuple[str, Session] | None:
        """The printed link's token exchanged, once, for a new session of the operator's."""
        if self._link_token is None or not same(given, self._link_token):
            return None
        self._link_token = None
        return self._signed_in(self.operator, operator=True)

    def sign_in(self, given: str) -> tuple[str, Session] | None:
        """A person's token exchanged for a new session of theirs (a new id: the one used before
        signing in is not carried over)."""
        person = self._server.user_of(given)
        return None if person is None else self._signed_in(person)

    def _signed_in(self, person: str, operator: bool = False) -> tuple[str, Session]:
        session_id, session = self.start()
        session.person, session.operator = person, operator
        return session_id, session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    @staticmethod
    def csrf_ok(session: Session, given: object) -> bool:
        return isinstance(given, str) and same(given, session.csrf)
