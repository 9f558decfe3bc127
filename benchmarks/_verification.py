"""Face verification on pair lists: the standard protocol, in numpy.

A pairs file is a CSV with columns ``img_a,img_b,same`` (paths relative to an image
root, ``same`` 1 or 0), like LFW's ``pairs_devtest.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.calibrate import threshold_at_far
from edge.errors import FacelensError


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
    """Read and check a pairs CSV; every error names the file, the line and the fix."""
    if not path.is_file():
        raise FacelensError(f"pairs file {path} does not exist; give a CSV img_a,img_b,same")
    if not images.is_dir():
        raise FacelensError(f"image root {images} is not a folder; pass --images DIR")
    a, b, same = [], [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"img_a", "img_b", "same"} - set(reader.fieldnames or [])
        if missing:
            raise FacelensError(
                f"{path} lacks column(s) {', '.join(sorted(missing))}; "
                "a pairs file has the header img_a,img_b,same"
            )
        for line, row in enumerate(reader, start=2):
            if row["same"] not in ("0", "1"):
                raise FacelensError(f"{path}:{line}: same={row['same']!r}; use 1 or 0")
            for key, dest in (("img_a", a), ("img_b", b)):
                photo = images / row[key]
                if not photo.is_file():
                    raise FacelensError(
                        f"{path}:{line}: {photo} does not exist; check --images (the root the "
                        "pair paths are relative to)"
                    )
                dest.append(photo)
            same.append(row["same"] == "1")
    labels = np.asarray(same, bool)
    if labels.all() or not labels.any():
        raise FacelensError(f"{path} needs both same (1) and different (0) pairs")
    return Pairs(a, b, labels)


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
