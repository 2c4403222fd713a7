"""Who is at the page. Without server tokens (``server.tokens``, ``GOAT_SERVER_TOKENS``) the page is
one person's, the operator's, as ``langgraph dev`` is: `goat web` prints a link carrying a random
token, which the first browser to open it exchanges for a session (the link then opens nothing). With
tokens, each person signs in with theirs and is that token's user, as on the Store and MCP.

A session lives in this process only: a random id in a cookie (HttpOnly, SameSite=Strict), and a
CSRF token every POST form carries. Only a sign-in makes one, so no number of anonymous requests
pushes a session out: the sign-in form keeps nothing here (its CSRF token is its cookie's random
value signed with this process's key), and each person holds at most :data:`SESSIONS_PER_PERSON`.
Sign-in attempts are limited (:class:`SignInLimit`). Every secret is compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from graph.settings import Server

SESSION_COOKIE = "goat_web"
SIGN_IN_COOKIE = "goat_web_sign_in"  # the sign-in form's random value, which its CSRF token signs
# A person's browsers signed in at once: their oldest session ends first. The table holds this many
# per token (the operator's link opens once), and one person's sign-ins never end another's session.
SESSIONS_PER_PERSON = 20
SIGN_IN_WINDOW_S = 60.0
SIGN_INS_PER_ADDRESS = 10  # sign-in attempts from one client address within the window
SIGN_INS_OVERALL = 60  # from every address together within the window: a guesser of many addresses too


def same(given: str, expected: str) -> bool:
    """Whether a secret given matches, in constant time."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class Session:
    """One signed-in browser's session: whose memory it sees, and its CSRF token."""

    person: str
    operator: bool  # sees every chat and every person (no server tokens)
    csrf: str


@dataclass(frozen=True)
class Held:
    """A sign-in attempt held back: from whose attempts, and for how long."""

    seconds: int
    from_address: bool  # this address's attempts (else everyone's) are over the limit

    @property
    def why(self) -> str:
        where = "from your address" if self.from_address else "on this page just now"
        return f"Too many sign-in attempts {where}: try again in {self.seconds} s."


class SignInLimit:
    """At most :data:`SIGN_INS_PER_ADDRESS` attempts from one client address, and
    :data:`SIGN_INS_OVERALL` from all, within any :data:`SIGN_IN_WINDOW_S`. An attempt held back is
    not counted, and only the window's attempts are kept: the table holds SIGN_INS_OVERALL at most."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._attempts: deque[tuple[float, str]] = deque()  # (when, from which address), oldest first

    def attempt(self, address: str) -> Held | None:
        """An attempt from ``address``: counted, or held back (how long, and why)."""
        now = self._clock()
        while self._attempts and self._attempts[0][0] <= now - SIGN_IN_WINDOW_S:
            self._attempts.popleft()
        theirs = [at for at, by in self._attempts if by == address]
        if len(theirs) >= SIGN_INS_PER_ADDRESS:
            return Held(math.ceil(theirs[0] + SIGN_IN_WINDOW_S - now), from_address=True)
        if len(self._attempts) >= SIGN_INS_OVERALL:
            return Held(math.ceil(self._attempts[0][0] + SIGN_IN_WINDOW_S - now), from_address=False)
        self._attempts.append((now, address))
        return None


class Access:
    def __init__(self, server: Server) -> None:
        """Args:
            server: the server's tokens (``server.tokens``; empty, the page is the operator's) and
                who opens the printed link (``server.developer``).
        """
        self._server = server
        self.operator = server.developer
        self._link_token: str | None = None if server.tokens else secrets.token_urlsafe(32)
        self._form_key = secrets.token_bytes(32)  # signs the sign-in forms' CSRF tokens; this process's alone
        self._sessions: dict[str, Session] = {}  # signed-in sessions, oldest first
        self.sign_ins = SignInLimit()

    @property
    def shared(self) -> bool:
        """Whether several people use the page, each with a token (else it is the operator's)."""
        return bool(self._server.tokens)

    def link(self, base_url: str) -> str | None:
        """The one-time link to print (None with server tokens, or once it was opened)."""
        return None if self._link_token is None else f"{base_url}/?token={self._link_token}"

    def sign_in_form(self) -> tuple[str, str]:
        """A sign-in form's random value (its cookie's) and CSRF token (that value signed): nothing is
        kept, so asking for forms fills no table."""
        value = secrets.token_urlsafe(32)
        return value, self._signed(value)

    def sign_in_form_ok(self, value: str | None, given: object) -> bool:
        """Whether a sign-in form's CSRF token is its cookie's value signed by this process."""
        return bool(value) and isinstance(given, str) and same(given, self._signed(value))

    def _signed(self, value: str) -> str:
        return hmac.new(self._form_key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    def session(self, session_id: str | None) -> Session | None:
        return self._sessions.get(session_id) if session_id else None

    def open_link(self, given: str) -> tuple[str, Session] | None:
        """The printed link's token exchanged, once, for a new session of the operator's."""
        if self._link_token is None or not same(given, self._link_token):
            return None
        self._link_token = None
        return self._signed_in(self.operator, operator=True)

    def sign_in(self, given: str) -> tuple[str, Session] | None:
        """A person's token exchanged for a new session of theirs."""
        person = self._server.user_of(given)
        return None if person is None else self._signed_in(person)

    def _signed_in(self, person: str, operator: bool = False) -> tuple[str, Session]:
        theirs = [session_id for session_id, session in self._sessions.items() if session.person == person]
        for oldest in theirs[:max(0, len(theirs) + 1 - SESSIONS_PER_PERSON)]:
            del self._sessions[oldest]
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = session = Session(person, operator, csrf=secrets.token_urlsafe(32))
        return session_id, session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    @staticmethod
    def csrf_ok(session: Session, given: object) -> bool:
        return isinstance(given, str) and same(given, session.csrf)
