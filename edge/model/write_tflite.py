"""A full-integer INT8 ``.tflite`` file from a :class:`~edge.model.dlib_graph.Graph`, no TensorFlow.

The file is built with the flatbuffer object API that ships inside ``ai_edge_litert``
(``schema_py_generated``: LiteRT's own schema, so the file is what that runtime reads)
and ``flatbuffers`` (a dependency of both LiteRT and onnxruntime). Float32 in and out,
as the files ``convert`` writes: QUANTIZE, then int8 CONV_2D (per-channel weights, relu
fused), MAX/AVERAGE_POOL_2D, PAD + ADD, MEAN, FULLY_CONNECTED, then DEQUANTIZE.
"""

from __future__ import annotations

import numpy as np

from edge.base.errors import FacelensError
from edge.model import int8
from edge.model.dlib_graph import INPUT_NAME, Graph, Op

# LiteRT's builtin operator codes and option-union indices (schema.fbs)
ADD, AVERAGE_POOL_2D, CONV_2D, DEQUANTIZE, FULLY_CONNECTED = 0, 1, 3, 6, 9
MAX_POOL_2D, PAD, MEAN, QUANTIZE = 17, 34, 40, 114
OPCODE_VERSIONS = {
    QUANTIZE: 1, CONV_2D: 3, MAX_POOL_2D: 2, AVERAGE_POOL_2D: 2, PAD: 2, ADD: 2, MEAN: 2,
    FULLY_CONNECTED: 4, DEQUANTIZE: 2,
}  # fmt: skip
FLOAT32, INT32, INT8 = 0, 2, 9
SAME, VALID = 0, 1
NO_ACTIVATION, RELU = 0, 1


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise FacelensError(
            "writing a .tflite file needs LiteRT's schema: `pip install ai-edge-litert` "
            "(or install the ONNX artifact with --format onnx-int8)"
        ) from None
    return schema


class _Writer:
    """Tensors, buffers and operators of one subgraph, in the order they are added."""

    def __init__(self, schema) -> None:
        self.s = schema
        self.tensors: list = []
        self.buffers = [self._buffer(None)]  # buffer 0: empty, by convention
        self.ops: list = []
        self.codes: list[int] = []
        self.index: dict[str, int] = {}

    def _buffer(self, data: np.ndarray | None):
        b = self.s.BufferT()
        b.data = (
            None if data is None else np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        )
        return b

    def tensor(self, name: str, shape, dtype: int, q=None, data=None, axis: int = 0) -> int:
        t = self.s.TensorT()
        t.name, t.shape, t.type = name, list(shape), dtype
        if data is not None:
            self.buffers.append(self._buffer(data))
            t.buffer = len(self.buffers) - 1
        if q is not None:
            scales, zeros = q
            qp = self.s.QuantizationParametersT()
            qp.scale = [float(v) for v in np.atleast_1d(scales)]
            qp.zeroPoint = [int(v) for v in np.atleast_1d(zeros)]
            qp.quantizedDimension = axis
            t.quantization = qp
        self.tensors.append(t)
        self.index[name] = len(self.tensors) - 1
        return self.index[name]

    def op(self, code: int, inputs: list[int], outputs: list[int], options=None, kind: int = 0):
        if code not in self.codes:
            self.codes.append(code)
        o = self.s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes.index(code), inputs, outputs
        o.builtinOptionsType, o.builtinOptions = kind, options
        self.ops.append(o)

    def options(self, cls: str, **fields):
        obj = getattr(self.s, cls)()
        for key, value in fields.items():
            setattr(obj, key, value)
        return obj


