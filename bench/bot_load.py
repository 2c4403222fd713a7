"""Section ``bot``: `goat bot` itself under bursts, seen from outside, as its users see it.

`goat bot` runs as its own process (long polling), against a loopback Telegram Bot API and a
loopback model that answers after ``MODEL_SECONDS`` of waiting (both from bench.support/fakes, the real
clients talking to them). Its private chats hold 1 000 turns each (the load section's archive,
the chats named by Telegram's ids). Per N of ``--load-chats``: ``BURSTS`` bursts, each one
message in each of N chats at the same moment; a reply is seen when the bot's last send or edit
of it reaches Telegram. Then `goat stats --json` tells which of those turns were degraded.
Each chat must get exactly its replies, one a message, in order: the model's reply names the
message it answers. The bot runs on GOAT's defaults (the archive's encoder aside), and its log
is ``bot.log`` beside the results.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import BenchOptions, conditions, scratch_copy
from bench.load import burst_messages, ensure_load_archive
from bench.report import SectionResult, distribution, markdown_table
from bench.synthetic_archive import TextPool
from bench.support.fakes.openai_server import FakeOpenAI
from bench.support.fakes.telegram_server import FakeTelegram
from bench.support.processes import GOAT_SCRIPT, server_process

MODEL_SECONDS = 1.0
BURSTS = 3
TOKEN = "700000001:bench-token"
REPLIES = ("sendMessage", "editMessageText")
# What the child does not inherit: it is told its data, servers, model and bot below.
NOT_INHERITED = ("GOAT_", "OPENAI_", "TELEGRAM_")


def reply_to(message: str) -> str:
    """The loopback model's reply to a message: one of its own, so that a reply in the wrong
    chat or out of order shows (hex: Telegram's formatting leaves it as it is)."""
    return f"Noted {hashlib.sha1(message.encode()).hexdigest()[:10]}."


def slow_model(seconds: float) -> Callable[[dict[str, Any]], str]:
    """The loopback model's answer, after ``seconds`` of waiting in its own request thread (no
    CPU), as a remote model takes."""
    def answer(request: dict[str, Any]) -> str:
        time.sleep(seconds)
        return reply_to(request["messages"][-1]["content"])
    return answer


def bot_environment(options: BenchOptions, folder: Path, telegram: FakeTelegram, model: FakeOpenAI,
                    users: list[int]) -> dict[str, str]:
    """The whole environment `goat bot` (and `goat stats`) run with: this one's without GOAT's,
    the model's or Telegram's variables, so that a user's servers and keys are never reached,
    then by the names a user sets: the scratch data, the archive's encoder, the loopback
    Telegram and model, the chats' users let in. Every other setting is GOAT's default."""
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith(NOT_INHERITED)},
        "GOAT_DATA_DIR": str(folder), "GOAT_EMBEDDINGS__MODEL": options.settings.embeddings.model,
        "TELEGRAM_BOT_TOKEN": TOKEN, "GOAT_TELEGRAM_API_URL": telegram.base_url,
        "GOAT_ALLOWED_USERS": ",".join(map(str, users)),
        "GOAT_MODEL": "bench-model", "OPENAI_API_KEY": "bench-key", "OPENAI_BASE_URL": model.base_url,
    }


def goat_command(*args: str) -> list[str]:
    return [str(GOAT_SCRIPT), *args]


class Bursts:
    """The users' side: messages sent at once, and the replies each chat is owed, in order."""

    def __init__(self, telegram: FakeTelegram, bot: subprocess.Popen, log: Path) -> None:
        self.telegram, self.bot, self.log = telegram, bot, log
        self.owed: dict[int, list[str]] = {}

    def send(self, chats: list[int], texts: list[str]) -> list[float]:
        """One message in each chat at once; the seconds until each reply was seen, once every
        chat holds every reply it is owed (the bot's last send or edit of it)."""
        telegram = self.telegram
        started, first_call = time.monotonic(), len(telegram.calls)
        for chat, text in zip(chats, texts):
            telegram.send(chat, chat, text)
            self.owed.setdefault(chat, []).append(reply_to(text))
        telegram.wait_for(lambda: self.bot.poll() is not None or all(map(self.answered, chats)), timeout=600)
        if self.bot.poll() is not None:
            raise RuntimeError(f"goat bot exited with {self.bot.returncode}; see {self.log}")
        seen: dict[int, float] = {}
        for (method, params), at in zip(telegram.calls[first_call:], telegram.called_at[first_call:]):
            if method in REPLIES:
                seen[int(params["chat_id"])] = at
        return [seen[chat] - started for chat in chats]

    def answered(self, chat: int) -> bool:
        """Whether the chat holds as many replies as it is owed, the last one whole (a message may
        be sent again later, so its reply alone does not tell)."""
        shown, owed = self.telegram.chat(chat), self.owed[chat]
        return len(shown) >= len(owed) and shown[-1] == owed[-1]

    def as_owed(self) -> bool:
        """Whether each chat holds exactly the replies it is owed, in order: none lost, doubled
        or crossed."""
        return all(self.telegram.chat(chat) == replies for chat, replies in self.owed.items())


