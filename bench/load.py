"""Section ``load``: many chats speaking at once.

Each burst starts one turn in each of N chats at the same moment, through the real graph and
TurnRunner, against a model that only waits (``asyncio.sleep``: no CPU), as a remote model does.
The chats hold 1 000 turns each (``--load-chat-turns``), and with ``--load-big-chat`` one more
holds 80 000 and takes part in every burst. Per N: the time to the model's call (pre-reply), the
turns whose memory was degraded and which mechanism timed out, how late the event loop ran a
ticker, turns a second, and the order the replies finished in against the order the turns started.

The 1 000-turn chats hold the same texts (each in its own collection and word index, as any
chat's), so that the archive is embedded once whatever N: a search costs what its chat's size and
texts cost, not whose they are. The messages differ from chat to chat (thematic, temporal and
specific-key, in turn).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from bench.synthetic_archive import (FORMAT_VERSION, KINDS, TEMPORAL_MESSAGES, ChatPlan, TextPool, ensure_built,
                                     key_question, turn_times)
from bench.harness import BenchOptions, conditions, isolated_settings, runner_with_model, scratch_copy
from bench.report import SectionResult, distribution, markdown_table, percent, save_figure
from graph.runner import TurnRunner
from memory.encoders import Encoder, load_encoder
from memory.facade import measurement_hooks
from nodes.state import TurnState

MODEL_SECONDS = 1.0  # the scripted model's time per reply
TICK_SECONDS = 0.005  # the event loop's ticker: how late it wakes is the loop's lag
MIN_BURSTS = 3  # per N; more when --turns asks for more turns than N × 3
LOAD_CHAT_PREFIX = "load-chat-"
BIG_CHAT = "load-big"
TELEGRAM_FIRST_USER = 710_000_000  # a private chat's id is its user's
# When the model was called, noted by the model in the turn's own context (set per turn below).
_MODEL_CALLED: contextvars.ContextVar[list[float]] = contextvars.ContextVar("model_called")


class ScriptedDelayModel(BaseChatModel):
    """Answers after ``seconds`` of waiting that use no CPU, and notes when it was called."""

    seconds: float = MODEL_SECONDS
    reply: str = "Noted, thanks."

    @property
    def _llm_type(self) -> str:
        return "goat-bench-scripted-delay"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        raise NotImplementedError("the scripted model waits on the event loop: call it asynchronously")

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        if (called := _MODEL_CALLED.get(None)) is not None:  # a measured turn's (not a warm-up's)
            called.append(time.perf_counter())
        await asyncio.sleep(self.seconds)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.reply))])

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedDelayModel":
        return self


class TextsEncodedOnce(Encoder):
    """The archive builder's encoder: a passage's vector is made once however many chats hold
    its text (the 1 000-turn chats hold the same ones); anything else is the wrapped encoder's,
    what the interface defines too (its spaces, how its collections compare, its English block)."""

    def __init__(self, encoder: Encoder) -> None:
        self._encoder = encoder
        self._passages: dict[tuple[str, bool], np.ndarray] = {}
        self.english_block, self.collection_space = encoder.english_block, encoder.collection_space
        self.spaces, self.fill = encoder.spaces, encoder.fill
        self.forget_queries, self.loads_for = encoder.forget_queries, encoder.loads_for

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    @property
    def record(self) -> str:
        return self._encoder.record

    def encode(self, texts: list[str], *, query: bool = False, every_language: bool = True) -> np.ndarray:
        if query:
            return self._encoder.encode(texts, query=True, every_language=every_language)
        missing = [text for text in dict.fromkeys(texts) if (text, every_language) not in self._passages]
        if missing:
            vectors = self._encoder.encode(missing, every_language=every_language)
            self._passages.update(zip([(text, every_language) for text in missing], vectors))
        return np.array([self._passages[(text, every_language)] for text in texts], dtype=np.float32)


@dataclass(frozen=True)
class LoadArchive:
    folder: Path
    chats: list[ChatPlan]  # the big chat first, when there is one

    def burst_chats(self, n: int) -> list[ChatPlan]:
        return self.chats[:n]


async def ensure_load_archive(options: BenchOptions, pool: TextPool, *, telegram: bool = False) -> LoadArchive:
    """The cached archive of ``max(load_chats)`` chats (or more, if one is built) of
    ``load_chat_turns`` turns sharing their texts, and the big chat of ``load_big_chat`` turns
    (0: none), built first if missing. With ``telegram``: private Telegram chats, each named by
    its user's id as `goat bot` names it (``TELEGRAM_FIRST_USER`` on), and no big chat."""
    settings, chat_turns = options.settings, options.load_chat_turns
    big = 0 if telegram else options.load_big_chat
    kind = "bot" if telegram else "load"
    name = f"x{chat_turns}-big{big}-{settings.embeddings.model}"
    chats = min([count for count in _built_chat_counts(options.root, kind, name) if count >= max(options.load_chats)],
                default=max(options.load_chats))
    # The same `first` for every chat: the same texts (and keys) in each.
    small = [ChatPlan(str(TELEGRAM_FIRST_USER + n) if telegram else f"{LOAD_CHAT_PREFIX}{n:04d}", 0, chat_turns)
             for n in range(chats)]
    big_chat = [ChatPlan(BIG_CHAT, chat_turns, big)] if big else []
    spec = {"version": FORMAT_VERSION, "texts": pool.digest, "chats": [asdict(plan) for plan in big_chat + small]}
    groups = [(small, lambda: TextsEncodedOnce(load_encoder(settings.embeddings.model)))]
    folder = options.root / f"{kind}-{chats}{name}"
    await ensure_built(settings, folder, spec, [*groups, *([(big_chat, None)] if big_chat else [])], pool)
    return LoadArchive(folder, big_chat + small)


