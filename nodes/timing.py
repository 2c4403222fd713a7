"""Per-node latency bookkeeping, so every node reports its own time the same way."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

Params = ParamSpec("Params")
# A node's typed update, on nodes.state.NodeUpdate (which declares ``latency_ms``): not named here,
# as timing and state are independent layers of the nodes (pyproject's import contracts).
Update = TypeVar("Update", bound=Mapping[str, Any])
NodeFn = Callable[Params, Awaitable[Update]]


def timed(name: str) -> Callable[[NodeFn[Params, Update]], NodeFn[Params, Update]]:
    """Add ``{"latency_ms": {name: ms}}`` to a node's update."""

    def decorate(fn: NodeFn[Params, Update]) -> NodeFn[Params, Update]:
        @functools.wraps(fn)
        async def node(*args: Params.args, **kwargs: Params.kwargs) -> Update:
            started = time.perf_counter()
            update = await fn(*args, **kwargs)
            elapsed = round((time.perf_counter() - started) * 1000, 3)
            # The same update with its time: a type checker cannot type a spread type variable.
            return cast(Update, {**update, "latency_ms": {**update.get("latency_ms", {}), name: elapsed}})

        return node

    return decorate
