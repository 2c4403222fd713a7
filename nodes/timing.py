"""Per-node latency bookkeeping, so every node reports its own time the same way."""

from __future__ import annotations

import functools
import time
from typing import Any, Awaitable, Callable

NodeFn = Callable[..., Awaitable[dict[str, Any]]]


def timed(name: str) -> Callable[[NodeFn], NodeFn]:
    """Add ``{"latency_ms": {name: ms}}`` to a node's update."""

    def decorate(fn: NodeFn) -> NodeFn:
        @functools.wraps(fn)
        async def node(*args: Any, **kwargs: Any) -> dict[str, Any]:
            started = time.perf_counter()
            update = await fn(*args, **kwargs)
            elapsed = round((time.perf_counter() - started) * 1000, 3)
            return {**update, "latency_ms": {**update.get("latency_ms", {}), name: elapsed}}

        return node

    return decorate
