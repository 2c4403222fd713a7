"""A BERT encoder's matrices at 8 bits, as onnxruntime's dynamic quantisation makes them
(``quantize_dynamic``: int8 weights, a scale per output column, ``reduce_range``: the same
bytes), computed in NumPy at load from the bundled float32 weights, so no quantised copy of the
model is kept or written anywhere, and loading costs no more memory than float32 does.

The weights use 7 of the 8 bits (-64..64): the 8-bit products of CPUs without VNNI (AVX2,
AVX-512) add pairs in 16 bits, which 255 x 127 x 2 overflows and 255 x 64 x 2 does not, so the
integer products are exact on every CPU. It cost nothing measurable (cosine with float32's 0.9907
against 0.9926 on average over LoCoMo's lines; 90 % of each line's ten nearest kept either way).

The attention and feed-forward matrices are quantised; the word and position tables and the
layer norms stay float32 (with the word table quantised too, some vectors fell to a cosine of
0.94 with float32's; with one scale a matrix, to 0.76). Activations are quantised as the graph
runs, by each run's range: an encoder of such a graph runs one text a run, or a text's vector
would depend on the texts batched with it.
"""

from __future__ import annotations

import numpy as np

_MATRICES = ("qkv_w", "out_w", "up_w", "down_w")  # memory.encoders.bert_graph's names, then the layer
_LEVELS = 64  # symmetric, zero at 0, one bit spare (above)


def quantised(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights as :func:`memory.encoders.bert_graph.build_graph` takes them with ``int8``.

    Args:
        weights: the float32 tensors by name, matrices as (in, out).

    Returns:
        The same tensors, each matrix replaced by ``<name>_quantized`` (int8), ``<name>_scale``
        (float32, one per output column) and ``<name>_zero_point`` (int8 zeros).
    """
    out: dict[str, np.ndarray] = {}
    for name, tensor in weights.items():
        if not name.startswith(_MATRICES):
            out[name] = tensor
            continue
        # In float64, as onnxruntime computes it, then float32: the same scales to the bit.
        scale = (np.abs(tensor).max(axis=0).astype(np.float64) / _LEVELS).astype(np.float32)
        scale[scale == 0] = 1.0  # an all-zero column
        out[f"{name}_quantized"] = np.clip(np.rint(tensor / scale), -_LEVELS, _LEVELS).astype(np.int8)
        out[f"{name}_scale"] = scale
        out[f"{name}_zero_point"] = np.zeros(scale.shape, dtype=np.int8)
    return out
