"""Occlusion sensitivity (Zeiler & Fergus 2014): slide a grey patch, measure the score drop.

Model-agnostic: it needs only a feature function, so the float Keras model and the
INT8 TFLite / ONNX artifacts (through ``edge``) get maps the same way. Occluded copies
are built a batch at a time from patch masks, in the model's normalised input space
when the feature function offers it (a :class:`~explain.base.Features`): the image is
normalised once, not once per patch, and no Python loop runs per patch. The copies
are run through :meth:`~explain.base.Features.around` the image: through INT8 TFLite
that recomputes each copy only where its patch reaches (:mod:`explain.incremental`),
with the same features, to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from edge.base.errors import FacelensError
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


def _grid_index(starts: list[int], stride: int) -> np.ndarray:
    """Which of ``starts`` also lie on the grid of twice the stride (the last one always)."""
    keep = np.array([(s // stride) % 2 == 0 for s in starts])
    keep[-1] = True
    return keep


@dataclass
class Occlusion(HeatmapMethod):
    """Map = mean drop of the target score over the patches covering each pixel.

    Defaults are the notebook's: 25 px patch, stride 14, grey fill 128. ``batch_size``
    occluded copies are built and scored at a time (memory stays at one batch).

    ``refine`` (0 < refine < 1) makes the map coarse-to-fine: first the patches on a
    grid of twice the stride (a quarter of them), then, of the others, only the
    ``refine`` fraction lying where that coarse map is highest. Every pixel's value is
    the mean drop of the patches run over it, so where every patch ran the map is the
    full map exactly.
    """

    features: FeatureFn
    patch: int = 25
    stride: int = 14
    fill: float = 128.0
    batch_size: int = 32
    progress: str | None = None  # a progress-bar label, or None for no bar
    refine: float | None = None
    name: str = "occlusion"

    def __post_init__(self) -> None:
        for what, value in (("patch", self.patch), ("stride", self.stride)):
            if value < 1:
                raise FacelensError(f"occlusion --{what} must be a positive number of pixels")
        if self.batch_size < 1:
            raise FacelensError("occlusion --batch-size must be a positive number of images")
        if self.refine is not None and not 0 < self.refine < 1:
            raise FacelensError(
                f"occlusion --refine {self.refine}: give the fraction of fine patches to "
                "run, between 0 and 1 (e.g. 0.25)"
            )

    def explain(self, pixels: np.ndarray, target: Target) -> np.ndarray:
        return np.stack([self._one(p, target.row(i)) for i, p in enumerate(pixels)])

    def _one(self, image: np.ndarray, target: Target) -> np.ndarray:
        h, w = image.shape[:2]
        image = image.astype(np.float32)
        grey = np.full((1, h, w, 3), self.fill, np.float32)
        if isinstance(self.features, Features):  # occlude what the model reads, once normalised
            x0, fill = self.features.normalize(image[None])[0], self.features.normalize(grey)[0]
            run = self.features.around(x0)
            batch_size = min(self.batch_size, self.features.batch_size)
        else:
            run, batch_size, x0, fill = self.features, self.batch_size, image, grey[0]
        base = target.score(run(x0[None]))[0]
        ys = patch_starts(h, self.patch, self.stride)
        xs = patch_starts(w, self.patch, self.stride)
        rows = np.repeat(_spans(np.array(ys), self.patch, h), len(xs), axis=0)  # (K, H)
        cols = np.tile(_spans(np.array(xs), self.patch, w), (len(ys), 1))  # (K, W)
        drops = np.full(len(rows), np.nan)

        def score(chosen: np.ndarray) -> np.ndarray:
            """Run the chosen patches; the map from every patch run so far."""
            index = np.flatnonzero(chosen)
            bar = tqdm(
                range(0, len(index), batch_size),
                desc=self.progress,
                leave=False,
                disable=True if self.progress is None else None,
            )
            for i in bar:
                k = index[i : i + batch_size]
                inside = rows[k][:, :, None, None] & cols[k][:, None, :, None]  # (B, H, W, 1)
                drops[k] = base - target.score(run(np.where(inside, fill, x0)))
            ran = ~np.isnan(drops)
            # the sum of the drops of the patches run over each pixel, over how many ran
            total = (rows[ran] * drops[ran, None]).T @ cols[ran]
            count = rows[ran].T.astype(np.float64) @ cols[ran]
            heatmap = total / np.maximum(count, 1)
            if not count.all():  # gaps between coarse patches: the nearest covered value
                _, (iy, ix) = ndimage.distance_transform_edt(count == 0, return_indices=True)
                heatmap = heatmap[iy, ix]
            return heatmap

        if self.refine is None:
            return score(np.ones(len(rows), bool)).astype(np.float32)
        coarse = np.outer(_grid_index(ys, self.stride), _grid_index(xs, self.stride)).ravel()
        rough = score(coarse)
        # each remaining patch's mean coarse value over its box; run the highest ones
        mean_under = np.sum((rows @ rough) * cols, axis=1) / (self.patch * self.patch)
        rest = np.flatnonzero(~coarse)
        top = rest[np.argsort(-mean_under[rest])[: round(self.refine * len(rest))]]
        finer = np.zeros(len(rows), bool)
        finer[top] = True
        return score(finer).astype(np.float32)
