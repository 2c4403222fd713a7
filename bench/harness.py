"""What every section shares: the run's options, isolated backends, and turns timed around an instant model."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from bench.spans import TurnSpans, phases
from graph.checkpoint import CheckpointedServices
from graph.runner import TurnRunner
from graph.settings import Settings
from nodes.state import TurnState
from memory.facade import Memory, measurement_hooks
from bench.support import locomo

@dataclass(frozen=True)
class BenchOptions:
    settings: Settings  # as loaded (goat.toml, environment): the knobs a turn runs with
    out: Path  # where the JSON files and plots go
    sizes: tuple[int, ...]  # archive sizes, in turns
    turns: int  # measured turns per cell (archive size × chat layout × message kind)
    import_turns: int  # turns imported by the throughput section
    checkpoint_turns: int  # turns of the chat whose checkpoints are measured
    locomo_path: Path
    bilingual: bool = False  # the overhead section also measures bilingual archives
    load_chats: tuple[int, ...] = (1, 10, 40, 100)  # the load section: chats whose turns start at once
    load_chat_turns: int = 1_000  # the load section: turns each chat holds
    load_big_chat: int = 0  # the load section: turns of one more chat, a big one (0: none)
    groups: int = 40  # the groups section: listening groups
    groups_seconds: int = 60  # the groups section: seconds their members talk
    scale_big_chat: int = 1_000_000  # the scale section: messages of its big chat
    scale_chats: int = 1_000  # the scale section: chats beside it
    scale_chat_messages: int = 1_000  # the scale section: messages of each of those
    scale_add: int = 100_000  # the scale section: messages added to its big chat once it was asked
    scale_chroma: str = "embedded"  # the scale section: Chroma in the serving process, or a `chroma run` "server"

    @property
    def root(self) -> Path:
        """The benchmark's own data: cached archives and scratch copies (``<data_dir>/bench``)."""
        return Path(self.settings.data_dir).expanduser() / "bench"

    @cached_property
    def locomo_records(self) -> list[dict[str, Any]]:
        return locomo.load(self.locomo_path)


def isolated_settings(settings: Settings, folder: Path) -> Settings:
    """The user's knobs, with an embedded Redis and Chroma in ``folder``: a benchmark never
    writes its archives into servers configured for real use."""
    return settings.model_copy(update={
        "data_dir": folder,
        "redis": settings.redis.model_copy(update={"url": None, "cluster": False}),
        "chroma": settings.chroma.model_copy(update={"url": None}),
    })


class StopwatchChatModel(BaseChatModel):
    """Answers at once with a fixed reply and notes when it was called, so the benchmark can
    take the model's time out of the turn and time everything else."""

    reply: str = "Noted, thanks."
    called_at: float = 0.0
    returned_at: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "goat-bench-instant"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.called_at = time.perf_counter()
        result = ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.reply))])
        self.returned_at = time.perf_counter()
        return result

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        # Inline rather than in an executor thread, which would add a thread hop to the turn.
        return self._generate(messages, stop, run_manager, **kwargs)

    def bind_tools(self, tools: Any, **kwargs: Any) -> "StopwatchChatModel":
        """Offered tools, it still just answers: turns are measured on the path without tool calls."""
        return self


@asynccontextmanager
async def bench_runner(
    settings: Settings, memory: Memory | None = None
) -> AsyncIterator[tuple[TurnRunner, StopwatchChatModel]]:
    """A TurnRunner on ``settings`` whose model is instant, with every backend warmed up."""
    model = StopwatchChatModel()
    async with runner_with_model(settings, model, memory) as runner:
        yield runner, model


@asynccontextmanager
async def runner_with_model(settings: Settings, model: BaseChatModel,
                            memory: Memory | None = None) -> AsyncIterator[TurnRunner]:
    """A TurnRunner on ``settings`` answering with ``model``, with every backend warmed up."""
    services = CheckpointedServices(settings, memory)
    services.chat_model = model  # fills the cached property: no model client is ever built
    async with TurnRunner(services) as runner:
        await runner.warm_up()
        yield runner


