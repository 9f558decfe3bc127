"""How alike two heatmaps are, and how faithful a heatmap is to its own model."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from explain.base import FeatureFn, run_batched
from explain.targets import Target


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps' pixels; a constant map has no ranking (0; 1 if equal)."""
    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(spearmanr(a, b).statistic)


def _unit_range(m: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(m)), float(np.max(m))
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m, np.float64)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two maps, each first scaled to 0..1."""
    return float(structural_similarity(_unit_range(a), _unit_range(b), data_range=1.0))


def top_mask(m: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """The ``fraction`` of pixels with the highest values (ties broken by position)."""
    flat = np.ravel(m)
    k = max(1, round(fraction * flat.size))
    mask = np.zeros(flat.size, bool)
    mask[np.argsort(-flat, kind="stable")[:k]] = True
    return mask.reshape(np.shape(m))


def top_iou(a: np.ndarray, b: np.ndarray, fraction: float = 0.1) -> float:
    """Intersection over union of the two maps' top-``fraction`` regions."""
    ma, mb = top_mask(a, fraction), top_mask(b, fraction)
    return float(np.sum(ma & mb) / np.sum(ma | mb))


def deletion_insertion(
    image: np.ndarray,
    heatmap: np.ndarray,
    features: FeatureFn,
    target: Target,
    steps: int = 16,
    fill: float = 128.0,
    batch_size: int = 16,
) -> dict[str, float]:
    """Deletion and insertion AUC (Petsiuk et al. 2018) of ``heatmap`` on its own model.

    Deletion greys out pixels from the most to the least important and integrates
    the score (lower = the map found what matters); insertion reveals them in the
    same order on a grey canvas (higher = better). Grey is the occlusion patch's
    fill, so a map is judged by the perturbation it was made with. Both AUCs use the
    trapezoid rule over the 0..1 fraction of pixels.
    """
    h, w = heatmap.shape
    order = np.argsort(-np.ravel(heatmap), kind="stable")
    fractions = np.linspace(0.0, 1.0, steps + 1)
    grey = np.full_like(image, fill, dtype=np.float32)
    deleted, inserted = [], []
    for f in fractions:
        chosen = np.zeros(h * w, bool)
        chosen[order[: round(f * h * w)]] = True
        chosen = chosen.reshape(h, w, 1)
        deleted.append(np.where(chosen, grey, image))
        inserted.append(np.where(chosen, image, grey))
    scores = target.score(
        run_batched(features, np.stack(deleted + inserted).astype(np.float32), batch_size)
    )
    n = len(fractions)
    return {
        "deletion_auc": float(np.trapezoid(scores[:n], fractions)),
        "insertion_auc": float(np.trapezoid(scores[n:], fractions)),
    }


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
