"""`goat web`: serve the page on loopback (another address only with server tokens), and print
the one-time link when there are none. The link is printed once, to standard output, and nowhere
else: the server's access log is off, and the link's address answers only a redirect, so no page
is ever loaded with the token in its address (nor sends it on as a referrer)."""

from __future__ import annotations

import ipaddress
import socket
import sys

from graph.runner import TurnRunner
from graph.settings import Settings

LOOPBACK_NAMES = ("localhost",)


def is_loopback(address: str) -> bool:
    """Whether ``address`` (a name or an IP) is this machine's alone."""
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def answered_hosts(listen: str, port: int) -> frozenset[str] | None:
    """The Host headers the page answers to when it listens on ``listen``:``port``. On loopback, its
    loopback names with its port, so that no page of another site whose name was pointed here (DNS
    rebinding) reaches it; elsewhere None, any: whoever reaches it signs in with a token."""
    if not is_loopback(listen):
        return None
    names = {"127.0.0.1", "localhost", "[::1]", _named(listen).lower()}
    return frozenset({f"{name}:{port}" for name in names} | (names if port == 80 else set()))


def _named(listen: str) -> str:
    """The address as a URL names it (an IPv6 one in brackets)."""
    return f"[{listen.strip('[]')}]" if ":" in listen else listen


def refusal(settings: Settings, listen: str) -> str | None:
    """Why `goat web` will not serve on ``listen`` (None when it will)."""
    if is_loopback(listen) or settings.server.tokens:
        return None
    return (f"goat web serves {listen} only with server tokens, so that each person signs in as themselves: set "
            "GOAT_SERVER_TOKENS=alice=<token>,bob=<token> (e.g. from `openssl rand -hex 32`), or leave --listen out "
            "(127.0.0.1)")


async def serve_web(settings: Settings, listen: str, port: int) -> int:
    """Serve until stopped (SIGTERM or Ctrl-C). Returns the exit status (2: refused)."""
    if (refused := refusal(settings, listen)) is not None:
        print(f"goat: {refused}", file=sys.stderr)
        return 2
    import uvicorn

    from bot.web.access import Access
    from bot.web.app import build_app

    access = Access(settings.server)
    async with TurnRunner.from_settings(settings) as runner:
        await runner.warm_up()
        listening = bound(listen, port)  # before the link is printed: a browser opening it queues, never fails
        port = listening.getsockname()[1]
        app, web = build_app(runner, settings, access, answered_hosts(listen, port))
        base = f"http://{_named(listen)}:{port}"
        link = access.link(base)
        print(f"goat web: open {link}" if link else f"goat web: serving {base} (sign in with your token)", flush=True)
        # No proxy's headers read: the sign-in limit counts each connection's own address.
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False))
        try:
            await server.serve(sockets=[listening])
        finally:
            await web.imports.aclose()
            listening.close()
    return 0


def bound(listen: str, port: int) -> socket.socket:
    """A listening TCP socket on ``listen``:``port``."""
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    # IPPROTO_TCP named, as asyncio needs to see it to turn Nagle's delay off on each connection:
    # else every answer on a kept-alive connection waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((listen.strip("[]"), port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
