"""Inference runtimes behind one small interface: batch of NHWC float32 in, features out.

- ``litert``: ``.tflite`` through ``ai_edge_litert`` (XNNPACK), else ``tflite_runtime``.
- ``onnxruntime``: ``.onnx`` through onnxruntime's CPU provider.
- ``opencv``: ``.onnx`` through ``cv2.dnn`` — no extra dependency at all.

TensorFlow's own ``tf.lite`` is deliberately not a fallback: ``edge`` never imports
TensorFlow, and every install that has TensorFlow (the ``convert`` extra) also has
ai-edge-litert.
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from edge.base.errors import BundleError, FacelensError

RUNTIMES = ("litert", "onnxruntime", "opencv")


class Backend(ABC):
    """One loaded model file in one runtime."""

    runtime: str

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a (N, H, W, C) float32 batch; return (N, D) float32 features (flattened)."""

    def _load_error(self, exc: Exception) -> BundleError:
        return BundleError(
            f"{self.runtime} cannot load {self.path} ({type(exc).__name__}: {exc}); "
            "the file may be corrupt or from another tool: rebuild the bundle"
        )


def _litert_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise FacelensError(
                "no TFLite runtime is installed: `pip install ai-edge-litert` "
                "(or choose an .onnx format with --format onnx-int8)"
            ) from None
    return Interpreter


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what native code writes to fd 2 (LiteRT's one-line XNNPACK banner).

    Failures still surface: LiteRT raises them as Python exceptions with the message.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class LiteRTBackend(Backend):
    """A ``.tflite`` file through LiteRT; int8/uint8 model inputs are quantized here."""

    runtime = "litert"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        interpreter_class = _litert_interpreter()
        try:
            self._interp = interpreter_class(model_path=str(self.path), num_threads=threads)
            with _native_stderr_silenced():
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise self._load_error(exc) from exc
        self._input = self._interp.get_input_details()[0]
        self._output = self._interp.get_output_details()[0]
        self._batch = int(self._input["shape"][0])

    def _resize(self, n: int) -> None:
        if n != self._batch:
            shape = list(self._input["shape"])
            shape[0] = n
            self._interp.resize_tensor_input(self._input["index"], shape)
            self._interp.allocate_tensors()
            self._batch = n

    def run(self, batch: np.ndarray) -> np.ndarray:
        self._resize(len(batch))
        x = batch
        if self._input["dtype"] in (np.int8, np.uint8):
            scale, zero = self._input["quantization"]
            info = np.iinfo(self._input["dtype"])
            x = np.clip(np.round(batch / scale + zero), info.min, info.max)
        self._interp.set_tensor(self._input["index"], x.astype(self._input["dtype"]))
        self._interp.invoke()
        y = self._interp.get_tensor(self._output["index"])
        if self._output["dtype"] in (np.int8, np.uint8):
            scale, zero = self._output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.reshape(len(batch), -1).astype(np.float32, copy=False)


class OnnxRuntimeBackend(Backend):
    """An ``.onnx`` file through onnxruntime's CPU execution provider."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        try:
            import onnxruntime as ort
        except ImportError:
            raise FacelensError(
                "onnxruntime is not installed: `pip install onnxruntime` "
                "(or run the .onnx file with --runtime opencv)"
            ) from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise self._load_error(exc) from exc
        self._input_name = self._session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        (y,) = self._session.run(None, {self._input_name: batch.astype(np.float32, copy=False)})[:1]
        return y.reshape(len(batch), -1).astype(np.float32, copy=False)


class OpenCVBackend(Backend):
    """An ``.onnx`` file through ``cv2.dnn``: slower, but needs nothing beyond OpenCV."""

    runtime = "opencv"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        if threads:
            cv2.setNumThreads(threads)
        try:
            self._net = cv2.dnn.readNetFromONNX(str(self.path))
        except cv2.error as exc:
            raise self._load_error(exc) from exc

    def run(self, batch: np.ndarray) -> np.ndarray:
        self._net.setInput(np.ascontiguousarray(batch, dtype=np.float32))
        y = self._net.forward()
        return np.asarray(y).reshape(len(batch), -1).astype(np.float32, copy=False)


_BACKENDS: dict[str, type[Backend]] = {
    "litert": LiteRTBackend,
    "onnxruntime": OnnxRuntimeBackend,
    "opencv": OpenCVBackend,
}


def default_runtime(path: Path) -> str:
    """The runtime a file runs in unless the user says otherwise."""
    suffix = Path(path).suffix
    if suffix == ".tflite":
        return "litert"
    if suffix == ".onnx":
        return "onnxruntime"
    raise BundleError(f"{path} is neither .tflite nor .onnx; the edge runtime cannot run it")


def load_backend(
    path: Path | str, runtime: str | None = None, threads: int | None = None
) -> Backend:
    """Load a model file in ``runtime`` (default: chosen by the file's suffix)."""
    path = Path(path)
    runtime = runtime or default_runtime(path)
    if runtime not in _BACKENDS:
        raise FacelensError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if runtime == "litert" and path.suffix != ".tflite":
        raise FacelensError(f"{path} is not a .tflite file; LiteRT runs only .tflite")
    if runtime in ("onnxruntime", "opencv") and path.suffix != ".onnx":
        raise FacelensError(f"{path} is not an .onnx file; {runtime} runs only .onnx")
    return _BACKENDS[runtime](path, threads)
