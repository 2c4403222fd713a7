"""`goat chat`: a conversation in the terminal, through the same graph as the Telegram bot.

At a terminal the reply streams as the model writes it, after a ``you ›`` prompt; Ctrl-C
while it streams cancels that answer (nothing of the turn is saved) and Ctrl-C at the prompt
leaves. With standard input from a file or a pipe it reads one message per line and prints
one reply per message, with no prompts, so it can be scripted. A turn that fails prints one
line on standard error and the conversation goes on; the exit status is 1 if anything failed.
A turn whose model fails keeps the message as a turn of its own, as the bot does: the next
turn's model sees it, and sending it again would make it twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TextIO

from bot.commands import COMMANDS, Asker
from graph.observability.redaction import Redactor
from graph.replies import error_line, failure_report
from graph.runner import TurnRunner
from graph.settings import Settings
from memory.turns import is_blank
from nodes.state import turn_user

HELP = "\n".join([
    "commands:",
    *(f"  {command.usage:<20} {command.what}" for command in COMMANDS.values()),
    f"  {'/help':<20} this list",
    f"  {'/quit':<20} leave (Ctrl-D or Ctrl-C too)",
    "Ctrl-C while an answer comes cancels it: nothing of that turn is kept.",
])

PROMPT = "you › "
REPLY_PREFIX = "goat › "
CANCELLED = "[cancelled: nothing of this turn was saved; Ctrl-C at the prompt quits]"


class TurnCancelled(Exception):
    """What the turn log records for a turn the user cancelled with Ctrl-C."""


@dataclass
class ChatSession:
    runner: TurnRunner
    chat_id: str
    user_id: str
    interactive: bool  # a person at a terminal: prompts and streamed replies
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    failures: int = 0  # turns and commands that failed

    def __post_init__(self) -> None:
        self._redact = Redactor.for_settings(self.runner.services.settings)
        self._asker = Asker(self.runner, self.chat_id, self.user_id)
        self._writing = threading.RLock()  # a log line from another thread waits for a chunk's write
        self._line_open = False  # a streamed reply's line is not ended yet

    async def handle(self, line: str) -> bool:
        """One line of input: a command or a message. False when the user asked to leave."""
        if is_blank(line):  # nothing to see: no message, as an empty line
            return True
        text = line.strip()
        if not text.startswith("/"):
            await self.turn(line)
            return True
        name, _, argument = text.partition(" ")
        if name == "/quit":
            return False
        if name == "/help":
            self.say(HELP)
            return True
        command = COMMANDS.get(name[1:])
        if command is None:
            self.say(f"unknown command {name}; /help lists them")
            return True
        try:
            self.say(await command.run(self._asker, argument.strip()))
        except Exception as exc:  # e.g. Redis gone: say so, keep the session
            self.report(f"{name} failed: {error_line(exc)}")
        return True

    async def turn(self, message: str) -> None:
        streamed: list[str] = []

        def show(chunk: str) -> None:
            with self._writing:
                if not streamed:
                    self.out.write(REPLY_PREFIX)
                streamed.append(chunk)
                self.out.write(chunk)
                self.out.flush()
                self._line_open = True

        answered = False

        async def final(_: str) -> None:  # the reply is whole: from here on the turn is saved
            nonlocal answered
            answered = True

        arrived = time.perf_counter()
        running = asyncio.ensure_future(self.runner.run(
            self.chat_id, message, user_id=self.user_id, on_token=show if self.interactive else None, on_reply=final,
            keep_unanswered=True))
        try:
            with ctrl_c_cancels(running, unless=lambda: answered) if self.interactive else nullcontext():
                state = await running
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # the session itself is stopping
                raise
            # Cut before its reply was whole: the runner drops such a turn (its checkpoint stops
            # before the reply), so nothing of it reaches L2, L3 or the next prompt.
            self.say((" " if streamed else "") + CANCELLED)
            self.runner.observer.record_failure({"chat_id": self.chat_id, "user_id": self.user_id},
                                                TurnCancelled("cancelled with Ctrl-C before its reply was whole"),
                                                (time.perf_counter() - arrived) * 1000)
            return
        except Exception as exc:  # one failed turn ends neither the conversation nor its memory
            if streamed:
                self.say("")
            self.report(failure_report(exc))
            return
        reply = state.get("reply") or ""
        if not self.interactive:
            self.say(reply)
        elif "".join(streamed) == reply:
            self.say("")  # end the streamed line
        else:  # what streamed was not the final answer (tool calls, a correction): show that one
            self.say(("\n" if streamed else "") + REPLY_PREFIX + reply)

    def say(self, text: str) -> None:
        with self._writing:
            self.out.write(text + "\n")
            self.out.flush()
            self._line_open = False

    def log_line(self, text: str) -> int:
        """Write a log line (standard error's, at a terminal the same screen as the reply's): while a
        reply streams, below the reply's line so far, which goes on under it."""
        with self._writing:
            if self._line_open:
                self.out.write("\n")
                self.out.flush()
                self._line_open = False
            return self.err.write(text)

    def report(self, failure: str) -> None:
        """Tell a failure on standard error (``goat: …``), its secrets masked, and count it."""
        self.failures += 1
        self.err.write(f"goat: {self._redact(failure)}\n")
        self.err.flush()