def stats(env: dict[str, str], folder: Path, last: int) -> dict[str, Any]:
    shown = subprocess.run(goat_command("stats", "--json", "--last", str(last)), env=env, cwd=folder,
                           capture_output=True, text=True, check=True)
    return json.loads(shown.stdout)


def turns_degraded(env: dict[str, str], folder: Path, turns: int, logged: int) -> dict[str, Any]:
    """What `goat stats --json` says of the last ``turns`` turns, once the turn log holds
    ``logged`` turns in all (a turn is logged once saved and archived, after its reply)."""
    deadline = time.monotonic() + 120
    while stats(env, folder, logged + 1)["turns"] < logged:  # each look a process of its own: ~1 s apart
        if time.monotonic() > deadline:
            raise RuntimeError(f"the turn log did not reach {logged} turns")
    last = stats(env, folder, turns)
    return {"turns": last["turns"], "degraded": last["degraded"], "timed_out": last["prefetch"]["timed_out"]}


async def run(options: BenchOptions) -> SectionResult:
    pool = TextPool(options.locomo_records)
    archive = await ensure_load_archive(options, pool, telegram=True)
    results: dict[str, Any] = {}
    options.out.mkdir(parents=True, exist_ok=True)
    log = options.out / "bot.log"
    with (scratch_copy(archive.folder, options.root / "bot-scratch") as folder, FakeTelegram(TOKEN) as telegram,
          FakeOpenAI() as model):
        model.responder = slow_model(MODEL_SECONDS)
        most = max(options.load_chats)
        chats = [int(chat.chat_id) for chat in archive.chats[:most]]
        env = bot_environment(options, folder, telegram, model, chats)
        ready = lambda: bool(telegram.methods("setMyCommands"))  # noqa: E731
        with server_process("goat bot", goat_command("bot"), ready, log, env=env, inherit_environment=False) as bot:
            users = Bursts(telegram, bot, log)
            # Each chat's first message in this process reads its index from disk (50-100 ms): unmeasured.
            users.send(chats, ["hello again"] * most)
            for n in options.load_chats:
                seen = []
                for number in range(BURSTS):
                    seen += users.send(chats[:n], burst_messages(archive.chats[:n], number, pool))
                logged = sum(map(len, users.owed.values()))
                results[str(n)] = {"reply_ms": distribution(1000 * s for s in seen),
                                   **turns_degraded(env, folder, n * BURSTS, logged)}
                print(f"{n} chats at once through goat bot: reply p95 {results[str(n)]['reply_ms']['p95']:.0f} ms",
                      flush=True)
            as_owed = users.as_owed()
    data = {
        "conditions": {**conditions(), "model_seconds": MODEL_SECONDS, "bursts": BURSTS,
                       "chat_turns": options.load_chat_turns},
        "by_chats": results,
        "replies_as_owed": as_owed,
    }
    return SectionResult("bot", data, [table(data)])


def table(data: dict[str, Any]) -> str:
    def spread(d: dict[str, float]) -> str:
        return f"{d['p50']:.0f} / {d['p95']:.0f} / {d['max']:.0f}"

    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{what} {count}" for what, count in sorted(d.items())) or "–"

    rows = [(n, cell["turns"], spread(cell["reply_ms"]), counts(cell["degraded"]), counts(cell["timed_out"]))
            for n, cell in data["by_chats"].items()]
    conditions = data["conditions"]
    return markdown_table(
        ["chats at once", "turns (goat stats)", "reply seen, ms: p50 / p95 / max", "turns degraded, by node",
         "searches timed out"],
        rows, f"goat bot under bursts: {conditions['bursts']} a cell, chats of {conditions['chat_turns']:,} turns, "
              f"a {conditions['model_seconds']:.1f} s model; every chat's replies as owed, in order: "
              f"{data['replies_as_owed']}")
