"""Will an INT8 model saturate on x86 CPUs without VNNI? An estimate on any machine.

Without VNNI, ONNX Runtime's U8S8 kernels multiply uint8 activations by int8 weights
with ``VPMADDUBSW``, which adds each pair of neighbouring products along the reduction
axis into a signed 16-bit sum that saturates at -32,768..32,767. A pair of 255 x 127
products is 64,770. ``pair_sums`` recomputes those pair sums for every convolution and
matrix product of a QDQ model on real inputs and reports the share that leaves the
16-bit range: a VNNI machine cannot show the accuracy loss, this shows its cause.

The activations are the model's own ``QuantizeLinear`` outputs, computed with ONNX
Runtime's graph optimizations off (float reference ops, no integer kernels), so the
estimate does not depend on the CPU it runs on. The pairing follows the kernels' layout
(channels-last, reduction order kernel-row, kernel-column, input channel, padded to an
even length); depthwise and grouped convolutions use other kernels and are not
estimated. ``onnx_deploy.convert.emulate`` runs the model on an emulated AVX2 CPU for the
outputs themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnx_deploy.infer.modelinfo import load_onnx

INT16_MIN, INT16_MAX = -32768, 32767
HISTOGRAM_EDGES = np.linspace(-65536, 65536, 65)  # 2,048-wide bins over the u8 x s8 range
_MAX_ROWS = 8192  # output positions sampled per layer: bounds memory on large models


@dataclass(frozen=True)
class LayerPairSums:
    """Pair sums of one quantized Conv/MatMul/Gemm: how many leave the int16 range."""

    node: str
    op_type: str
    pairs: int
    overflow: int
    max_abs: int
    histogram: tuple[int, ...]  # counts over HISTOGRAM_EDGES

    @property
    def overflow_fraction(self) -> float:
        return self.overflow / self.pairs if self.pairs else 0.0

    def summary(self) -> str:
        return (
            f"{self.node:<24}{self.op_type:<7} {100 * self.overflow_fraction:6.2f}% of "
            f"{self.pairs:,} pair sums outside int16 (largest |sum| {self.max_abs:,})"
        )


def _initializers(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _quantized_products(model: Any) -> list[tuple[Any, str, np.ndarray]]:
    """(node, activation tensor from QuantizeLinear, int8 weight) for each U8S8 product."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = _initializers(model)
    found = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm") or len(node.input) < 2:
            continue
        x_dq, w_dq = producers.get(node.input[0]), producers.get(node.input[1])
        if x_dq is None or w_dq is None:
            continue
        if x_dq.op_type != "DequantizeLinear" or w_dq.op_type != "DequantizeLinear":
            continue
        q = producers.get(x_dq.input[0])
        weight = inits.get(w_dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or weight is None:
            continue
        if weight.dtype != np.int8:
            continue  # uint8 weights run on the U8U8 kernel, which does not saturate
        if node.op_type == "Conv" and (_attr(node, "group", 1) != 1 or weight.ndim != 4):
            continue  # depthwise/grouped and non-2D convolutions: other kernels
        if node.op_type != "Conv" and weight.ndim != 2:
            continue
        found.append((node, x_dq.input[0], weight))
    return found


def _activations(model: Any, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list:
    from onnx_deploy.infer.intermediates import intermediate_outputs

    values = intermediate_outputs(model, feeds, names)
    return [values[n] for n in names]


def _as_u8(q: np.ndarray) -> np.ndarray:
    # int8 activations run as uint8 + 128 on x86 (ONNX Runtime's QDQS8ToU8 transform)
    return q.astype(np.int32) + (128 if q.dtype == np.int8 else 0)


def _conv_rows(node: Any, x: np.ndarray, w: np.ndarray, zero: int) -> tuple[np.ndarray, ...]:
    """im2col in channels-last order: (positions, K) activations and (Cout, K) weights."""
    from numpy.lib.stride_tricks import sliding_window_view

    kh, kw = w.shape[2:]
    pads = list(_attr(node, "pads", [0, 0, 0, 0]))
    strides = list(_attr(node, "strides", [1, 1]))
    dil = list(_attr(node, "dilations", [1, 1]))
    xh = np.transpose(x, (0, 2, 3, 1))  # NHWC
    xh = np.pad(xh, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0)), constant_values=zero)
    span_h, span_w = dil[0] * (kh - 1) + 1, dil[1] * (kw - 1) + 1
    win = sliding_window_view(xh, (span_h, span_w), axis=(1, 2))  # N, OH, OW, C, sh, sw
    win = win[:, :: strides[0], :: strides[1], :, :: dil[0], :: dil[1]]
    rows = np.transpose(win, (0, 1, 2, 4, 5, 3)).reshape(-1, kh * kw * x.shape[1])
    return rows, np.transpose(w, (0, 2, 3, 1)).reshape(w.shape[0], -1)


def _pair_stats(rows: np.ndarray, weights: np.ndarray) -> tuple[int, int, int, np.ndarray]:
    k = rows.shape[1]
    if k % 2:
        rows = np.pad(rows, ((0, 0), (0, 1)))
        weights = np.pad(weights, ((0, 0), (0, 1)))
    a = rows.reshape(len(rows), -1, 2).astype(np.int32)
    b = weights.reshape(len(weights), -1, 2).astype(np.int32)
    pairs = overflow = max_abs = 0
    hist = np.zeros(len(HISTOGRAM_EDGES) - 1, dtype=np.int64)
    chunk = max(1, 2_000_000 // max(1, b.shape[0] * b.shape[1]))
    for start in range(0, len(a), chunk):
        part = a[start : start + chunk]
        sums = part[:, None, :, 0] * b[None, :, :, 0] + part[:, None, :, 1] * b[None, :, :, 1]
        pairs += sums.size
        overflow += int(np.count_nonzero((sums > INT16_MAX) | (sums < INT16_MIN)))
        max_abs = max(max_abs, int(np.abs(sums).max()))
        hist += np.histogram(sums, bins=HISTOGRAM_EDGES)[0]
    return pairs, overflow, max_abs, hist


def pair_sums(
    qdq_model: str | os.PathLike[str] | Any, feeds: Mapping[str, np.ndarray]
) -> list[LayerPairSums]:
    """Per quantized Conv/MatMul/Gemm (int8 weights): the share of VPMADDUBSW pair sums
    outside int16 on ``feeds`` (a dict of input name -> array, a few samples suffice)."""
    model = qdq_model if hasattr(qdq_model, "graph") else load_onnx(qdq_model)
    products = _quantized_products(model)
    if not products:
        return []
    inits = _initializers(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    acts = _activations(model, [p[1] for p in products], feeds)
    rng = np.random.default_rng(0)
    results = []
    for (node, name, weight), q in zip(products, acts, strict=True):
        zp_name = producers[name].input[2] if len(producers[name].input) > 2 else None
        zero = int(_as_u8(inits[zp_name]).ravel()[0]) if zp_name in inits else 0
        x = _as_u8(np.asarray(q))
        if node.op_type == "Conv":
            rows, w = _conv_rows(node, x, weight, zero)
        else:
            rows = x.reshape(-1, x.shape[-1])
            trans_b = node.op_type == "Gemm" and _attr(node, "transB", 0)
            w = weight if trans_b else weight.T  # (N, K)
        if len(rows) > _MAX_ROWS:
            rows = rows[rng.choice(len(rows), _MAX_ROWS, replace=False)]
        pairs, overflow, max_abs, hist = _pair_stats(rows, w)
        results.append(
            LayerPairSums(node.name, node.op_type, pairs, overflow, max_abs, tuple(hist.tolist()))
        )
    return results
