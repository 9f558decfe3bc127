"""Load each artifact back in its own runtime and compare it with the float Keras model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convert._quiet import native_output_silenced
from edge.base.numeric import l2_normalize
from edge.model.backends import load_backend

BATCH = 16


def _batched(run, batch: np.ndarray) -> np.ndarray:
    out = [np.asarray(run(batch[i : i + BATCH])) for i in range(0, len(batch), BATCH)]
    return np.concatenate(out).reshape(len(batch), -1).astype(np.float32)


def keras_features(model, batch: np.ndarray) -> np.ndarray:
    """The float reference: a Keras model's (N, D) outputs."""
    return _batched(model.predict_on_batch, batch)


def artifact_features(fmt: str, path: Path, batch: np.ndarray) -> np.ndarray:
    """Run ``batch`` through the artifact at ``path`` in the runtime it ships for."""
    if fmt == "savedmodel":
        import tensorflow as tf

        with native_output_silenced():
            loaded = tf.saved_model.load(str(path))
        return _batched(lambda x: loaded.serve(tf.constant(x)).numpy(), batch)
    if fmt == "keras":
        import keras

        with native_output_silenced():
            model = keras.saving.load_model(path, compile=False)
            return keras_features(model, batch)
    with native_output_silenced():  # LiteRT announces its XNNPACK delegate on stderr
        backend = load_backend(path, threads=2)
    return _batched(backend.run, batch)


def cosine_stats(reference: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Per-image cosine between two (N, D) feature sets: mean and min."""
    cos = np.sum(l2_normalize(reference) * l2_normalize(got), axis=1)
    return {"cosine_mean": round(float(cos.mean()), 6), "cosine_min": round(float(cos.min()), 6)}