def write_tflite(graph: Graph, ranges: dict[str, list[float]], description: str) -> bytes:
    """The INT8 TFLite file's bytes for ``graph`` quantized with the measured ``ranges``."""
    import flatbuffers

    s = _schema()
    w = _Writer(s)
    params = int8.activation_params(graph, ranges)
    emitted, out = int8.fused(graph)
    fused_relu = {op.name for op in emitted if out[op.name] != op.name}

    def act(name: str, shape) -> int:
        q = params[name]
        return w.tensor(name, [1, *shape], INT8, (q.scale, q.zero))

    x = w.tensor("input", [1, *graph.input_shape], FLOAT32)
    w.op(QUANTIZE, [x], [act(INPUT_NAME, graph.input_shape)])
    for op in emitted:
        _emit(w, op, int8.sources(op, out), out[op.name], params, op.name in fused_relu, act)
    y = w.tensor("embedding_float", [1, *graph.ops[-1].shape], FLOAT32)
    w.op(DEQUANTIZE, [w.index[out[graph.output]]], [y])

    sub = s.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators = w.tensors, [x], [y], w.ops
    sub.name = "main"
    model = s.ModelT()
    model.version, model.subgraphs, model.buffers = 3, [sub], w.buffers
    model.description = description
    model.operatorCodes = []
    for code in w.codes:
        oc = s.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode = code, min(code, 127)
        oc.version = OPCODE_VERSIONS[code]
        model.operatorCodes.append(oc)
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _emit(w: _Writer, op: Op, ins: list[str], name: str, params, relu: bool, act) -> None:
    """One op of the graph as LiteRT operators (a PAD first where an add needs one)."""
    x = w.index[ins[0]]
    activation = RELU if relu else NO_ACTIVATION
    if op.kind == "conv":
        (kh, kw), (sy, sx), (py, px) = (op.config[k] for k in ("size", "stride", "padding"))
        if (py or px) and not op.same_padding:
            raise FacelensError(f"{op.name}: a padded strided conv is not written yet")
        qw, wscale = int8.weights(op.weights["kernel"].transpose(3, 0, 1, 2), axis=0)  # OHWI
        qb, bscale = int8.bias(op.weights["bias"], params[ins[0]].scale, wscale)
        zeros = np.zeros(len(wscale), np.int64)
        kernel = w.tensor(f"{op.name}/kernel", qw.shape, INT8, (wscale, zeros), qw)
        bias = w.tensor(f"{op.name}/bias", qb.shape, INT32, (bscale, zeros), qb)
        options = w.options(
            "Conv2DOptionsT", padding=SAME if op.same_padding else VALID, strideW=sx, strideH=sy,
            fusedActivationFunction=activation, dilationWFactor=1, dilationHFactor=1,
        )  # fmt: skip
        w.op(CONV_2D, [x, kernel, bias], [act(name, op.shape)], options, 1)
    elif op.kind in ("max_pool", "avg_pool"):
        (kh, kw), (sy, sx) = op.config["size"], op.config["stride"]
        options = w.options(
            "Pool2DOptionsT", padding=VALID, strideW=sx, strideH=sy, filterWidth=kw,
            filterHeight=kh, fusedActivationFunction=NO_ACTIVATION,
        )  # fmt: skip
        code = MAX_POOL_2D if op.kind == "max_pool" else AVERAGE_POOL_2D
        w.op(code, [x], [act(name, op.shape)], options, 5)
    elif op.kind == "add":
        padded = [_pad_to(w, i, op.shape, params[i]) for i in ins]
        options = w.options("AddOptionsT", fusedActivationFunction=activation)
        w.op(ADD, padded, [act(name, op.shape)], options, 11)
    elif op.kind == "global_avg_pool":
        axes = w.tensor(f"{op.name}/axes", [2], INT32, data=np.array([1, 2], np.int32))
        options = w.options("ReducerOptionsT", keepDims=False)
        w.op(MEAN, [x, axes], [act(name, op.shape)], options, 27)
    elif op.kind == "dense":
        qw, wscale = int8.weights(op.weights["kernel"].T, axis=0)  # (out, in)
        zeros = np.zeros(len(wscale), np.int64)
        kernel = w.tensor(f"{op.name}/kernel", qw.shape, INT8, (wscale, zeros), qw)
        inputs = [x, kernel]
        if "bias" in op.weights:
            qb, bscale = int8.bias(op.weights["bias"], params[ins[0]].scale, wscale)
            inputs.append(w.tensor(f"{op.name}/bias", qb.shape, INT32, (bscale, zeros), qb))
        options = w.options("FullyConnectedOptionsT", fusedActivationFunction=activation)
        w.op(FULLY_CONNECTED, inputs, [act(name, op.shape)], options, 8)
    else:
        raise FacelensError(f"{op.name}: no TFLite writer for a {op.kind!r} op")


def _pad_to(w: _Writer, name: str, shape: tuple[int, ...], q: int8.QParams) -> int:
    """``name`` zero-padded at the end to ``shape`` (int8 PAD fills with the zero point)."""
    have = w.tensors[w.index[name]].shape[1:]
    gaps = [goal - got for goal, got in zip(shape, have, strict=True)]
    if not any(gaps):
        return w.index[name]
    pads = np.array([[0, 0]] + [[0, g] for g in gaps], np.int32)
    paddings = w.tensor(f"{name}/pad_amounts", pads.shape, INT32, data=pads)
    padded = w.tensor(f"{name}/padded", [1, *shape], INT8, (q.scale, q.zero))
    w.op(PAD, [w.index[name], paddings], [padded], w.options("PadOptionsT"), 22)
    return padded
