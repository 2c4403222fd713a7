"""Section ``groups``: `goat bot` in busy listening groups, seen from outside, as their members see it.

`goat bot` runs as its own process (long polling) against the loopback Telegram Bot API and a
loopback model answering after ``MODEL_SECONDS``. ``BenchOptions.groups`` groups of ``MEMBERS`` members: for
``BenchOptions.groups_seconds`` seconds every member says a line a second (none addressed to the bot), while one
member of each group mentions the bot every ``MENTION_EVERY_S`` seconds (the groups' mentions
spread over that period). The same run without the members' lines is the baseline. A reply is
seen when the bot's first message holding it reaches Telegram. Once the bot has stopped (its
lines still waiting in Redis written as its next start writes them), every line said must be in
its group's L2 and L3: the lost count is those that are not.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from bench.bot_load import TOKEN, bot_environment, goat_command
from bench.harness import BenchOptions, conditions
from bench.report import SectionResult, distribution, markdown_table
from graph.settings import load_settings
from memory.facade import Memory, measurement_hooks
from bench.support.fakes.openai_server import FakeOpenAI
from bench.support.fakes.telegram_server import FakeTelegram
from bench.support.processes import server_process

MODEL_SECONDS = 1.0
MEMBERS, MENTION_EVERY_S = 5, 10.0
STOP_SECONDS = 300
_ASKED = re.compile(r"question q(\d+)")


def answer_after(seconds: float):
    """The model: after ``seconds``, "Answer qN." for the question naming qN."""
    def answer(request: dict[str, Any]) -> str:
        time.sleep(seconds)
        found = _ASKED.search(request["messages"][-1]["content"])
        return f"Answer q{found.group(1) if found else '?'}."
    return answer


def group_ids(groups: int) -> list[int]:
    return [-1_000_000_000_000 - n for n in range(groups)]


def member(group: int, number: int) -> int:
    return 5_000_000 + (-group % 1_000_000) * 10 + number


class Members:
    """The members' side: their lines and mentions on a schedule, and when each reply was seen."""

    def __init__(self, telegram: FakeTelegram, groups: list[int], chatter: bool) -> None:
        self.telegram, self.groups, self.chatter = telegram, groups, chatter
        self.asked: dict[int, float] = {}  # question number -> when it was sent
        self.said: dict[int, int] = {group: 0 for group in groups}

    def run(self, seconds: float) -> None:
        """Lines and mentions, each at its moment, for ``seconds``."""
        started, questions = time.monotonic(), 0
        events = sorted([(second + (g * MEMBERS + m) / (len(self.groups) * MEMBERS), "line", g, m)
                         for second in range(int(seconds)) for g in range(len(self.groups)) for m in range(MEMBERS)
                         if self.chatter] +
                        [(tick + g * MENTION_EVERY_S / len(self.groups), "ask", g, 0)
                         for tick in _ticks(seconds) for g in range(len(self.groups))])
        for at, kind, g, m in events:
            time.sleep(max(0.0, started + at - time.monotonic()))
            group = self.groups[g]
            if kind == "line":
                self.said[group] += 1
                self.telegram.send(group, member(group, m), f"Line {self.said[group]} from member {m}: the "
                                   f"plan for saturday still stands.", chat_type="supergroup", first_name=f"M{m}")
            else:
                questions += 1
                self.asked[questions] = time.monotonic()
                self.telegram.send(group, member(group, 0), f"@goat_test_bot question q{questions}: what did we "
                                   f"plan?", chat_type="supergroup", first_name="M0")

    def reply_seconds(self) -> list[float]:
        """Each question's wait for its reply, once every one is answered."""
        self.telegram.wait_for(lambda: len(self._seen()) >= len(self.asked), timeout=600)
        seen = self._seen()
        return [seen[number] - asked for number, asked in self.asked.items()]

    def _seen(self) -> dict[int, float]:
        seen: dict[int, float] = {}
        for (method, params), at in zip(list(self.telegram.calls), list(self.telegram.called_at)):
            if method in ("sendMessage", "editMessageText") and (found := re.search(r"Answer q(\d+)\.",
                                                                                   params.get("text", ""))):
                seen.setdefault(int(found.group(1)), at)
        return seen


