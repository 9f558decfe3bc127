"""INT8 parameters for a :class:`~edge.model.dlib_graph.Graph`, as TFLite and ONNX QDQ use them.

Activations are asymmetric int8 from a measured (min, max) range; weights symmetric
int8 per output channel; biases int32 at ``input scale x weight scale``. The ranges
are measured once on face crops (``python -m convert.shipped``) and shipped as numbers,
so a device quantizes the same way without faces or a calibration run.

A relu right after a conv or an add is fused into it (its range is the fused output's),
and pools keep their input's parameters (TFLite requires that of int8 pools).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.base.errors import FacelensError
from edge.model.dlib_graph import INPUT_NAME, Graph, Op

QMIN, QMAX = -128, 127


@dataclass(frozen=True)
class QParams:
    """``real = scale * (q - zero)``."""

    scale: float
    zero: int


def activation(lo: float, hi: float) -> QParams:
    """Asymmetric int8 parameters covering [lo, hi] (widened to hold 0 exactly)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = float(np.float32(max(hi - lo, 1e-8) / (QMAX - QMIN)))
    zero = int(np.clip(round(QMIN - lo / scale), QMIN, QMAX))
    return QParams(scale, zero)


def weights(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per channel along ``axis``: (int8 values, float32 scales)."""
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    scales = (np.maximum(np.abs(moved).max(axis=1), 1e-8) / QMAX).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scales.reshape(shape)), -QMAX, QMAX).astype(np.int8)
    return q, scales


def bias(b: np.ndarray, input_scale: float, weight_scales: np.ndarray) -> tuple:
    """int32 bias and its per-channel scales (``input scale x weight scale``)."""
    scales = (np.float32(input_scale) * weight_scales).astype(np.float32)
    return np.round(b / scales).astype(np.int32), scales


def fused(graph: Graph) -> tuple[list[Op], dict[str, str]]:
    """The ops a writer emits (a relu after a conv or add folded into it) and, for each
    emitted op, the name of the tensor it outputs (the relu's when fused)."""
    relu_of = {op.inputs[0]: op.name for op in graph.ops if op.kind == "relu"}
    kinds = {op.name: op.kind for op in graph.ops}
    if any(kinds.get(src) not in ("conv", "add") for src in relu_of):
        raise FacelensError("a relu that follows neither a conv nor an add cannot be fused")
    emitted = [op for op in graph.ops if op.kind != "relu"]
    return emitted, {op.name: relu_of.get(op.name, op.name) for op in emitted}


def range_keys(graph: Graph) -> list[str]:
    """The tensors whose (min, max) must be measured: input, fused outputs, not pools."""
    emitted, out = fused(graph)
    pools = ("max_pool", "avg_pool")
    return [INPUT_NAME] + [out[op.name] for op in emitted if op.kind not in pools]


def activation_params(graph: Graph, ranges: dict[str, list[float]]) -> dict[str, QParams]:
    """Every emitted tensor's parameters; a pool's are its input's."""
    missing = [k for k in range_keys(graph) if k not in ranges]
    if missing:
        raise FacelensError(f"no activation range for {', '.join(missing[:5])}: re-measure them")
    params = {INPUT_NAME: activation(*ranges[INPUT_NAME])}
    emitted, out = fused(graph)
    for op in emitted:
        name = out[op.name]
        params[name] = (
            params[sources(op, out)[0]]
            if op.kind in ("max_pool", "avg_pool")
            else activation(*ranges[name])
        )
    return params


def sources(op: Op, out: dict[str, str]) -> list[str]:
    """Every tensor an emitted op reads, by fused output name."""
    return [out.get(i, i) for i in op.inputs]