def _built_chat_counts(root: Path, kind: str, name: str) -> list[int]:
    """How many chats each complete archive of this kind holds (one built for more serves too)."""
    counts = []
    for manifest in root.glob(f"{kind}-*/manifest.json"):
        named = re.fullmatch(rf"{kind}-(\d+){re.escape(name)}", manifest.parent.name)
        if named and json.loads(manifest.read_text(encoding="utf-8"))["complete"]:
            counts.append(int(named.group(1)))
    return counts


def burst_messages(chats: list[ChatPlan], burst: int, pool: TextPool) -> list[str]:
    """One message per chat, each kind in turn, none the same twice in a burst but by chance."""
    texts = []
    for position, chat in enumerate(chats):
        number = burst * len(chats) + position
        kind = KINDS[number % len(KINDS)]
        if kind == "thematic":
            texts.append(pool.questions[(number * 7919) % len(pool.questions)])
        elif kind == "temporal":
            texts.append(TEMPORAL_MESSAGES[number // len(KINDS) % len(TEMPORAL_MESSAGES)])
        else:
            keys = chat.keys()
            texts.append(key_question(keys[number // len(KINDS) % len(keys)]))
    return texts


@dataclass(frozen=True)
class BurstTurn:
    position: int  # in the order the turns were started
    chat_id: str
    pre_reply_ms: float  # the burst's start → the model is called
    reply_ms: float  # the burst's start → the reply is final (the model's time included)
    done_ms: float  # the burst's start → the turn has ended (saved, archived)
    state: TurnState

    @property
    def degraded(self) -> list[str]:
        """What timed out or failed: the prefetch's mechanisms by name, any other node by its own."""
        outcome: Mapping[str, Any] = self.state.get("prefetch") or {}  # a RecallOutcome, when prefetch ran
        found = [f"{name} timed out" for name in outcome.get("timed_out", [])]
        found += [f"{name} failed" for name in outcome.get("failed", {})]
        return found + [f"{node} degraded" for node, problem in (self.state.get("degraded") or {}).items()
                        if problem and node != "prefetch"]


async def one_turn(runner: TurnRunner, position: int, chat_id: str, text: str, now: float,
                   started: float) -> BurstTurn:
    called: list[float] = []
    _MODEL_CALLED.set(called)  # this task's context, which the graph's node tasks copy
    replied: list[float] = []

    async def on_reply(_: str) -> None:
        replied.append(time.perf_counter())

    state = await runner.run(chat_id, text, now=now, on_reply=on_reply)
    done = time.perf_counter()
    return BurstTurn(position, chat_id, (called[0] - started) * 1000, (replied[0] - started) * 1000,
                     (done - started) * 1000, state)


async def burst(runner: TurnRunner, chats: list[ChatPlan], texts: list[str], now: float) -> tuple[list[BurstTurn], list[float]]:
    """Every chat's turn started at once; with the event loop's lag (ms) meanwhile."""
    lags: list[float] = []
    ticker = asyncio.ensure_future(tick(lags))
    started = time.perf_counter()
    try:
        turns = await asyncio.gather(*(one_turn(runner, position, chat.chat_id, text, now, started)
                                       for position, (chat, text) in enumerate(zip(chats, texts))))
    finally:
        ticker.cancel()
    return list(turns), lags


async def tick(lags: list[float]) -> None:
    """Sleep a tick, again and again, noting how much later than asked the loop woke."""
    while True:
        asked = time.perf_counter()
        await asyncio.sleep(TICK_SECONDS)
        lags.append((time.perf_counter() - asked - TICK_SECONDS) * 1000)


def finish_order(turns: list[BurstTurn]) -> list[int]:
    """The turns' start positions, in the order their turns ended."""
    return [turn.position for turn in sorted(turns, key=lambda turn: turn.done_ms)]


def in_start_order(order: list[int]) -> float:
    """Spearman's correlation of finish rank with start position: 1 when the replies came back in
    the order the turns started, 0 when unrelated (NaN for a single turn)."""
    if len(order) < 2:
        return math.nan
    return float(np.corrcoef(np.arange(len(order)), np.argsort(order))[0, 1])


def summarise(bursts: list[tuple[list[BurstTurn], list[float]]], seconds: list[float]) -> dict[str, Any]:
    turns = [turn for turns, _ in bursts for turn in turns]
    orders = [finish_order(turns) for turns, _ in bursts]
    return {
        "turns": len(turns),
        "bursts": len(bursts),
        "pre_reply_ms": distribution(turn.pre_reply_ms for turn in turns),
        "reply_ms": distribution(turn.reply_ms for turn in turns),
        "prefetch_ms": distribution((turn.state.get("latency_ms") or {}).get("prefetch", math.nan) for turn in turns),
        "degraded_share": sum(bool(turn.degraded) for turn in turns) / len(turns),
        "degraded_by": dict(Counter(what for turn in turns for what in turn.degraded)),
        "loop_lag_ms": distribution(lag for _, lags in bursts for lag in lags),
        "turns_per_second": round(len(turns) / sum(seconds), 2),
        "in_start_order": [round(rho, 3) for rho in map(in_start_order, orders)],
        "finish_order": orders,
    }


async def measure(options: BenchOptions, archive: LoadArchive, pool: TextPool) -> dict[str, Any]:
    clock = turn_times()
    results: dict[str, Any] = {}
    with scratch_copy(archive.folder, options.root / "scratch") as folder:
        async with runner_with_model(isolated_settings(options.settings, folder), ScriptedDelayModel()) as runner:
            await warm_up(runner, archive.chats, pool, next(clock))
            for n in options.load_chats:
                chats = archive.burst_chats(n)
                measured, seconds = [], []
                for number in range(max(MIN_BURSTS, math.ceil(options.turns / n))):
                    await measurement_hooks(runner.services.memory).forget_encodings()  # each message new to the encoder
                    began = time.perf_counter()
                    measured.append(await burst(runner, chats, burst_messages(chats, number, pool), next(clock)))
                    seconds.append(time.perf_counter() - began)
                    await measurement_hooks(runner.services.memory).settle()  # the next burst meets no write behind this one
                results[str(n)] = summarise(measured, seconds)
                print(f"{n} chats at once: pre-reply p95 {results[str(n)]['pre_reply_ms']['p95']:.0f} ms, "
                      f"degraded {percent(results[str(n)]['degraded_share'])}", flush=True)
    return results


async def warm_up(runner: TurnRunner, chats: list[ChatPlan], pool: TextPool, now: float) -> None:
    """Each chat's vector index read from disk and one turn of it run, unmeasured: a bot's chats
    have spoken before (a chat's first search in a process reads its index, 50-100 ms). The turns
    run together: each waits for the model."""
    memory = runner.services.memory
    for chat in chats:
        await measurement_hooks(memory).nearest([chat.chat_id], "warm-up", 1)
    await asyncio.gather(*(runner.run(chat.chat_id, pool.questions[number % len(pool.questions)], now=now)
                           for number, chat in enumerate(chats)))
    await measurement_hooks(memory).settle()


async def run(options: BenchOptions) -> SectionResult:
    pool = TextPool(options.locomo_records)
    archive = await ensure_load_archive(options, pool)
    data = {
        "conditions": {**conditions(), "model_seconds": MODEL_SECONDS,
                       "prefetch_timeout_ms": options.settings.prefetch.timeout * 1000,
                       "chat_turns": options.load_chat_turns, "big_chat_turns": options.load_big_chat},
        "by_chats": await measure(options, archive, pool),
    }
    return SectionResult("load", data, [table(data)], [plot(data, options.out / "load.png")])


def _spread(d: dict[str, Any]) -> str:
    return f"{d['p50']:.0f} / {d['p95']:.0f} / {d['max']:.0f}"


def _rho_range(rhos: list[float]) -> str:
    measured = [rho for rho in rhos if not math.isnan(rho)]
    return f"{min(measured):.2f} to {max(measured):.2f}" if measured else "–"


def table(data: dict[str, Any]) -> str:
    rows = [
        (n, f"{cell['turns']} in {cell['bursts']}", _spread(cell["pre_reply_ms"]), _spread(cell["prefetch_ms"]),
         percent(cell["degraded_share"]),
         ", ".join(f"{what} {count}" for what, count in sorted(cell["degraded_by"].items())) or "–",
         _spread(cell["loop_lag_ms"]), cell["turns_per_second"], _spread(cell["reply_ms"]),
         _rho_range(cell["in_start_order"]))
        for n, cell in data["by_chats"].items()
    ]
    conditions = data["conditions"]
    big = f" and one of {conditions['big_chat_turns']:,}" if conditions["big_chat_turns"] else ""
    return markdown_table(
        ["chats at once", "turns in bursts", "pre-reply", "prefetch node", "degraded", "what timed out",
         "event-loop lag", "turns/s", "reply (model included)", "replies in start order (ρ, bursts' range)"],
        rows, f"Many chats at once: chats of {conditions['chat_turns']:,} turns{big}, a "
              f"{conditions['model_seconds']:.1f} s model that uses no CPU; ms: p50 / p95 / max")


def plot(data: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chats = [int(n) for n in data["by_chats"]]
    cells = list(data["by_chats"].values())
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for stat, style in (("p50", "-o"), ("p95", "--s"), ("max", ":^")):
        ax.plot(chats, [cell["pre_reply_ms"][stat] for cell in cells], style, label=f"pre-reply {stat}")
    ax.plot(chats, [cell["loop_lag_ms"]["p95"] for cell in cells], "-.x", color="grey", label="event-loop lag p95")
    deadline = data["conditions"]["prefetch_timeout_ms"]
    ax.axhline(deadline, color="red", ls=":", lw=1)
    ax.annotate(f"prefetch deadline {deadline:.0f} ms", (chats[0], deadline), textcoords="offset points",
                xytext=(2, 3), color="red", fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks(chats, [str(n) for n in chats])
    ax.minorticks_off()
    ax.set_xlabel("chats whose turns start at the same moment")
    ax.set_ylabel("ms")
    ax.set_title("time to the model's call, against chats at once")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
