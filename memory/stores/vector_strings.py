"""A chat's vectors in the entry index: float16, one row per entry number, packed in Redis
strings of ``ROWS_PER_KEY`` rows each. A Redis string holds at most 512 MB (~230 000 of a paired
encoder's vectors), so a busy group's chat needs several: the first keeps the key an index always
had (``…:vectors``), the next ones are ``…:vectors:1``, ``…:vectors:2``, … under the chat's hash tag."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from redis.asyncio import Redis

from memory.stores.entry_index_scripts import GATHER_VECTORS

VECTOR = np.dtype("<f2")
# Rows a string holds: 302 MB of a paired encoder's 1 152 values, within 512 MB for encoders of up to 2 048.
ROWS_PER_KEY = 131_072


class VectorStrings:
    """Where each entry's vector lies, and its reads and writes.

    Args:
        key: the key of a part of a chat's index (``EntryIndex.key``).
        dimensions: the vectors' length.
        rows_per_key: rows a string holds.
    """

    def __init__(self, redis: Redis, key: Callable[[str, str], str], dimensions: int,
                 rows_per_key: int = ROWS_PER_KEY) -> None:
        self._redis, self._key = redis, key
        self.dimensions = dimensions
        self._row_bytes = dimensions * VECTOR.itemsize
        self._rows_per_key = rows_per_key
        self._gather_vectors = redis.register_script(GATHER_VECTORS)

    def key_of(self, chat_id: str, number: int) -> str:
        """The key of the string holding the entry's vector."""
        string = number // self._rows_per_key
        return self._key(chat_id, "vectors" if string == 0 else f"vectors:{string}")

    def keys(self, chat_id: str, allocated: int) -> list[str]:
        """The keys of the strings entries numbered below ``allocated`` lie in (the first at least)."""
        return [self.key_of(chat_id, number) for number in range(0, max(allocated, 1), self._rows_per_key)]

    def write(self, pipe: Any, chat_id: str, number: int, vector: np.ndarray) -> None:
        """Queue on ``pipe`` (run by the caller) the entry's vector, in place of the one it had."""
        offset = number % self._rows_per_key * self._row_bytes
        pipe.setrange(self.key_of(chat_id, number), offset, vector.astype(VECTOR).tobytes())

    async def span(self, chat_id: str, low: int, high: int) -> np.ndarray:
        """The vectors of entries ``low`` to ``high`` (inclusive), a row each, from each string they lie in."""
        per_key, size = self._rows_per_key, self._row_bytes
        pieces = [(start, min(high, start - start % per_key + per_key - 1))
                  for start in [low, *range(low - low % per_key + per_key, high + 1, per_key)]]
        async with self._redis.pipeline(transaction=False) as pipe:
            for start, stop in pieces:
                pipe.getrange(self.key_of(chat_id, start), start % per_key * size, (stop % per_key + 1) * size - 1)
            read = await pipe.execute()
        return self._rows(b"".join(raw.ljust((stop - start + 1) * size, b"\0")
                                  for raw, (start, stop) in zip(read, pieces)), high - low + 1)

    async def gather(self, chat_id: str, numbers: Sequence[int], *,
                     ids_from: str | None = None) -> tuple[list[bytes | None] | None, np.ndarray]:
        """The entries' vectors, a row each in their order, in one round trip; with ``ids_from``
        (the chat's number → id hash), their ids too (None without)."""
        numbers = [int(n) for n in numbers]
        if not numbers:
            return ([] if ids_from is not None else None), self._rows(b"", 0)
        strings = [self.key_of(chat_id, number) for number in range(0, max(numbers) + 1, self._rows_per_key)]
        found = await self._gather_vectors(keys=[ids_from or strings[0], *strings],
                                           args=[self._row_bytes, self._rows_per_key, int(ids_from is not None),
                                                 *numbers])
        ids, raw = found if ids_from is not None else (None, found)
        return ids, self._rows(raw, len(numbers))

    def _rows(self, raw: bytes, rows: int) -> np.ndarray:
        """``rows`` packed vectors, one per row (a view: convert the rows you keep); the reads
        above have already filled what a string did not hold with zeros."""
        return np.frombuffer(raw, dtype=VECTOR).reshape(rows, self.dimensions)
