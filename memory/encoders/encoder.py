"""What an encoder is and where its vectors are compared: the :class:`Encoder` interface, the
:class:`Space` a query's distances are measured in, and how passages' vectors are read
(distances, which passages are English)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Space:
    """Where a query's distances to some passages are measured: one model's cosines, or the
    paired encoder's blend of two. Each space spreads its distances its own way (a query's mean
    distance to a chat: ~1.68 with MiniLM, ~0.48 with e5, ~0.72 for the blend, on LoCoMo), so
    distances of two spaces are compared only through each space's background
    (:mod:`memory.retrieval.finding.scale`)."""

    name: str
    query: np.ndarray  # the query's vector with only this space's part (zeros elsewhere)
    passages: Literal["all", "english", "other"]  # those compared here (English: by the paired encoder's reading)
    typical_background: float  # a query's mean distance to a chat's passages here, on LoCoMo (a chat with none yet)
    # A passage this far or farther shares no block with the query: it is not compared here
    # (another space's, or an English passage without its e5 block yet), though Chroma finds it.
    outside: float = math.inf
    # How much looser than MiniLM's this space's relevance test is, for a question judged here
    # (retrieval.relevance_ratio is MiniLM's): e5's cosines are bunched, and its lines stand
    # out at a larger share of the background.
    looseness: float = 1.0


class Encoder(ABC):
    """Encodes texts to float32 vectors of :attr:`dimensions`. Thread-safe; load once per process."""

    name: str
    dimensions: int
    typical_background: float
    # The leading values that only English passages have (0: no passage is told apart).
    english_block = 0
    # How Chroma compares the vectors: squared L2 for unit vectors ("l2"), or the inner product
    # ("ip") when passages are of different lengths. Both give the same ``2 − 2·q·p`` here.
    collection_space = "l2"

    @property
    def record(self) -> str:
        """What the archive records of the encoder its vectors came from: its name, and whatever
        else the vectors depend on."""
        return self.name

    @abstractmethod
    def encode(self, texts: list[str], *, query: bool = False, every_language: bool = True) -> np.ndarray:
        """One row per text, in input order. ``query`` marks search queries, as opposed to the
        passages searched; a query's distance to them is :func:`distances`. ``every_language``
        False: for a chat of English alone, whose Latin-script texts are encoded as English
        (an encoder that reads every language in one model ignores it)."""

    def fill(self, texts: list[str], passages: np.ndarray) -> np.ndarray:
        """The passages (vectors of these texts, encoded for a chat that held English only) as
        a chat holding other languages needs them."""
        return np.asarray(passages, dtype=np.float32)

    def forget_queries(self) -> None:
        """Forget the vectors of the last queries, if the encoder remembers them: each query is
        then run again, as a new message would be (what a benchmark of new messages needs)."""

    def loads_for(self, query: str) -> bool:
        """Whether encoding ``query`` for a chat of English alone would first load a model (a
        cheap check of the text, no model run)."""
        return False

    def spaces(self, query: np.ndarray) -> list[Space]:
        """Where the query (a vector of :meth:`encode` with ``query=True``) is compared with the
        passages, the space its own language is compared in first."""
        return [Space(self.name, np.asarray(query, dtype=np.float32), "all", self.typical_background)]


def distances(passages: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Each passage's distance to the query, ``2 − 2·q·p``: squared L2 when the query is a unit
    vector too, as the passages are (a paired encoder's query is longer, and its L2 would add
    its squared length less one to every distance)."""
    return 2.0 - 2.0 * (np.asarray(passages, dtype=np.float32) @ np.asarray(query, dtype=np.float32))


def english_passages(passages: np.ndarray, english_block: int) -> np.ndarray:
    """Which passages are English ones (a paired encoder's: its leading ``english_block`` values
    are not all zero); none when the encoder tells none apart (``english_block`` 0)."""
    passages = np.asarray(passages)
    return np.any(passages[..., :english_block] != 0, axis=-1)


def bare_passages(passages: np.ndarray, english_block: int) -> np.ndarray:
    """Which passages are English ones without their e5 block yet (a paired encoder's, whose
    English passages are ``[MiniLM, e5, 0]``)."""
    passages = np.asarray(passages)
    if not english_block:
        return np.zeros(passages.shape[:-1], dtype=bool)
    return english_passages(passages, english_block) & ~np.any(
        passages[..., english_block: 2 * english_block] != 0, axis=-1)