@dataclass(frozen=True)
class TimedTurn:
    pre_reply_ms: float  # start of the turn → the model is called (the fan-out overlapping)
    post_reply_ms: float  # the model has answered → the turn is done (save, archive)
    total_ms: float  # the whole turn minus the model call
    # The turn is done → its L3 write (embedding, Chroma) has landed: the archiver's work
    # behind the reply, which the turn does not wait for.
    archive_behind_ms: float
    state: TurnState
    phases_ms: dict[str, float] = field(default_factory=dict)  # with spans: see bench/spans.py

    @property
    def nodes_ms(self) -> dict[str, float]:
        return dict(self.state.get("latency_ms") or {})


async def timed_turn(runner: TurnRunner, model: StopwatchChatModel, chat_id: str, message: str,
                     now: float, spans: TurnSpans | None = None) -> TimedTurn:
    """One whole turn (prefetch … llm … save … archive), timed around the model call, then
    the wait for its L3 write behind the reply (so that turns do not overlap that write, as
    a person's turns, seconds apart, do not). With ``spans`` hooked onto the runner, its
    phases too."""
    if spans is not None:
        spans.take()
    started = time.perf_counter()
    state = await runner.run(chat_id, message, now=now)
    ended = time.perf_counter()
    if await measurement_hooks(runner.services.memory).settle():
        raise RuntimeError("the turn's L3 write failed")
    settled = time.perf_counter()
    if not started <= model.called_at <= model.returned_at <= ended:
        raise RuntimeError("the model was not called during the turn")
    model_ms = (model.returned_at - model.called_at) * 1000
    return TimedTurn(
        pre_reply_ms=(model.called_at - started) * 1000,
        post_reply_ms=(ended - model.returned_at) * 1000,
        total_ms=(ended - started) * 1000 - model_ms,
        archive_behind_ms=(settled - ended) * 1000,
        state=state,
        phases_ms=phases(spans.take(), dict(state.get("latency_ms") or {}), started, model.called_at,
                         model.returned_at, ended) if spans is not None else {},
    )


@contextmanager
def scratch_copy(source: Path, scratch: Path) -> Iterator[Path]:
    """A throw-away copy of a cached archive (its Redis and Chroma must be closed): measured
    turns are saved and archived, and must not grow the cached archive."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(source, scratch, ignore=shutil.ignore_patterns("*.sock", "*.lock", "*.log"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def conditions() -> dict[str, Any]:
    """The machine's state while measuring: timings are only comparable under similar load."""
    return {"cpus": os.cpu_count(), "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


@dataclass(frozen=True)
class HostState:
    """How fast the host runs Python now, and its CPU tick counters: on a shared (virtual)
    machine the same code measures 20 % apart from one day to the next, and these say why."""

    reference_ms: float  # a fixed pure-Python workload, the best of a few runs
    ticks: int  # CPU time of the machine since boot, all states (Linux; 0 elsewhere)
    stolen: int  # of which taken by the hypervisor for other machines

    @classmethod
    def now(cls) -> "HostState":
        return cls(_reference_workload_ms(), *_cpu_ticks())

    def until(self, later: "HostState") -> dict[str, Any]:
        """What changed between two states: the workload's time at both, the share of CPU stolen between."""
        ticks = later.ticks - self.ticks
        return {
            "reference_workload_ms": [self.reference_ms, later.reference_ms],
            "cpu_stolen_share": round((later.stolen - self.stolen) / ticks, 4) if ticks > 0 else None,
        }


_REFERENCE_STEPS = 200_000


def _reference_workload_ms() -> float:
    def once() -> float:
        started = time.perf_counter()
        total = 0
        for step in range(_REFERENCE_STEPS):
            total += step % 7
        return (time.perf_counter() - started) * 1000

    return round(min(once() for _ in range(7)), 2)


def _cpu_ticks() -> tuple[int, int]:
    """(all, stolen) CPU ticks since boot, from /proc/stat's ``cpu`` line."""
    try:
        first_line = Path("/proc/stat").read_text().split("\n", 1)[0]
    except OSError:
        return 0, 0
    ticks = [int(field) for field in first_line.split()[1:]]
    return sum(ticks), ticks[7] if len(ticks) > 7 else 0