def typed_line() -> str | None:
    """The next line typed at the terminal, after the prompt, with line editing (None on Ctrl-D)."""
    try:
        return input(PROMPT)
    except EOFError:
        return None


class PipedLines:
    """Standard input's lines read from its file descriptor, not through ``sys.stdin``: a read
    still waiting in its daemon thread when the chat ends must hold no lock that the
    interpreter's shutdown takes (sys.stdin's buffer: "Fatal Python error: _enter_buffered_busy").
    Bytes that are not UTF-8 become U+FFFD, as on import."""

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor
        self._pending = bytearray()

    def next(self) -> str | None:
        """The next line without its line end; None at the end of the input."""
        searched = 0
        while (end := self._pending.find(b"\n", searched)) < 0:
            searched = len(self._pending)
            chunk = os.read(self._descriptor, 1 << 16)
            if not chunk:  # the end: a last line without its newline still counts
                line = bytes(self._pending)
                self._pending.clear()
                return line.decode(errors="replace") if line else None
            self._pending += chunk
        line = bytes(self._pending[:end]).removesuffix(b"\r")  # a Windows line end too
        del self._pending[:end + 1]
        return line.decode(errors="replace")


async def read_line(read: Callable[[], str | None]) -> str | None:
    """The next line of standard input (None at its end), ``read`` in a daemon thread: a read
    still waiting must not keep the process alive after /quit or Ctrl-C, as a pool thread would."""
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str | None] = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not line.done():  # not cancelled meanwhile (Ctrl-C)
            setter(value)

    def read_in_thread() -> None:
        try:
            outcome = (line.set_result, read())
        except Exception as exc:
            outcome = (line.set_exception, exc)
        with suppress(RuntimeError):  # the loop is gone: the chat has ended
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=read_in_thread, name="goat-chat-input", daemon=True).start()
    return await line


@contextmanager
def ctrl_c_cancels(task: asyncio.Future[Any], unless: Callable[[], bool]) -> Iterator[None]:
    """While ``task`` runs, Ctrl-C cancels it instead of ending the session (but not once
    ``unless()`` holds); SIGTERM, whose handler is the CLI's own (bot/signals.py), still ends it."""
    loop = asyncio.get_running_loop()
    stop_session = signal.getsignal(signal.SIGINT)
    if not callable(stop_session):  # Ctrl-C ignored (a script's background job): it cancels nothing
        yield
        return

    def cancel(*_: object) -> None:
        if not unless():
            loop.call_soon_threadsafe(task.cancel)

    signal.signal(signal.SIGINT, cancel)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, stop_session)


class _LogStream:
    """The stream the log's handlers write to during a chat: through :meth:`ChatSession.log_line`."""

    def __init__(self, session: ChatSession) -> None:
        self.write = session.log_line
        self.flush = session.err.flush


@contextmanager
def logs_on_their_own_lines(session: ChatSession) -> Iterator[None]:
    """While the block runs, what the log prints on standard error (a Redis restarted under the
    chat, from its keeper thread) starts on a line of its own, never inside a streaming reply."""
    handlers = [handler for handler in logging.getLogger().handlers
                if isinstance(handler, logging.StreamHandler) and handler.stream is session.err]
    for handler in handlers:
        handler.setStream(_LogStream(session))
    try:
        yield
    finally:
        for handler in handlers:
            handler.setStream(session.err)


@contextmanager
def terminal_restored(interactive: bool) -> Iterator[None]:
    """Put the terminal's modes back on leaving: a line editor interrupted by Ctrl-C in its
    thread could otherwise leave it without echo."""
    if not interactive:
        yield
        return
    import termios

    descriptor = sys.stdin.fileno()
    saved = termios.tcgetattr(descriptor)
    try:
        yield
    finally:
        termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)


async def run_chat(settings: Settings, chat_id: str, user_id: str | None) -> int:
    interactive = sys.stdin.isatty()
    if interactive:
        import readline  # noqa: F401 — line editing and history for input()

        sys.stdin.reconfigure(errors="replace")  # bytes that are not UTF-8 become U+FFFD, as on import
        next_line = typed_line
    else:
        next_line = PipedLines(sys.stdin.fileno()).next
    async with TurnRunner.from_settings(settings) as runner:
        session = ChatSession(runner, chat_id, turn_user({"chat_id": chat_id, "user_id": user_id}), interactive)
        if interactive:
            print(f"GOAT · chat {chat_id} · user {session.user_id} · loading memory…", flush=True)
        await runner.warm_up()
        await runner.recover()  # turns a killed process left between reply and archive
        if interactive:
            print("ready; /help lists the commands", flush=True)
        with terminal_restored(interactive), logs_on_their_own_lines(session):
            while (line := await read_line(next_line)) is not None:
                if not await session.handle(line):
                    break
            else:
                if interactive:  # Ctrl-D left the cursor after the prompt
                    session.say("")
    return 1 if session.failures else 0