def _ticks(seconds: float) -> list[float]:
    return [MENTION_EVERY_S * n for n in range(int(seconds // MENTION_EVERY_S))]


async def heard_entries(memory: Memory, chat_id: str) -> int:
    """How many of the chat's L3 entries are lines heard, read a page at a time."""
    count, cursor = 0, None
    while True:
        page, cursor = await memory.entries.page(chat_id, 1000, cursor)
        count += sum(1 for entry in page if entry["metadata"].get("heard"))
        if cursor is None:
            return count


async def heard_kept(env: dict[str, str], groups: list[int]) -> tuple[int, int]:
    """The lines heard in L2 and in L3 of the groups, once those the stopped bot left waiting in Redis
    are written (as its next start writes them) and the archive is written."""
    memory = Memory(load_settings(environ=env))
    try:
        await memory.heard.write_all()
        if left := await measurement_hooks(memory).settle():
            raise RuntimeError(f"{left} lines heard could not be archived")
        l2 = l3 = 0
        for group in groups:
            l2 += sum(1 for m in (await memory.working(str(group), 100_000)).messages if m.get("heard"))
            l3 += await heard_entries(memory, str(group))
        return l2, l3
    finally:
        await memory.aclose()


def one_run(options: BenchOptions, folder: Path, groups: list[int], seconds: float, chatter: bool) -> dict[str, Any]:
    with FakeTelegram(TOKEN) as telegram, FakeOpenAI(responder=answer_after(MODEL_SECONDS)) as model:
        askers = [member(group, 0) for group in groups]
        env = {**bot_environment(options, folder, telegram, model, askers),
               "GOAT_TELEGRAM__LISTEN_GROUPS": ",".join(map(str, groups))}
        log = options.out / f"groups-bot-{'heard' if chatter else 'quiet'}.log"
        ready = lambda: bool(telegram.methods("setMyCommands"))  # noqa: E731
        with server_process("goat bot", goat_command("bot"), ready, log, env=env, inherit_environment=False) as bot:
            members = Members(telegram, groups, chatter)
            for group in groups:  # each group's first turn in this process: unmeasured
                telegram.send(group, member(group, 0), "@goat_test_bot hello", chat_type="supergroup")
            telegram.wait_for(lambda: all(telegram.chat(group) for group in groups), timeout=600)
            driver = threading.Thread(target=members.run, args=(seconds,))
            driver.start()
            driver.join()
            waits = members.reply_seconds()
            # Every line said taken by the bot (confirmed to Telegram) before it is stopped.
            telegram.wait_for(lambda: telegram.confirmed >= telegram.queued, timeout=600)
            bot.terminate()  # stopped as a service is, given the time its archive takes to settle
            bot.wait(STOP_SECONDS)
        said = sum(members.said.values())
        l2, l3 = asyncio.run(heard_kept(env, groups)) if chatter else (0, 0)
    return {"reply_ms": distribution(1000 * s for s in waits), "said": said, "lost_l2": said - l2,
            "lost_l3": said - l3}


async def run(options: BenchOptions) -> SectionResult:
    groups, seconds = options.groups, options.groups_seconds
    options.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for chatter in (False, True):
        folder = options.root.resolve() / f"groups-scratch-{'heard' if chatter else 'quiet'}"
        _empty(folder)
        results["heard" if chatter else "quiet"] = await asyncio.to_thread(
            one_run, options, folder, group_ids(groups), seconds, chatter)
        _empty(folder)
    data = {"conditions": {**conditions(), "groups": groups, "members": MEMBERS, "seconds": seconds,
                           "mention_every_s": MENTION_EVERY_S, "model_seconds": MODEL_SECONDS},
            "runs": results,
            "p95_ratio": round(results["heard"]["reply_ms"]["p95"] / results["quiet"]["reply_ms"]["p95"], 2)}
    return SectionResult("groups", data, [table(data)])


def _empty(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def table(data: dict[str, Any]) -> str:
    c = data["conditions"]
    rows = [(name, run["said"], f"{run['reply_ms']['p50']:.0f} / {run['reply_ms']['p95']:.0f} / "
             f"{run['reply_ms']['max']:.0f}", run["reply_ms"]["n"], run["lost_l2"], run["lost_l3"])
            for name, run in (("without heard lines", data["runs"]["quiet"]),
                              ("with heard lines", data["runs"]["heard"]))]
    return markdown_table(
        ["run", "lines heard", "reply seen, ms: p50 / p95 / max", "replies", "lost from L2", "lost from L3"], rows,
        f"goat bot in {c['groups']} listening groups of {c['members']} members, each saying a line a second for "
        f"{c['seconds']} s, one mention per group every {c['mention_every_s']:g} s, a {c['model_seconds']:.1f} s "
        f"model: reply p95 with / without heard lines = {data['p95_ratio']}×")
