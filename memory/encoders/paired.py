"""MiniLM and e5-small side by side (:class:`PairedEncoder`, the default): two English texts are
compared by MiniLM, any other pair by e5-small; e5 is loaded and run only for chats that hold
another language."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from memory.encoders.bert_encoders import E5SmallEncoder, MiniLMEncoder
from memory.encoders.bert_graph import WIDTH
from memory.encoders.encoder import Encoder, Space, bare_passages
from memory.settings import ENCODER_RATIOS, Retrieval
from memory.words import in_latin_script, reads_as_english

# e5-small's relevance ratio over MiniLM's, both measured on LoCoMo (memory/settings.py), for a
# question judged in e5's space: one in another language, or any in a chat of other languages alone.
_E5_LOOSENESS = ENCODER_RATIOS["e5-small"]["relevance_ratio"] / Retrieval.model_fields["relevance_ratio"].default
# Where a paired query's distance says "no block shared" (2: no dot product); a passage of the
# query's own space this far is unrelated to it anyway (a cosine of 0.005 or less).
_UNSHARED = 1.99


class PairedEncoder(Encoder):
    """MiniLM beside e5-small: two English texts are compared by MiniLM, any other pair by e5
    (MiniLM reads English only). A chat pays for the languages it holds: an English line of a
    chat that holds no other language is encoded by MiniLM alone, and e5 is loaded only when a
    text in another language, or a chat that holds one (:func:`of_every_language`), needs it.

    Three 384-d blocks. A passage in English is [MiniLM, e5, 0], its e5 block left at zero
    until its chat holds another language (:meth:`fill` adds it, behind the turns); any other
    passage is [0, 0, e5] (but a Latin-script line of a chat of English alone is stored as
    English: :func:`of_every_language`). A query in English is [MiniLM, 0, e5] (its e5 block only for chats
    that hold another language), any other [0, e5, e5]. So a query's dot product with a passage
    is MiniLM's cosine when both are English and e5's otherwise, and 0 with an English passage
    whose e5 block is not there yet. Passages are of length 1 or √2: Chroma compares them in
    inner-product space, and a distance is ``2 − 2·q·p`` (:func:`memory.encoders.encoder.distances`).
    """

    name = "minilm-l6+e5-small"
    dimensions = 3 * WIDTH
    english_block = WIDTH
    collection_space = "ip"
    # How the vectors are laid out; part of the archive's record (an earlier layout is re-embedded).
    LAYOUT = 2

    def __init__(self, minilm: MiniLMEncoder | None = None, e5: E5SmallEncoder | None = None) -> None:
        self.minilm = minilm or MiniLMEncoder()
        self._e5, self._e5_lock = e5, threading.Lock()
        self._beside = ThreadPoolExecutor(1, thread_name_prefix="minilm-beside-e5")

    @property
    def e5(self) -> E5SmallEncoder:
        """e5-small, loaded at its first use (an English chat never needs it)."""
        with self._e5_lock:
            if self._e5 is None:
                self._e5 = E5SmallEncoder()
            return self._e5

    @property
    def e5_loaded(self) -> bool:
        return self._e5 is not None

    def forget_queries(self) -> None:
        self.minilm.forget_queries()
        if self.e5_loaded:
            self.e5.forget_queries()

    def loads_for(self, query: str) -> bool:
        return not self.e5_loaded and not asked_in_english(query, False)

    def encode(self, texts: list[str], *, query: bool = False, every_language: bool = True) -> np.ndarray:
        english = np.array([asked_in_english(text, every_language) for text in texts], dtype=bool)
        with_e5 = np.ones(len(texts), dtype=bool) if every_language else ~english
        # A query's MiniLM block is remembered (BertEncoder.encode): a turn's message is embedded
        # ahead for a chat of English alone, and again with e5's block when its chat holds more.
        encode_minilm = partial(self.minilm.encode, query=query)
        english_texts = [text for text, e in zip(texts, english) if e]
        if with_e5.any():  # two cores: MiniLM's pass runs beside e5's, which takes twice as long
            minilm = self._beside.submit(encode_minilm, english_texts)
            e5 = self.e5.encode([text for text, e in zip(texts, with_e5) if e], query=query)
            minilm_vectors = minilm.result()
        else:  # English alone (most turns): no hand-over to another thread, whose waking waits for the GIL
            minilm_vectors, e5 = encode_minilm(english_texts), None
        first, middle, last = slice(None, WIDTH), slice(WIDTH, 2 * WIDTH), slice(2 * WIDTH, None)
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        out[english, first] = minilm_vectors
        if e5 is not None:
            e5_english = english[with_e5]
            if query:
                out[with_e5 & ~english, middle] = e5[~e5_english]
                out[with_e5, last] = e5
            else:
                out[with_e5 & english, middle] = e5[e5_english]
                out[with_e5 & ~english, last] = e5[~e5_english]
        return out

    def fill(self, texts: list[str], passages: np.ndarray) -> np.ndarray:
        """The passages with the e5 block each English one lacks (:func:`bare_passages`) added,
        from its text; a line held as English while its chat was of English alone (its one
        Latin-script line of another language, :func:`of_every_language`) is laid out as
        another language's. So a filled chat is as its passages are encoded now."""
        passages = np.array(passages, dtype=np.float32)
        rows = np.flatnonzero(bare_passages(passages, self.english_block))
        if rows.size:
            held = [texts[row] for row in rows]
            e5 = self.e5.encode(held)
            other = ~np.array([reads_as_english(text) for text in held], dtype=bool)
            passages[rows[~other], WIDTH: 2 * WIDTH] = e5[~other]
            passages[rows[other]] = 0
            passages[rows[other], 2 * WIDTH:] = e5[other]
        return passages

    @property
    def record(self) -> str:
        # MiniLM's 8 bits are recorded (float32 vectors, recorded before, are another version's);
        # how texts are read is not: each vector carries its layout (:func:`current_record`).
        precision = ", MiniLM 8-bit" if self.minilm.int8 else ""
        return f"{self.name} (layout {self.LAYOUT}{precision})"

    def spaces(self, query: np.ndarray) -> list[Space]:
        """An English query: English passages by MiniLM, the others by e5 (when the query has
        e5's block); a query in another language: every passage by e5."""
        query = np.asarray(query, dtype=np.float32)
        if not query[:WIDTH].any():
            return [Space(E5SmallEncoder.name, query, "all", E5SmallEncoder.typical_background, _UNSHARED,
                          _E5_LOOSENESS)]
        minilm, e5 = np.zeros_like(query), np.zeros_like(query)
        minilm[:WIDTH], e5[2 * WIDTH:] = query[:WIDTH], query[2 * WIDTH:]
        spaces = [Space(MiniLMEncoder.name, minilm, "english", MiniLMEncoder.typical_background, _UNSHARED)]
        if e5.any():
            spaces.append(Space(E5SmallEncoder.name, e5, "other", E5SmallEncoder.typical_background, _UNSHARED,
                                _E5_LOOSENESS))
        return spaces


