"""Three rules for the futures a question's search starts ahead and shares."""

from __future__ import annotations

import asyncio


def may_go_unread(future: asyncio.Future) -> asyncio.Future:
    """``future``, whose outcome nobody may wait for: its failure is retrieved as it ends (no
    "exception was never retrieved" in the log); whoever waits for it still gets it."""
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future


def succeeded(future: asyncio.Future | None) -> bool:
    """Whether the future has finished with a result (not cancelled, no error)."""
    return future is not None and future.done() and not future.cancelled() and future.exception() is None


def settle(future: asyncio.Future) -> None:
    """Done with ``future``: cancel it if it has not ended (nobody waits for it any more), else
    retrieve its failure, so none is logged as never retrieved: it was reported by whoever awaited
    it, or, for a search started ahead and dropped after a cache hit, it is nobody's.

    Args:
        future: a future a question's search started and no longer needs.
    """
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()
