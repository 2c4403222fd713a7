"""Queries that arrive together, encoded together (:class:`QueryBatches`).

Encoded in one call, texts run side by side, one worker per core (MiniLM, at 8 bits, runs each
text alone), and a float32 model's batch shares one read of its weights and the run's fixed costs
(with float32 MiniLM a text cost 3.9 ms in a batch of ten against 4.6 alone back to back, and 8.4
against 18 on a busy host, whose other tenants evict the weights between calls). So when many
chats' messages arrive at once, a burst, their queries are gathered and encoded a batch at a time,
in arrival order, while a lone query is encoded at once, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import numpy as np

from memory.encoders.encoder import Encoder

# Queries per call: past ten, a text costs little less and the batch's first text waits for the
# rest; later queries go in the next call, so the first to arrive are the first served.
BATCH_QUERIES = 10

RunBlocking = Callable[..., Awaitable[Any]]


class QueryBatches:
    """Encodes queries one batch at a time: those asked while a batch runs wait for it to end and
    go in the next (at most ``BATCH_QUERIES``, first come first served); a query asked while none
    runs starts a batch at the end of the event loop's current pass, with whatever else was asked
    during that pass. ``run_blocking`` runs a call in a worker thread."""

    def __init__(self, run_blocking: RunBlocking) -> None:
        self._run_blocking = run_blocking
        # Waiting, in arrival order: (encoder, every_language) -> text -> the futures waiting for it.
        self._waiting: dict[tuple[Encoder, bool], dict[str, list[asyncio.Future[np.ndarray]]]] = {}
        self._running: asyncio.Future[None] | None = None

    def encode(self, encoder: Encoder, text: str, every_language: bool) -> asyncio.Future[np.ndarray]:
        """The query's vector to come (``encoder.encode`` of it with ``query=True``), made in a
        batch; cancelling the future gives it up."""
        vector: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((encoder, every_language), {}).setdefault(text, []).append(vector)
        if self._running is None:
            self._running = asyncio.ensure_future(self._encode_waiting())
        return vector

    def queued(self, text: str) -> bool:
        """Whether the query waits behind others (not yet in a batch that runs)."""
        return any(text in waiting for waiting in self._waiting.values())

    async def _encode_waiting(self) -> None:
        try:
            while self._waiting:
                (encoder, every_language), texts = self._next_batch()
                await self._encode_batch(encoder, every_language, texts)
        finally:
            self._running = None

    def _next_batch(self) -> tuple[tuple[Encoder, bool], dict[str, list[asyncio.Future[np.ndarray]]]]:
        """The first waiting queries (of one encoder and kind), taken off the queue."""
        key, waiting = next(iter(self._waiting.items()))
        batch = dict(list(waiting.items())[:BATCH_QUERIES])
        for text in batch:
            del waiting[text]
        if not waiting:
            del self._waiting[key]
        return key, batch

    async def _encode_batch(self, encoder: Encoder, every_language: bool,
                            texts: dict[str, list[asyncio.Future[np.ndarray]]]) -> None:
        # Queries whose turn gave up waiting (a deadline) are not encoded.
        texts = {text: futures for text, futures in texts.items() if not all(f.done() for f in futures)}
        if not texts:
            return
        try:
            vectors = await self._run_blocking(partial(encoder.encode, query=True, every_language=every_language),
                                               list(texts))
        except Exception as exc:
            for futures in texts.values():
                _settle(futures, exception=exc)
            return
        except BaseException:  # cancelled (the loop is closing): nobody is left to serve
            for futures in [*texts.values(), *(f for waiting in self._waiting.values() for f in waiting.values())]:
                for future in futures:
                    future.cancel()
            raise
        for futures, vector in zip(texts.values(), vectors):
            _settle(futures, result=vector)


def _settle(futures: list[asyncio.Future], *, result: Any = None, exception: BaseException | None = None) -> None:
    for future in futures:
        if future.done():  # cancelled: its waiter gave up
            continue
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
