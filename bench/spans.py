"""Where a turn's time goes beyond its nodes: the bench's own spans of the calls a turn makes
around them (holding the chat, reading and writing its checkpoints, letting the chat go),
hooked onto one runner's instances, so that nothing of the product times itself for the bench.

A turn's pre-reply time splits into holding the chat, reading its checkpoint, the memory nodes
(the fan-out by its slowest branch), the llm node but the model call (its few lines after the
call counted here too), and what is left: the graph's own steps between them. Its post-reply
time splits into the checkpoint writes, the second run's checkpoint read, save and archive,
letting the chat go, and the graph's steps.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import wraps
from typing import Any

from graph.runner import TurnRunner
from nodes.state import FAN_OUT

PRE_REPLY = ("hold the chat", "read the checkpoint", "memory nodes", "llm node, the model aside", "graph steps")
POST_REPLY = ("write the checkpoints", "read the checkpoint again", "save and archive", "let the chat go",
              "graph steps")
PHASES = (*(f"pre: {name}" for name in PRE_REPLY), *(f"post: {name}" for name in POST_REPLY))
MEMORY_NODES = ("gap_filter", "budget", "assemble")  # after the fan-out, before the llm node
CHECKPOINT_READS = ("aget_tuple",)
CHECKPOINT_WRITES = ("aput", "aput_writes")


class TurnSpans:
    """Records (what, started, ended) of the calls around a turn's nodes, as ``perf_counter`` times."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []

    async def hook(self, runner: TurnRunner) -> None:
        """Time this runner's chat holds and its graph's checkpoint calls from now on."""
        memory = runner.services.memory
        hold = memory.turn

        @asynccontextmanager
        async def turn(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            asked = time.perf_counter()
            async with hold(*args, **kwargs) as unfinished:
                self.spans.append(("hold", asked, time.perf_counter()))
                yield unfinished
                releasing = time.perf_counter()
            self.spans.append(("release", releasing, time.perf_counter()))

        memory.turn = turn  # type: ignore[method-assign]
        checkpointer = (await runner.graph()).checkpointer
        for name in (*CHECKPOINT_READS, *CHECKPOINT_WRITES):
            setattr(checkpointer, name, self._timing(name, getattr(checkpointer, name)))

    def _timing(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(call)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                self.spans.append((name, started, time.perf_counter()))

        return timed

    def take(self) -> list[tuple[str, float, float]]:
        """The spans recorded since the last call."""
        spans, self.spans = self.spans, []
        return spans


def phases(spans: list[tuple[str, float, float]], nodes_ms: dict[str, float], started: float, called: float,
           returned: float, ended: float) -> dict[str, float]:
    """One turn's :data:`PHASES`, ms; ``called`` and ``returned`` bound the model call."""

    def spent(names: tuple[str, ...], after: float, before: float) -> float:
        return sum(end - start for name, start, end in spans if name in names and after <= start < before) * 1000

    model_ms = (returned - called) * 1000
    pre = {
        "hold the chat": spent(("hold",), started, called),
        "read the checkpoint": spent(CHECKPOINT_READS, started, called),
        "memory nodes": max(nodes_ms.get(node, 0.0) for node in FAN_OUT)
        + sum(nodes_ms.get(node, 0.0) for node in MEMORY_NODES),
        "llm node, the model aside": max(0.0, nodes_ms.get("llm", 0.0) - model_ms),
    }
    pre["graph steps"] = (called - started) * 1000 - sum(pre.values())
    post = {
        "write the checkpoints": spent(CHECKPOINT_WRITES, returned, ended),
        "read the checkpoint again": spent(CHECKPOINT_READS, returned, ended),
        "save and archive": nodes_ms.get("save", 0.0) + nodes_ms.get("archive", 0.0),
        "let the chat go": spent(("release",), returned, ended),
    }
    post["graph steps"] = (ended - returned) * 1000 - sum(post.values())
    return {**{f"pre: {name}": ms for name, ms in pre.items()}, **{f"post: {name}": ms for name, ms in post.items()}}
