"""What every heatmap method shares: the feature-function contract, batching, map helpers.

A *feature function* maps a batch of BGR pixel images at the model's input size
(N, H, W, 3, float32 in 0..255) to features (N, D). The float Keras model and every
``edge`` artifact are wrapped into a :class:`Features`, which is one and also exposes
the model's normalised-input path, so a method that perturbs many copies of one image
(occlusion) normalises the image once instead of every copy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from edge.model.embedder import Embedder
from edge.model.preprocess import InputSpec
from explain.targets import Target

FeatureFn = Callable[[np.ndarray], np.ndarray]


class HeatmapMethod(ABC):
    """An explanation method: images and a target in, one heatmap per image out."""

    name: str

    @abstractmethod
    def explain(self, pixels: np.ndarray, target: Target) -> np.ndarray:
        """(N, H, W, 3) BGR pixels -> (N, H, W) heatmaps (higher = more important)."""


def run_batched(
    fn: FeatureFn, x: np.ndarray, batch_size: int, desc: str | None = None
) -> np.ndarray:
    """Apply ``fn`` to ``x`` in batches; a progress bar on stderr when ``desc`` is given."""
    starts = range(0, len(x), batch_size)
    # disable=None: tqdm shows the bar only when stderr is a terminal.
    bar = tqdm(starts, desc=desc, leave=False, disable=True if desc is None else None)
    return np.concatenate([fn(x[i : i + batch_size]) for i in bar])


@dataclass(frozen=True)
class Features:
    """A model as the methods see it: a feature function over BGR pixels.

    ``run`` takes batches already normalised by ``spec`` (what the model itself reads);
    calling the object normalises pixels first. ``batch_size`` is how many images one
    ``run`` call takes at most.
    """

    run: Callable[[np.ndarray], np.ndarray]
    spec: InputSpec
    batch_size: int = 32

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) BGR pixels -> the model's normalised (N, H, W, C) float32 batch."""
        return np.stack([self.spec.normalize(p) for p in pixels])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return run_batched(self.run, self.normalize(pixels), self.batch_size)

    def around(self, x0: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """``run`` for batches that differ from the normalised image ``x0`` only in places
        (occluded copies of it). Here the plain ``run``; a variant may reuse x0's work."""
        return self.run


def embedder_features(
    embedder: Embedder, batch_size: int | None = None, incremental: bool = True
) -> Features:
    """Feature function through an ``edge`` artifact (INT8 TFLite, ONNX, ...).

    ``batch_size``: images per runtime call (default: the embedder's own).
    ``incremental``: for INT8 TFLite, run occluded copies only where the patch reaches
    (:mod:`explain.incremental`; the same features, fewer operations).
    """
    if batch_size is not None:
        embedder.batch_size = batch_size
    if incremental and embedder.format == "tflite-int8":
        from explain.incremental import incremental_features  # it imports this module

        return incremental_features(embedder)
    return Features(embedder.embed_batch, embedder.spec, embedder.batch_size)
