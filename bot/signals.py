"""How goat's commands stop: SIGTERM cancels the command as Ctrl-C does, whatever Ctrl-C's own
handler is, and whichever thread the kernel hands a signal to."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from typing import Any

log = logging.getLogger(__name__)


class StoppedBySigterm(Exception):
    """SIGTERM stopped the command: what it had in flight finished or was dropped whole, as on
    Ctrl-C, and its cleanup ran."""


async def stopped_by_sigterm(command: Coroutine[Any, Any, int]) -> int:
    """``command``, stopped by SIGTERM as asyncio stops it on Ctrl-C: its task is cancelled, so a
    web server shuts down gracefully, the bot finishes the turns in flight, and the embedded Redis
    it started is stopped, all of which SIGTERM's default, killing the process, would skip.

    Args:
        command: the command's coroutine, run in this task.

    Returns:
        What ``command`` returned.

    Raises:
        StoppedBySigterm: SIGTERM stopped it.
    """
    cancel = _CancelOnSigterm(asyncio.current_task())
    # A plain handler, as asyncio's own for Ctrl-C: a web server that takes both signals while it
    # serves (uvicorn) swaps it out and back with signal.signal, then raises the SIGTERM it caught
    # again, which cancels the command once the server is down.
    signal.signal(signal.SIGTERM, cancel)
    with _signals_wake_the_loop(asyncio.get_running_loop()):
        try:
            return await command
        except asyncio.CancelledError:
            if not cancel.asked:
                raise
            raise StoppedBySigterm from None


class _CancelOnSigterm:
    """SIGTERM's handler: it cancels the command's task, as asyncio's own Ctrl-C handler does,
    even where Ctrl-C is ignored (a shell ignores it in a script's background jobs). Raising
    KeyboardInterrupt instead would make asyncio cancel every task at once, the bot's turn in
    flight among them, and lose it. So would a second SIGTERM forcing the way out, as a second
    Ctrl-C does: its update was confirmed to Telegram, which never sends it again. It is logged,
    and the first stop goes on (SIGKILL still stops at once)."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.asked = False

    def __call__(self, _signum: int, _frame: Any) -> None:
        if self.asked or self.task.done():
            log.warning("SIGTERM again: goat is stopping already, once what it has in flight is done "
                        "(SIGKILL stops it at once, losing that)")
            return
        self.asked = True
        self.task.cancel()
        self.task.get_loop().call_soon_threadsafe(lambda: None)  # the loop may be about to sleep


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