# The digest of how texts were read that older versions put in the pair's record ("reading 1a2b…"),
# when the reading was GOAT's own word tables.
_OLD_READING = re.compile(r", reading [0-9a-f]{12}")


def current_record(record: str) -> str:
    """An archive's encoder record as this version writes it: an older version's reading digest
    dropped. Each passage's vector carries its layout (its blocks), so a line now read otherwise
    keeps vectors that mean what they meant: nothing needs re-embedding for it."""
    return _OLD_READING.sub("", record)


# A chat is one of every language from its second Latin-script line that reads as another
# language: one alone is as often informal English that both libraries misread (one of REALTALK's
# 4 777 messages), and marking a chat for it makes its whole import run e5 too.
_LATIN_LINES_OF_EVERY_LANGUAGE = 2


def other_languages(passages: list[str]) -> tuple[list[int], bool]:
    """Which of these passages (their places) read as another language than English in Latin
    script, and whether one is in another script."""
    others = [place for place, text in enumerate(passages) if not reads_as_english(text)]
    latin = [place for place in others if in_latin_script(passages[place])]
    return latin, len(latin) < len(others)


def latin_of_another_language(text: str) -> bool:
    """Whether a text reads as another language than English in Latin script (a chat of
    English alone stores it as English until :func:`of_every_language`)."""
    return not reads_as_english(text) and in_latin_script(text)


def of_every_language(latin_lines: int, other_script: bool) -> bool:
    """Whether a chat holding this many Latin-script lines of another language (or a line in
    another script) is one of every language: the pair gives each of its passages e5's block.
    Until then its Latin-script lines are encoded as English (:func:`asked_in_english`)."""
    return other_script or latin_lines >= _LATIN_LINES_OF_EVERY_LANGUAGE


def asked_in_english(text: str, every_language: bool) -> bool:
    """Whether a text is encoded as English: it reads as English, or its chats hold English
    alone and it is in Latin script (a short English line, "Im gaming", may read as another
    language's; in such a chat there is nothing else for it to meet)."""
    return reads_as_english(text) or (not every_language and in_latin_script(text))
