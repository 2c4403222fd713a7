"""How goat's commands stop: SIGTERM as Ctrl-C does, whichever thread the kernel hands a signal to."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from typing import Any


async def stopped_by_sigterm(command: Coroutine[Any, Any, int]) -> int:
    """``command``, stopped by SIGTERM as by Ctrl-C (a web server's graceful shutdown, then the
    cleanup: the embedded Redis it started is stopped), which SIGTERM's default, killing the
    process, would skip."""
    # A plain handler, not the loop's: a web server that takes both signals itself (uvicorn) must
    # get SIGTERM alone, or it reads a second Ctrl-C into it and forces its way out.
    signal.signal(signal.SIGTERM, _stop_as_ctrl_c(signal.getsignal(signal.SIGINT)))
    with _signals_wake_the_loop(asyncio.get_running_loop()):
        return await command


def _stop_as_ctrl_c(on_ctrl_c: Any) -> Callable[[int, Any], None]:
    """A SIGTERM handler that stops as ``on_ctrl_c``, SIGINT's handler, stops (asyncio's cancels
    the command, whose cleanup runs), and raises KeyboardInterrupt where Ctrl-C is ignored: a
    shell ignores it in a script's background jobs, and SIGTERM must still end them."""
    stop = on_ctrl_c if callable(on_ctrl_c) else signal.default_int_handler

    def handler(_: int, frame: Any) -> None:
        stop(signal.SIGINT, frame)

    return handler


@contextmanager
def stop_requests() -> Iterator[Callable[[], bool]]:
    """While the block runs, Ctrl-C and SIGTERM do not cancel the command wherever it is: they ask
    it to stop, and it stops at its next safe point (an import between two batches) once it sees
    the request, with what it wrote whole. A cancelled write would leave its worker thread
    computing on, which the interpreter's exit waits for, and a second Ctrl-C then aborts it.

    Yields:
        A call that says whether a stop was asked for.
    """
    asked = False

    def ask(*_: object) -> None:
        nonlocal asked
        asked = True

    # Where Ctrl-C is ignored (a shell's background job) it stays ignored; SIGTERM still stops.
    taken = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) != signal.SIG_IGN else [])
    previous = {signum: signal.signal(signum, ask) for signum in taken}
    try:
        yield lambda: asked
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _signals_wake_the_loop(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Python runs a signal's handler in the main thread alone, and the kernel may hand the signal
    to any thread (the chat's input reader, a pool thread): a byte on a socket the loop watches
    wakes the main thread then, or a Ctrl-C at an idle prompt would wait for the next event."""
    woken, waker = socket.socketpair()
    woken.setblocking(False)
    waker.setblocking(False)

    def drain() -> None:
        with suppress(BlockingIOError):
            woken.recv(4096)

    loop.add_reader(woken.fileno(), drain)
    previous = signal.set_wakeup_fd(waker.fileno(), warn_on_full_buffer=False)
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        loop.remove_reader(woken.fileno())
        woken.close()
        waker.close()
