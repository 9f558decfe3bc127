"""Face verification on pair lists: the standard protocol, in numpy.

A pairs file is a CSV with columns ``img_a,img_b,same`` (paths relative to an image
root, ``same`` 1 or 0), like LFW's ``pairs_devtest.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.gallery.openset import read_pairs as read_pair_list
from edge.gallery.openset import threshold_at_far


@dataclass(frozen=True)
class Pairs:
    """A pair list resolved against its image root."""

    a: list[Path]
    b: list[Path]
    same: np.ndarray  # bool

    @property
    def photos(self) -> list[Path]:
        return sorted(set(self.a) | set(self.b))


def read_pairs(path: Path, images: Path) -> Pairs:
    """Read and check a pairs CSV (see :func:`edge.gallery.openset.read_pairs`), paths resolved."""
    pairs = read_pair_list(path, images)
    return Pairs(
        [images / p.a for p in pairs],
        [images / p.b for p in pairs],
        np.asarray([p.same for p in pairs], bool),
    )


def fold_ids(same: np.ndarray, folds: int) -> np.ndarray:
    """Stratified, deterministic folds: each class dealt round-robin in file order.

    LFW's lists are sorted (all same pairs, then all different ones), so contiguous
    folds would hold one class each.
    """
    ids = np.empty(len(same), int)
    for label in (True, False):
        index = np.flatnonzero(same == label)
        ids[index] = np.arange(len(index)) % folds
    return ids


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The cosine threshold (accept if >=) with the best accuracy; the middle one on ties."""
    s = np.unique(scores)
    candidates = np.concatenate([[s[0] - 1e-6], (s[1:] + s[:-1]) / 2, [s[-1] + 1e-6]])
    acc = ((scores[None, :] >= candidates[:, None]) == same[None, :]).mean(axis=1)
    best = np.flatnonzero(acc == acc.max())
    return float(candidates[best[len(best) // 2]])


def accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(((scores >= threshold) == same).mean())


def kfold(
    scores: np.ndarray,
    same: np.ndarray,
    folds: int = 10,
    train: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Accuracy per held-out fold, mean and std, and the thresholds used.

    The threshold comes from the other folds, or from ``train`` (scores, labels of a
    separate training pair list) when given.
    """
    ids = fold_ids(same, folds)
    fixed = best_threshold(*train) if train is not None else None
    accs, thresholds = [], []
    for k in range(folds):
        test = ids == k
        t = fixed if fixed is not None else best_threshold(scores[~test], same[~test])
        thresholds.append(t)
        accs.append(accuracy(scores[test], same[test], t))
    return {
        "mean": float(np.mean(accs)),
        "std": float(np.std(accs)),
        "folds": accs,
        "thresholds": thresholds,
        "threshold_from": "training pairs file"
        if train is not None
        else f"{folds - 1} other folds",
    }


def roc(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-accept rates at every threshold, from strictest to loosest."""
    order = np.argsort(-scores, kind="stable")
    hits = same[order]
    tar = np.concatenate([[0.0], np.cumsum(hits) / hits.sum()])
    far = np.concatenate([[0.0], np.cumsum(~hits) / (~hits).sum()])
    return far, tar


def auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC: the chance a same pair outscores a different one (ties count half)."""
    pos, neg = scores[same], scores[~same]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> dict:
    """True-accept rate at the strictest threshold whose false-accept rate is <= ``far``.

    With n different pairs the false-accept rate moves in steps of 1/n, so FAR 1e-3 on
    500 different pairs means no false accept at all: the result says which it was.
    """
    neg = scores[~same]
    threshold = threshold_at_far(scores[same], neg, far)  # accept at or above this
    return {
        "far_target": far,
        "tar": float((scores[same] >= threshold).mean()),
        "far": float((neg >= threshold).mean()),
        "threshold": threshold,
        "different_pairs": len(neg),
    }
