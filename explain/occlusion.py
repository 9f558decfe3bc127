"""Occlusion sensitivity (Zeiler & Fergus 2014): slide a grey patch, measure the score drop.

Model-agnostic: it needs only a feature function, so the float Keras model and the
INT8 TFLite / ONNX artifacts (through ``edge``) get maps the same way. All occluded
copies of an image are scored in batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import FacelensError
from explain.base import FeatureFn, HeatmapMethod, run_batched
from explain.targets import Target


def patch_starts(size: int, patch: int, stride: int) -> list[int]:
    """Patch offsets along one axis; the last patch is moved in so the edge is covered."""
    if patch > size:
        raise FacelensError(
            f"a {patch} px patch does not fit the {size} px input: use a smaller --patch"
        )
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


@dataclass
class Occlusion(HeatmapMethod):
    """Map = mean drop of the target score over the patches covering each pixel.

    Defaults are the notebook's: 25 px patch, stride 14, grey fill 128.
    """

    features: FeatureFn
    patch: int = 25
    stride: int = 14
    fill: float = 128.0
    batch_size: int = 32
    progress: str | None = None  # a progress-bar label, or None for no bar
    name: str = "occlusion"

    def explain(self, pixels: np.ndarray, target: Target) -> np.ndarray:
        return np.stack([self._one(p, target.row(i)) for i, p in enumerate(pixels)])

    def _one(self, image: np.ndarray, target: Target) -> np.ndarray:
        h, w = image.shape[:2]
        boxes = [
            (y, x)
            for y in patch_starts(h, self.patch, self.stride)
            for x in patch_starts(w, self.patch, self.stride)
        ]
        base = target.score(self.features(image[None].astype(np.float32)))[0]
        occluded = np.repeat(image[None].astype(np.float32), len(boxes), axis=0)
        for k, (y, x) in enumerate(boxes):
            occluded[k, y : y + self.patch, x : x + self.patch] = self.fill
        scores = target.score(run_batched(self.features, occluded, self.batch_size, self.progress))
        total = np.zeros((h, w), np.float64)
        count = np.zeros((h, w), np.float64)
        for (y, x), score in zip(boxes, scores, strict=True):
            total[y : y + self.patch, x : x + self.patch] += base - score
            count[y : y + self.patch, x : x + self.patch] += 1
        return (total / count).astype(np.float32)
