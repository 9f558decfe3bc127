"""Occlusion sensitivity (Zeiler & Fergus 2014): slide a grey patch, measure the score drop.

Model-agnostic: it needs only a feature function, so the float Keras model and the
INT8 TFLite / ONNX artifacts (through ``edge``) get maps the same way. Occluded copies
are built a batch at a time from patch masks, in the model's normalised input space
when the feature function offers it (a :class:`~explain.base.Features`): the image is
normalised once, not once per patch, and no Python loop runs per patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from edge.errors import FacelensError
from explain.base import FeatureFn, Features, HeatmapMethod
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


def _spans(starts: np.ndarray, patch: int, size: int) -> np.ndarray:
    """(K, size) bool: which of ``size`` positions each patch starting at ``starts`` covers."""
    pos = np.arange(size)
    return (pos >= starts[:, None]) & (pos < starts[:, None] + patch)


@dataclass
class Occlusion(HeatmapMethod):
    """Map = mean drop of the target score over the patches covering each pixel.

    Defaults are the notebook's: 25 px patch, stride 14, grey fill 128. ``batch_size``
    occluded copies are built and scored at a time (memory stays at one batch).
    """

    features: FeatureFn
    patch: int = 25
    stride: int = 14
    fill: float = 128.0
    batch_size: int = 32
    progress: str | None = None  # a progress-bar label, or None for no bar
    name: str = "occlusion"

    def __post_init__(self) -> None:
        for what, value in (("patch", self.patch), ("stride", self.stride)):
            if value < 1:
                raise FacelensError(f"occlusion --{what} must be a positive number of pixels")
        if self.batch_size < 1:
            raise FacelensError("occlusion --batch-size must be a positive number of images")

    def explain(self, pixels: np.ndarray, target: Target) -> np.ndarray:
        return np.stack([self._one(p, target.row(i)) for i, p in enumerate(pixels)])

    def boxes(self, height: int, width: int) -> np.ndarray:
        """(K, 2) top-left (y, x) of every patch, row by row."""
        ys = patch_starts(height, self.patch, self.stride)
        xs = patch_starts(width, self.patch, self.stride)
        return np.array([(y, x) for y in ys for x in xs], np.int64)

    def _one(self, image: np.ndarray, target: Target) -> np.ndarray:
        h, w = image.shape[:2]
        image = image.astype(np.float32)
        grey = np.full((1, h, w, 3), self.fill, np.float32)
        if isinstance(self.features, Features):  # occlude what the model reads, once normalised
            run, batch_size = self.features.run, min(self.batch_size, self.features.batch_size)
            x0, fill = self.features.normalize(image[None])[0], self.features.normalize(grey)[0]
        else:
            run, batch_size, x0, fill = self.features, self.batch_size, image, grey[0]
        base = target.score(run(x0[None]))[0]
        boxes = self.boxes(h, w)
        rows, cols = _spans(boxes[:, 0], self.patch, h), _spans(boxes[:, 1], self.patch, w)
        drops = np.empty(len(boxes), np.float64)
        starts = range(0, len(boxes), batch_size)
        bar = tqdm(
            starts, desc=self.progress, leave=False, disable=True if self.progress is None else None
        )
        for i in bar:
            r, c = rows[i : i + batch_size], cols[i : i + batch_size]
            inside = r[:, :, None, None] & c[:, None, :, None]  # (B, H, W, 1)
            drops[i : i + len(r)] = base - target.score(run(np.where(inside, fill, x0)))
        # sum of the drops of the patches covering each pixel, over how many cover it
        total = (rows * drops[:, None]).T @ cols
        count = rows.T.astype(np.float64) @ cols
        return (total / count).astype(np.float32)
