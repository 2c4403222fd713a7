"""One scale for every distance a query meets, whatever space it was measured in (pure).

A query is compared with the passages in one space or two (:meth:`Encoder.spaces`): with the
paired encoder, an English question meets English lines through MiniLM, and lines in other
languages through e5. Each space spreads its distances its own way
(e5's cosines sit between ~0.7 and 1.0 for any two texts, MiniLM's start near 0), so a raw
distance says nothing across spaces: a Romanian line about soup would look closer to "hi, how
are you?" than any English line does.

So each space is judged against its own background, the query's mean distance to the chats'
passages in that space, and every distance is put on the scale of the reference space (the
first one whose background is measured, the query's own language's first):
``raw × background(reference) / background(space)``, a space of too few passages for a
background counting by its typical one. An entry stands out in any space when it
is as much closer than that space's average entry as an entry of the reference space must be;
ranking, the background test, the gap test and its ceiling all read these distances. The
relevance ratio is MiniLM's: a question judged in e5's space has its distances divided by that
space's looseness (e5's lines stand out at 0.8 of the background where MiniLM's do at 0.75). A chat
with only the reference space's passages keeps its raw distances. Chats with nothing indexed
yet are measured against each space's typical background.

An entry is judged against the other passages' mean distance (its own taken out: the
relevance tests are given how many passages the background is the mean of), so a chat of one
passage has no background yet: the gap test decides, under the ceiling as the space typically
spreads its distances (against a mean of itself, a new chat's "My cat is Miso." was never
recalled for "what is my cat called?").
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from memory.encoders.bert_encoders import MiniLMEncoder
from memory.encoders.encoder import Encoder, Space, distances, english_passages
from memory.stores.entry_index import Centroid

# Passages a background is the mean of, at least: an entry is compared with the others' mean.
FEWEST_FOR_A_BACKGROUND = 2


@dataclass(frozen=True)
class Scale:
    """A query's spaces and backgrounds: how far any passage is from it, on one scale.

    Args:
        spaces: where the query is compared, its own language's space first.
        backgrounds: per space, the query's mean distance to the chats' passages there (None
            when the chats hold none there).
        english_block: the encoder's leading values that only English passages have.
        query: the query's vector as the encoder made it (what :meth:`record` keeps).
        passages: per space, how many passages its background is the mean of (None: enough).
    """

    spaces: list[Space]
    backgrounds: dict[str, float | None]
    english_block: int = 0
    query: np.ndarray | None = None
    passages: dict[str, int] | None = None

    @classmethod
    def of_query(cls, encoder: Encoder, query: np.ndarray, centroid: Centroid | None) -> Scale:
        """The scale of ``query`` (the encoder's vector of a query) with chats whose passages sum to
        ``centroid`` (None: nothing indexed)."""
        spaces = encoder.spaces(query)
        backgrounds: dict[str, float | None] = {}
        passages: dict[str, int] = {}
        for space in spaces:
            # English passages without e5's block yet are not compared in e5's space: not counted.
            count = 0 if centroid is None else {
                "all": centroid.count - centroid.bare, "english": centroid.english,
                "other": centroid.count - centroid.english,
            }[space.passages]
            backgrounds[space.name] = (
                float(distances(centroid.total / count, space.query)) if centroid is not None and count else None)
            passages[space.name] = count
        return cls(spaces, backgrounds, encoder.english_block, np.asarray(query, dtype=np.float32), passages)

    def record(self) -> dict:
        """The scale as JSON keeps it (a measured one: its query is known); :meth:`of_record` makes
        it again, exactly. The query's values as their bytes: a thousand floats written as text
        cost a turn's event loop a millisecond."""
        query = np.asarray(self.query, dtype="<f4").tobytes()
        return {"query": base64.b64encode(query).decode("ascii"), "backgrounds": self.backgrounds,
                "passages": self.passages}

    @classmethod
    def of_record(cls, record: dict, encoder: Encoder) -> Scale:
        """The scale :meth:`record` kept, as :meth:`of_query` made it, without encoding the query again."""
        query = np.frombuffer(base64.b64decode(record["query"]), dtype="<f4").astype(np.float32)
        passages = record["passages"]
        return cls(encoder.spaces(query), dict(record["backgrounds"]), encoder.english_block, query,
                   None if passages is None else dict(passages))

    @property
    def reference(self) -> Space:
        """The space whose distances the scale keeps: the first one whose background is measured,
        else the first one the chats hold passages in (a chat's single English line does not
        take the background away from its fifty Russian ones)."""
        held = [space for space in self.spaces if self.backgrounds[space.name] is not None]
        return next((space for space in held if self._measured(space)), held[0] if held else self.spaces[0])

    @property
    def asked_in_another_language(self) -> bool:
        """Whether the query is compared as a language other than English: an encoder that tells
        English apart gave it no English block, so every passage is compared in e5's space."""
        return bool(self.english_block) and self.spaces[0].passages == "all"

    @property
    def background(self) -> float | None:
        """The reference space's background: what the relevance tests measure against (None: the
        chats hold too few passages for one yet, and the gap test decides). An entry is judged
        against the mean over the others (:attr:`background_passages` tells them apart)."""
        reference = self.reference
        return self.backgrounds[reference.name] if self._measured(reference) else None

    @property
    def background_passages(self) -> int | None:
        """How many passages :attr:`background` is the mean of (None: not counted)."""
        return None if self.passages is None else self.passages.get(self.reference.name)

    def _measured(self, space: Space) -> bool:
        """Whether the space's background is the mean of enough passages to measure against."""
        return self.backgrounds[space.name] is not None and (
            self.passages is None or self.passages.get(space.name, 0) >= FEWEST_FOR_A_BACKGROUND)

    def searched(self) -> list[Space]:
        """The spaces worth searching: those the chats hold passages in (all of them, when the
        chats hold nothing indexed yet)."""
        held = [space for space in self.spaces if self.backgrounds[space.name] is not None]
        return held or self.spaces

    def calibrate(self, space: Space, raw: float | np.ndarray) -> float | np.ndarray:
        """Distances measured in ``space`` put on the scale (and by the reference space's
        looseness: the relevance ratio is MiniLM's)."""
        reference = self.reference
        if space.name == reference.name:
            return raw / reference.looseness
        return raw * self._unit(reference) / self._unit(space) / reference.looseness

    def of_passages(self, passages: np.ndarray) -> np.ndarray:
        """Each passage's distance to the query on the scale, measured in the space it belongs to
        (the query's own-language space for English passages, e5's for the others)."""
        passages = np.asarray(passages, dtype=np.float32).reshape(-1, len(self.spaces[0].query))
        english = english_passages(passages, self.english_block)
        # A passage of no space searched shares nothing with the query: 2, as Chroma would say.
        out = np.full(len(passages), 2.0, dtype=np.float32)
        for space in self.spaces:
            members = {"all": slice(None), "english": english, "other": ~english}[space.passages]
            out[members] = self.calibrate(space, distances(passages[members], space.query))
        return out

    @cached_property
    def columns(self) -> np.ndarray:
        """The passages' values :meth:`of_passages` reads (a mask): those some space's query
        does not zero out, and the English block; the others change no distance."""
        read = np.any([np.asarray(space.query) != 0 for space in self.spaces], axis=0)
        read[: self.english_block] = True
        return read

    def ceiling(self, minilm_ceiling: float) -> float:
        """``retrieval.small_result_ceiling`` (a distance as MiniLM spreads them) on the scale: as
        the reference space typically spreads them until its background is measured."""
        background = self.background
        unit = self.reference.typical_background if background is None else background
        return minilm_ceiling * unit / MiniLMEncoder.typical_background

    def _unit(self, space: Space) -> float:
        """The space's background, or how it typically spreads distances until that is measured
        (one passage's own distance would put it at the background, never standing out)."""
        return self.backgrounds[space.name] if self._measured(space) else space.typical_background
