"""A TFLite model cut into stages at the tensors that separate its graph, with their geometry.

A *separator* is a tensor that everything flows through: the operators before it read
and write only their own tensors, the weights and it. Between two separators lies a
*stage*, which becomes a sub-model of the same flatbuffer (the same operators, weights
and quantization parameters; its input and output are the two separator tensors), so
running the stages in turn computes what the whole model computes, to the bit.

A stage made only of windowed operators (convolutions and pools, whose kernel, stride
and padding are read from the file) and element-wise ones has a :class:`Geometry`: per
spatial axis, which outputs a changed input interval affects, and which inputs
computing some outputs needs. Such a stage can run on a crop of its input map. Any
other operator (a reshape, a global mean, a dense layer, one not known here) leaves its
stage without geometry: it runs on the whole map.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

Interval = tuple[int, int]  # first and last index, inclusive

OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if name.isupper()}
# element-wise: output[i] depends on the inputs at i only (constants broadcast over space)
POINTWISE = frozenset(
    {
        "QUANTIZE", "DEQUANTIZE", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1",
        "LEAKY_RELU", "PRELU", "LOGISTIC", "TANH", "HARD_SWISH", "ELU", "GELU",
        "ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "ABS", "NEG",
    }
)  # fmt: skip
CONVOLUTIONS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})
POOLS = frozenset({"MAX_POOL_2D", "AVERAGE_POOL_2D"})


@dataclass(frozen=True)
class Window:
    """An operator along one spatial axis: output ``j`` reads inputs from
    ``j * stride - pad`` to ``j * stride - pad + kernel - 1`` (TFLite's SAME / VALID)."""

    kernel: int = 1  # with dilation: the span the kernel covers
    stride: int = 1
    same: bool = False

    def size(self, n: int) -> int:
        """The output length for an input of length ``n``."""
        return -(-n // self.stride) if self.same else (n - self.kernel) // self.stride + 1

    def pad(self, n: int) -> int:
        """Padding before the first input (TFLite puts the odd one after)."""
        if not self.same:
            return 0
        return max((self.size(n) - 1) * self.stride + self.kernel - n, 0) // 2

    def affected(self, changed: Interval, n: int) -> Interval | None:
        """The outputs that read any input in ``changed`` (None: no output does)."""
        p = self.pad(n)
        first = max(-(-(changed[0] + p - self.kernel + 1) // self.stride), 0)
        last = min((changed[1] + p) // self.stride, self.size(n) - 1)
        return (first, last) if first <= last else None

    def needed(self, outputs: Interval, n: int) -> Interval:
        """The inputs (inside the map) that computing ``outputs`` reads."""
        p = self.pad(n)
        return max(outputs[0] * self.stride - p, 0), min(
            outputs[1] * self.stride - p + self.kernel - 1, n - 1
        )


@dataclass(frozen=True)
class Node:
    """One operator of a stage: the tensors it reads (not constants), the one it writes."""

    inputs: tuple[int, ...]
    output: int
    windows: tuple[Window, Window]  # rows, columns


def _hull(a: Interval | None, b: Interval | None) -> Interval | None:
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), max(a[1], b[1])


@dataclass(frozen=True)
class Geometry:
    """Where a stage's outputs come from, per spatial axis (0: rows, 1: columns)."""

    nodes: tuple[Node, ...]  # in the order they run
    input: int
    output: int

    def sizes(self, n: int, axis: int) -> dict[int, int]:
        """Every tensor's length along ``axis`` for an input of length ``n``."""
        size = {self.input: n}
        for node in self.nodes:
            size[node.output] = node.windows[axis].size(size[node.inputs[0]])
        return size

    def steps(self, axis: int) -> tuple[int, int] | None:
        """(alignment, output stride) along ``axis``: a crop must start at a multiple of
        the alignment (every tensor's stride from the input) to be computed as the whole
        map is; the output stride maps crop starts to the output. None when two paths
        reach a tensor with different strides.
        """
        stride = {self.input: 1}
        for node in self.nodes:
            reached = {stride[t] * node.windows[axis].stride for t in node.inputs}
            if len(reached) > 1:
                return None
            stride[node.output] = reached.pop()
        return math.lcm(*stride.values()), stride[self.output]

    def affected(self, changed: Interval, n: int, axis: int) -> Interval | None:
        """The output interval that a change of the input over ``changed`` reaches."""
        size, reach = self.sizes(n, axis), {self.input: changed}
        for node in self.nodes:
            hit = None
            for t in node.inputs:
                if reach.get(t) is not None:
                    hit = _hull(hit, node.windows[axis].affected(reach[t], size[t]))
            reach[node.output] = hit
        return reach[self.output]

    def needed(self, outputs: Interval, n: int, axis: int) -> Interval:
        """The input interval that computing the output interval ``outputs`` reads."""
        size, need = self.sizes(n, axis), {self.output: outputs}
        for node in reversed(self.nodes):
            if need.get(node.output) is None:
                continue
            for t in node.inputs:
                need[t] = _hull(need.get(t), node.windows[axis].needed(need[node.output], size[t]))
        return need[self.input]

    def pads(self, n: int, axis: int) -> list[int]:
        """Each operator's padding before its first input, for an input of length ``n``."""
        size = self.sizes(n, axis)
        return [node.windows[axis].pad(size[node.inputs[0]]) for node in self.nodes]


@dataclass(frozen=True)
class Stage:
    """The operators ``first`` to ``stop - 1``: from separator ``input`` to ``output``."""

    first: int
    stop: int
    input: int
    output: int
    geometry: Geometry | None  # None: an operator with unknown footprint; run it whole


def read(path: Path | str) -> schema.ModelT:
    """The model's flatbuffer as TFLite's object API (weights as numpy arrays)."""
    return flatbuffer_utils.read_model(str(path))


def op_name(model: schema.ModelT, op: schema.OperatorT) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    return OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")


def _constants(model: schema.ModelT) -> set[int]:
    graph = model.subgraphs[0]
    produced = {t for op in graph.operators for t in op.outputs}
    return {
        t for t in range(len(graph.tensors)) if t not in produced and t not in set(graph.inputs)
    }


def separators(model: schema.ModelT) -> list[tuple[int, int]]:
    """(position, tensor): before operator ``position`` only ``tensor`` is still needed.

    The operators are in the order TFLite runs them, so a tensor is live at a position
    when an earlier operator (or the graph input) wrote it and a later one (or the
    graph output) reads it. Position 0 gives the input, the last the output.
    """
    graph = model.subgraphs[0]
    constants = _constants(model)
    written = {t: -1 for t in graph.inputs}
    last_read = {t: len(graph.operators) for t in graph.outputs}
    for i, op in enumerate(graph.operators):
        for t in op.inputs:
            if t >= 0 and t not in constants:
                last_read[t] = max(last_read.get(t, i), i)
        for t in op.outputs:
            written[t] = i
    cuts = []
    for position in range(len(graph.operators) + 1):
        live = [t for t, w in written.items() if w < position <= last_read.get(t, -1)]
        if len(live) == 1:
            cuts.append((position, live[0]))
    return cuts


def _padding(value: int) -> bool:
    """True for SAME."""
    return value == schema.Padding.SAME


def _node(model: schema.ModelT, op: schema.OperatorT, constants: set[int]) -> Node | None:
    """The operator's footprint, or None when it is not a windowed or element-wise one."""
    graph, name = model.subgraphs[0], op_name(model, op)
    shapes = {t: list(graph.tensors[t].shape) for t in (*op.inputs, *op.outputs) if t >= 0}
    if len(op.outputs) != 1 or len(shapes[op.outputs[0]]) != 4:
        return None
    out = op.outputs[0]
    if name in CONVOLUTIONS:
        o = op.builtinOptions
        kh, kw = shapes[op.inputs[1]][1:3]
        rows = Window((kh - 1) * o.dilationHFactor + 1, o.strideH, _padding(o.padding))
        cols = Window((kw - 1) * o.dilationWFactor + 1, o.strideW, _padding(o.padding))
        return Node((op.inputs[0],), out, (rows, cols))
    if name in POOLS:
        o = op.builtinOptions
        same = _padding(o.padding)
        return Node(
            (op.inputs[0],), out, (Window(o.filterHeight, o.strideH, same),
                                   Window(o.filterWidth, o.strideW, same))
        )  # fmt: skip
    if name in ("PAD", "PADV2"):
        pads = _constant(model, op.inputs[1])
        if pads is None or pads.shape != (4, 2) or pads[1:3].any():
            return None  # padding rows or columns moves the map: not element-wise
        return Node((op.inputs[0],), out, (Window(), Window()))
    if name not in POINTWISE:
        return None
    reads = tuple(t for t in op.inputs if t >= 0 and t not in constants)
    for t in op.inputs:
        if t in constants and len(shapes[t]) >= 3 and np.prod(shapes[t][-3:-1]) > 1:
            return None  # a constant that varies over space
    if not reads or any(shapes[t] != shapes[out] for t in reads):
        return None  # broadcasting a map
    return Node(reads, out, (Window(), Window()))


def _constant(model: schema.ModelT, tensor: int) -> np.ndarray | None:
    info = model.subgraphs[0].tensors[tensor]
    data = model.buffers[info.buffer].data
    if data is None or info.type != schema.TensorType.INT32:
        return None
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.int32).reshape(info.shape)


def cut(model: schema.ModelT) -> list[Stage]:
    """The model's stages in running order (one stage without geometry when it cannot be cut).

    Only a single-graph model with one input and one output is cut.
    """
    graph = model.subgraphs[0]
    whole = [Stage(0, len(graph.operators), graph.inputs[0], graph.outputs[0], None)]
    if len(model.subgraphs) > 1 or len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return whole
    constants = _constants(model)
    cuts = separators(model)
    stages = []
    for (first, source), (stop, sink) in itertools.pairwise(cuts):
        if first == stop:
            continue
        nodes = [_node(model, op, constants) for op in graph.operators[first:stop]]
        geometry = None
        if all(nodes) and len(graph.tensors[source].shape) == 4:
            geometry = Geometry(tuple(nodes), source, sink)
            if geometry.steps(0) is None or geometry.steps(1) is None:
                geometry = None
        stages.append(Stage(first, stop, source, sink, geometry))
    return stages or whole


def submodel(model: schema.ModelT, first: int, stop: int, source: int, sink: int) -> bytes:
    """The operators ``first`` to ``stop - 1`` as a model of their own, from ``source``
    to ``sink``: only their tensors and weights are kept, unchanged."""
    graph = model.subgraphs[0]
    ops = graph.operators[first:stop]
    used = sorted(
        {source, sink}
        | {t for op in ops for t in (*op.inputs, *op.outputs, *(op.intermediates or [])) if t >= 0}
    )
    index = {t: i for i, t in enumerate(used)}
    buffers, tensors = [schema.BufferT()], []  # buffer 0: the empty one every model has
    for t in used:
        tensor = copy.copy(graph.tensors[t])
        data = model.buffers[tensor.buffer].data
        if data is not None and len(data):
            buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(buffers) - 1
        else:
            tensor.buffer = 0
        tensors.append(tensor)
    operators = []
    for op in ops:
        op = copy.copy(op)
        op.inputs = [index[t] if t >= 0 else t for t in op.inputs]
        op.outputs = [index[t] for t in op.outputs]
        if op.intermediates is not None:
            op.intermediates = [index[t] for t in op.intermediates]
        operators.append(op)
    sub = schema.SubGraphT()
    sub.tensors, sub.operators = tensors, operators
    sub.inputs, sub.outputs = [index[source]], [index[sink]]
    sub.name = graph.name
    part = copy.copy(model)
    part.subgraphs, part.buffers = [sub], buffers
    part.signatureDefs, part.metadata, part.metadataBuffer = None, None, None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(part))


def macs(model: schema.ModelT, stage: Stage) -> int:
    """Multiply-accumulates of the stage's convolutions and dense layers, whole map, one image."""
    graph, total = model.subgraphs[0], 0
    for op in graph.operators[stage.first : stage.stop]:
        name = op_name(model, op)
        outputs = int(np.prod(graph.tensors[op.outputs[0]].shape))
        weights = list(graph.tensors[op.inputs[1]].shape) if len(op.inputs) > 1 else []
        if name == "CONV_2D":  # weights (out, kh, kw, in)
            total += outputs * int(np.prod(weights[1:]))
        elif name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, channels)
            total += outputs * int(weights[1] * weights[2])
        elif name == "FULLY_CONNECTED":  # weights (out, in)
            total += outputs * int(weights[1])
    return total
