"""An ONNX file from a :class:`~edge.model.dlib_graph.Graph`: float, or static INT8 in QDQ form.

Written as protobuf by hand (the few ModelProto fields a graph needs), so neither the
``onnx`` package nor TensorFlow is needed on a device: onnxruntime reads the file.
The input is NHWC float32 like the files ``convert`` writes (a Transpose to NCHW first);
INT8 is the QDQ layout ``onnxruntime.quantization`` produces (QuantizeLinear/
DequantizeLinear around each activation, int8 weights per output channel, int32 bias),
which onnxruntime fuses into integer kernels.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np

from edge.base.errors import FacelensError
from edge.model import int8
from edge.model.dlib_graph import INPUT_NAME, Graph, Op

OPSET = 17
IR_VERSION = 8
_DTYPES = {np.float32: 1, np.int8: 3, np.int32: 6, np.int64: 7}


# -- protobuf wire format: varints and length-delimited fields ----------------------------


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 as two's complement
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _bytes(field: int, data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _attr(name: str, value: int | float | Iterable[int]) -> bytes:
    """An AttributeProto: INT (2), FLOAT (1) or INTS (7)."""
    if isinstance(value, float):
        body = _varint(2 << 3 | 5) + struct.pack("<f", value) + _int(20, 1)
    elif isinstance(value, int):
        body = _int(3, value) + _int(20, 2)
    else:
        body = b"".join(_int(8, v) for v in value) + _int(20, 7)
    return _bytes(5, _bytes(1, name) + body)


def _tensor(name: str, array: np.ndarray) -> bytes:
    """A TensorProto with raw little-endian data."""
    array = np.ascontiguousarray(array)
    dims = b"".join(_int(1, d) for d in array.shape)
    dtype = _DTYPES[array.dtype.type]
    return (
        dims
        + _int(2, dtype)
        + _bytes(8, name)
        + _bytes(9, array.astype(array.dtype.newbyteorder("<")).tobytes())
    )


def _value_info(name: str, dims: list[int | str] | None) -> bytes:
    """A float32 tensor's ValueInfoProto (``dims`` None: shape not stated)."""
    tensor_type = _int(1, 1)
    if dims is not None:
        shape = b"".join(
            _bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in dims
        )
        tensor_type += _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


