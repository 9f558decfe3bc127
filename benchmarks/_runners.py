"""Every artifact of a bundle behind one ``run(batch) -> (N, D)`` interface.

Runtime formats go through ``edge``'s own backends (what ships); the float Keras and
SavedModel artifacts through TensorFlow, as the reference. Benchmarks are workstation
tools, so they may import TensorFlow; ``edge`` never does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from _common import progress

from edge.base.numeric import l2_normalize
from edge.model.backends import load_backend
from edge.model.bundle import Bundle
from edge.model.preprocess import InputSpec

TF_FORMATS = ("keras", "savedmodel")
# The float artifact that every other one is compared with, in order of preference.
REFERENCE_FORMATS = TF_FORMATS


class TFReference:
    """A float artifact in TensorFlow; ``threads`` must be set before TF runs anything."""

    runtime = "tensorflow"

    def __init__(self, fmt: str, path: Path, threads: int | None = None) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        self._tf = tf
        if fmt == "keras":
            import keras

            model = keras.saving.load_model(path, compile=False)
            self._call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        elif fmt == "savedmodel":
            loaded = tf.saved_model.load(str(path))
            endpoint = getattr(loaded, "serve", None) or loaded.signatures["serving_default"]
            self._loaded = loaded  # keep the trackable alive while its function is used
            self._call = endpoint
        else:
            raise ValueError(f"{fmt!r} is not a TensorFlow format ({', '.join(TF_FORMATS)})")

    def run(self, batch: np.ndarray) -> np.ndarray:
        y = self._call(self._tf.constant(batch, self._tf.float32))
        if isinstance(y, dict):  # a serving signature returns {name: tensor}
            y = next(iter(y.values()))
        return np.asarray(y).reshape(len(batch), -1).astype(np.float32, copy=False)


def runtimes_for(fmt: str) -> tuple[str, ...]:
    """Every runtime that can run a format."""
    if fmt in TF_FORMATS:
        return ("tensorflow",)
    if fmt.startswith("tflite"):
        return ("litert",)
    if fmt.startswith("onnx"):
        return ("onnxruntime", "opencv")
    return ()


def load_runner(bundle: Bundle, fmt: str, runtime: str, threads: int | None = None):
    """Load one artifact of ``bundle`` in ``runtime`` (its sha256 checked first)."""
    path = bundle.artifact_path(fmt)
    if runtime == "tensorflow":
        return TFReference(fmt, path, threads)
    return load_backend(path, runtime, threads)


def embed_all(runner: Any, crops: np.ndarray, spec: InputSpec, batch: int, desc: str) -> np.ndarray:
    """Unit-length embeddings of uint8 crops, normalised and run ``batch`` at a time."""
    out = []
    for i in progress(range(0, len(crops), batch), desc, total=-(-len(crops) // batch)):
        chunk = np.stack([spec.normalize(c) for c in crops[i : i + batch]])
        out.append(runner.run(chunk))
    return l2_normalize(np.concatenate(out))
