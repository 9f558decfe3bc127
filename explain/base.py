"""What every heatmap method shares: the feature-function contract, batching, map helpers.

A *feature function* maps a batch of BGR pixel images at the model's input size
(N, H, W, 3, float32 in 0..255) to features (N, D). The float Keras model and every
``edge`` artifact are wrapped into one, so a method written against it runs on all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from edge.embedder import Embedder
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


def embedder_features(embedder: Embedder) -> FeatureFn:
    """Feature function through an ``edge`` artifact (INT8 TFLite, ONNX, ...)."""

    def features(pixels: np.ndarray) -> np.ndarray:
        return embedder.embed_batch(np.stack([embedder.spec.normalize(p) for p in pixels]))

    return features