class _Builder:
    """Nodes and initializers of one graph, in order."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> str:
        body = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
        body += _bytes(3, f"{outputs[0]}/{op}") + _bytes(4, op)
        body += b"".join(_attr(k, v) for k, v in attrs.items())
        self.nodes.append(body)
        return outputs[0]

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(_tensor(name, array))
        return name

    def model(self, inputs: bytes, outputs: list[bytes], doc: str) -> bytes:
        graph = b"".join(_bytes(1, n) for n in self.nodes) + _bytes(2, "main")
        graph += b"".join(_bytes(5, t) for t in self.inits) + _bytes(11, inputs)
        graph += b"".join(_bytes(12, o) for o in outputs)
        opset = _bytes(1, "") + _int(2, OPSET)
        return (
            _int(1, IR_VERSION) + _bytes(2, "facelens") + _bytes(6, doc)
            + _bytes(7, graph) + _bytes(8, opset)
        )  # fmt: skip


def write_onnx(
    graph: Graph,
    ranges: dict[str, list[float]] | None = None,
    description: str = "",
    extra_outputs: Iterable[str] = (),
) -> bytes:
    """The ONNX file's bytes: INT8 QDQ with ``ranges``, else float32. ``extra_outputs``
    (float only): tensors to expose as outputs too, to measure their ranges."""
    b = _Builder()
    emitted, out = int8.fused(graph)
    params = int8.activation_params(graph, ranges) if ranges is not None else None

    def settle(name: str) -> str:
        """The tensor consumers read: ``name`` through Q/DQ when quantizing."""
        if params is None:
            return name
        q = params[name]
        scale = b.const(f"{name}/scale", np.array(q.scale, np.float32))
        zero = b.const(f"{name}/zero", np.array(q.zero, np.int8))
        quantized = b.node("QuantizeLinear", [name, scale, zero], [f"{name}/q"])
        return b.node("DequantizeLinear", [quantized, scale, zero], [f"{name}/dq"])

    read = {INPUT_NAME: settle(b.node("Transpose", ["input"], [INPUT_NAME], perm=[0, 3, 1, 2]))}
    for op in emitted:
        read_from = int8.sources(op, out)
        ins = [read[i] for i in read_from]
        scale = params[read_from[0]].scale if params else None
        y = _emit(b, op, ins, [graph.shape(i) for i in op.inputs], scale)
        if out[op.name] != op.name:
            y = b.node("Relu", [y], [out[op.name]])
        read[out[op.name]] = settle(y)
    result = b.node("Identity", [read[out[graph.output]]], ["embedding_out"])
    outputs = [_value_info(result, ["batch", graph.ops[-1].shape[-1]])]
    outputs += [_value_info(name, None) for name in extra_outputs]
    inputs = _value_info("input", ["batch", *graph.input_shape])
    return b.model(inputs, outputs, description)


def _weights(b: _Builder, name: str, w: np.ndarray, in_scale: float | None, bias) -> list[str]:
    """Kernel (output channels first) and bias inputs: float, or int8/int32 through DQ."""
    if in_scale is None:
        return [b.const(f"{name}/kernel", w), b.const(f"{name}/bias", bias)]
    qw, wscale = int8.weights(w, axis=0)
    qb, bscale = int8.bias(bias, in_scale, wscale)
    n = len(wscale)
    kernel = b.node("DequantizeLinear", [
        b.const(f"{name}/kernel_q", qw), b.const(f"{name}/kernel_scale", wscale),
        b.const(f"{name}/kernel_zero", np.zeros(n, np.int8)),
    ], [f"{name}/kernel"], axis=0)  # fmt: skip
    bias_dq = b.node("DequantizeLinear", [
        b.const(f"{name}/bias_q", qb), b.const(f"{name}/bias_scale", bscale),
        b.const(f"{name}/bias_zero", np.zeros(n, np.int32)),
    ], [f"{name}/bias"], axis=0)  # fmt: skip
    return [kernel, bias_dq]


def _emit(b: _Builder, op: Op, ins: list[str], in_shapes: list, in_scale: float | None) -> str:
    """One op as ONNX nodes (NCHW); returns its output's name."""
    if op.kind == "conv":
        (kh, kw), (sy, sx), (py, px) = (op.config[k] for k in ("size", "stride", "padding"))
        kernel = op.weights["kernel"].transpose(3, 2, 0, 1)  # HWIO -> OIHW
        w = _weights(b, op.name, kernel, in_scale, op.weights["bias"])
        return b.node("Conv", [ins[0], *w], [op.name], kernel_shape=[kh, kw],
                      strides=[sy, sx], pads=[py, px, py, px])  # fmt: skip
    if op.kind in ("max_pool", "avg_pool"):
        kind = "MaxPool" if op.kind == "max_pool" else "AveragePool"
        return b.node(kind, ins, [op.name], kernel_shape=list(op.config["size"]),
                      strides=list(op.config["stride"]))  # fmt: skip
    if op.kind == "add":
        padded = [_pad_to(b, i, shape, op.shape) for i, shape in zip(ins, in_shapes, strict=True)]
        return b.node("Add", padded, [op.name])
    if op.kind == "global_avg_pool":
        pooled = b.node("GlobalAveragePool", ins, [f"{op.name}/4d"])
        return b.node("Flatten", [pooled], [op.name], axis=1)
    if op.kind == "dense":
        w = _weights(b, op.name, op.weights["kernel"].T, in_scale, _dense_bias(op))
        return b.node("Gemm", [ins[0], *w], [op.name], transB=1)
    raise FacelensError(f"{op.name}: no ONNX writer for a {op.kind!r} op")


def _dense_bias(op: Op) -> np.ndarray:
    return op.weights.get("bias", np.zeros(op.shape[-1], np.float32))


def _pad_to(b: _Builder, name: str, have: tuple[int, ...], shape: tuple[int, ...]) -> str:
    """``name`` (NCHW) zero-padded at the end to the (H, W, C) ``shape``, as dlib's add_prev_."""
    (h, w, c), (hh, hw, hc) = shape, have
    if (h, w, c) == (hh, hw, hc):
        return name
    pads = b.const(f"{name}/pads", np.array([0, 0, 0, 0, 0, c - hc, h - hh, w - hw], np.int64))
    return b.node("Pad", [name, pads], [f"{name}/padded"])
