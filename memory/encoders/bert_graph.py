"""The ONNX graph of a BERT encoder with mean pooling, built in memory with onnxruntime's fused
kernels (Attention, SkipLayerNormalization, BiasGelu), its matrices float32 or 8-bit
(:mod:`memory.encoders.int8`); its weights are handed to the session as they are, so no model
file exists anywhere."""

from __future__ import annotations

from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper

WIDTH = 384  # both models' hidden size and vector length
_HEADS = 12
_LAYER_NORM_EPS = 1e-12
_CONTRIB = "com.microsoft"  # onnxruntime's own operator domain
_NORM = {"domain": _CONTRIB, "epsilon": _LAYER_NORM_EPS}

FrontEnd = Literal["input_ids", "word_vectors"]


def _in_memory(name: str, tensor: np.ndarray) -> TensorProto:
    """An initializer whose data the session receives separately (add_external_initializers)."""
    proto = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(tensor.dtype), dims=tensor.shape)
    proto.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "in-memory"), ("offset", "0"), ("length", str(tensor.nbytes))):
        entry = proto.external_data.add()
        entry.key, entry.value = key, value
    return proto


class _Nodes:
    """The graph's nodes, in the order they are added, and the operations its layers are built of."""

    def __init__(self, int8: bool) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.int8 = int8

    def node(self, op: str, inputs: list[str], output: str, domain: str = "", **attributes: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attributes))
        return output

    def quantised_input(self, tensor: str) -> tuple[str, str, str]:
        """``tensor`` at 8 bits by its own range, its scale and zero point."""
        parts = (f"{tensor}_quantized", f"{tensor}_scale", f"{tensor}_zero_point")
        self.nodes.append(helper.make_node("DynamicQuantizeLinear", [tensor], list(parts)))
        return parts

    def matmul(self, tensor: str, matrix: str, output: str) -> str:
        if not self.int8:
            return self.node("MatMul", [tensor, matrix], output)
        quantised, scale, zero_point = self.quantised_input(tensor)
        scales = self.node("Mul", [scale, f"{matrix}_scale"], f"{output}_scales")
        product = self.node("MatMulInteger", [quantised, f"{matrix}_quantized", zero_point, f"{matrix}_zero_point"],
                            f"{output}_int32")
        return self.node("Mul", [self.node("Cast", [product], f"{output}_float", to=TensorProto.FLOAT), scales],
                         output)

    def attention(self, tensor: str, layer: int, output: str) -> str:
        if not self.int8:
            return self.node("Attention", [tensor, f"qkv_w{layer}", f"qkv_b{layer}", "lengths"], output,
                             domain=_CONTRIB, num_heads=_HEADS)
        quantised, scale, zero_point = self.quantised_input(tensor)
        matrix = f"qkv_w{layer}"
        return self.node("QAttention", [quantised, f"{matrix}_quantized", f"qkv_b{layer}", scale, f"{matrix}_scale",
                                        "lengths", zero_point, f"{matrix}_zero_point", ""], output,
                         domain=_CONTRIB, num_heads=_HEADS)

    def front(self, front_end: FrontEnd, hidden: str, constants: list[TensorProto]) -> onnx.ValueInfoProto:
        """The words' vectors with their positions added and normalised, as ``hidden``, and each
        row's token count as ``lengths``; the graph's first input."""
        if front_end == "input_ids":
            # Its second output, each row's token count, is the Attention mask.
            self.nodes.append(helper.make_node(
                "EmbedLayerNormalization",
                ["input_ids", "", "word", "position", "", "embed_gamma", "embed_beta", "attention_mask"],
                [hidden, "lengths"], domain=_CONTRIB, epsilon=_LAYER_NORM_EPS,
            ))
            return helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "length"])
        constants.append(helper.make_tensor("zero", TensorProto.INT64, [1], [0]))
        length = self.node("Shape", ["word_vectors"], "length", start=1, end=2)
        positions = self.node("Slice", ["position", "zero", length, "zero"], "positions")
        # A [length, 384] skip input is added to every row of the batch.
        self.node("SkipLayerNormalization", ["word_vectors", positions, "embed_gamma", "embed_beta"], hidden,
                  **_NORM)
        # Padding is on the right: each row's token count is the Attention mask.
        self.node("ReduceSum", ["attention_mask", "token_axis"], "lengths", keepdims=0)
        return helper.make_tensor_value_info("word_vectors", TensorProto.FLOAT, ["batch", "length", WIDTH])

    def layer(self, hidden: str, i: int) -> str:
        """Transformer layer ``i`` over ``hidden``: its output's name."""
        attended = self.attention(hidden, i, f"attended{i}")
        projected = self.matmul(attended, f"out_w{i}", f"projected{i}")
        mid = self.node("SkipLayerNormalization",
                        [projected, hidden, f"norm1_gamma{i}", f"norm1_beta{i}", f"out_b{i}"], f"mid{i}", **_NORM)
        up = self.matmul(mid, f"up_w{i}", f"up{i}")
        activated = self.node("BiasGelu", [up, f"up_b{i}"], f"activated{i}", domain=_CONTRIB)
        down = self.matmul(activated, f"down_w{i}", f"down{i}")
        return self.node("SkipLayerNormalization", [down, mid, f"norm2_gamma{i}", f"norm2_beta{i}", f"down_b{i}"],
                         f"hidden{i}", **_NORM)


def build_graph(weights: dict[str, np.ndarray], *, layers: int, front_end: FrontEnd, name: str,
                int8: bool = False) -> bytes:
    """BERT encoder + pooling, as a serialised ONNX model without its weights.

    Inputs: ``attention_mask`` int32 [batch, length] (padding on the right) and, by
    ``front_end``, either ``input_ids`` int32 [batch, length] (the graph looks the words up
    in ``weights["word"]``) or ``word_vectors`` float [batch, length, 384] (looked up by the
    caller). Outputs: ``summed`` [batch, 384], the sum of the real tokens' final states, and
    ``embedding``, its L2 normalisation (mean pooling's divisor cancels in it).

    ``int8``: the attention and feed-forward matrices are :func:`memory.encoders.int8.quantised`'s
    (``<matrix>_quantized``, ``_scale``, ``_zero_point``), each product's input quantised as it
    runs, as onnxruntime's dynamic quantisation lays a graph out.
    """
    built = _Nodes(int8)
    constants = [helper.make_tensor("last_axis", TensorProto.INT64, [1], [2]),
                 helper.make_tensor("token_axis", TensorProto.INT64, [1], [1])]
    hidden = "embedded"
    tokens = built.front(front_end, hidden, constants)
    for i in range(layers):
        hidden = built.layer(hidden, i)
    mask = built.node("Unsqueeze", [built.node("Cast", ["attention_mask"], "mask", to=TensorProto.FLOAT), "last_axis"],
                      "mask_column")
    summed = built.node("ReduceSum", [built.node("Mul", [hidden, mask], "masked"), "token_axis"], "summed", keepdims=0)
    built.node("LpNormalization", [summed], "embedding", axis=-1, p=2)

    graph = helper.make_graph(
        built.nodes,
        name,
        [tokens, helper.make_tensor_value_info("attention_mask", TensorProto.INT32, ["batch", "length"])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", WIDTH])
         for output in ("summed", "embedding")],
        constants + [_in_memory(key, tensor) for key, tensor in weights.items()],
    )
    # IR 8 / opset 17: what this onnxruntime reads (the onnx package writes newer by default).
    model = helper.make_model(
        graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(_CONTRIB, 1)]
    )
    return model.SerializeToString()
