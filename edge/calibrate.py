"""Choosing the match threshold on labelled pairs at a target false-accept rate."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import FacelensError, ImageError
from edge.images import read_image
from edge.pipeline import Pipeline
from edge.progress import progress as progress_of


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool


def read_pairs(path: Path | str, images: Path | str | None = None) -> list[Pair]:
    """Read a CSV with columns ``img_a,img_b,same`` (``same`` is 1 or 0).

    With ``images`` (the root the pair paths are relative to) every photo must exist.
    Every error names the file, the line and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FacelensError(f"pairs file {path} does not exist; give a CSV img_a,img_b,same")
    root = None if images is None else Path(images)
    if root is not None and not root.is_dir():
        raise FacelensError(f"image root {root} is not a folder; pass --images DIR")
    pairs = []
    try:
        # utf-8-sig: Excel writes a byte-order mark that would hide the first column's name
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"img_a", "img_b", "same"} - set(reader.fieldnames or [])
            if missing:
                raise FacelensError(
                    f"{path} lacks column(s) {', '.join(sorted(missing))}; "
                    "a pairs file has the header img_a,img_b,same"
                )
            for row in reader:
                line = reader.line_num
                if row["same"] not in ("0", "1") or not row["img_a"] or not row["img_b"]:
                    raise FacelensError(f"{path}:{line}: same={row['same']!r}; use 1 or 0")
                for name in (row["img_a"], row["img_b"]):
                    if root is not None and not _is_file(root / name):
                        raise FacelensError(
                            f"{path}:{line}: {root / name} does not exist; check --images "
                            "(the root the pair paths are relative to)"
                        )
                pairs.append(Pair(row["img_a"], row["img_b"], row["same"] == "1"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FacelensError(f"cannot read the pairs file {path} ({exc})") from exc
    if not any(p.same for p in pairs) or all(p.same for p in pairs):
        raise FacelensError(f"{path} needs both same (1) and different (0) pairs")
    return pairs


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (ValueError, OSError):  # a NUL byte or an over-long name in the CSV
        return False


@dataclass(frozen=True)
class Calibration:
    """A threshold and what it gives on the pairs it was chosen on."""

    cosine: float
    target_far: float
    far: float
    tar: float
    accuracy: float
    genuine_pairs: int
    impostor_pairs: int
    skipped_pairs: int
    how: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def threshold_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float:
    """The lowest threshold accepting at most ``far`` of the impostor scores (score >= t)."""
    ranked = np.sort(np.asarray(impostor, np.float64))[::-1]
    allowed = math.floor(far * len(ranked))
    if allowed >= len(ranked):
        return float(np.min(np.concatenate([genuine, impostor])))
    # Just above the (allowed+1)-th highest impostor: it and everything below are rejected.
    return float(np.nextafter(ranked[allowed], np.inf))


def pair_scores(
    pipeline: Pipeline, pairs: list[Pair], images: Path, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, int]:
    """Cosine of every pair's two dominant faces -> (scores, same, skipped pairs)."""
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    embeddings: dict[str, np.ndarray | None] = {}
    for name in progress_of(names, "embedding photos", "photos", enabled=progress):
        try:
            embeddings[name] = pipeline.photo_embedding(read_image(images / name))
        except ImageError:
            embeddings[name] = None
    scores, same = [], []
    for p in pairs:
        ea, eb = embeddings[p.a], embeddings[p.b]
        if ea is not None and eb is not None:
            scores.append(float(ea @ eb))
            same.append(p.same)
    if not scores:
        raise FacelensError(
            f"no pair of {len(pairs)} could be scored (no face found, or the images are not "
            f"under {images}): check --images"
        )
    return np.asarray(scores), np.asarray(same, bool), len(pairs) - len(scores)


def calibrate(
    pipeline: Pipeline,
    pairs_csv: Path | str,
    images: Path | str,
    far: float = 0.001,
    progress: bool = True,
) -> Calibration:
    """Choose the cosine threshold with false-accept rate <= ``far`` on labelled pairs."""
    if not 0 <= far < 1:
        raise FacelensError(f"--far {far} must be in [0, 1), e.g. 0.001")
    images = Path(images)
    if not images.is_dir():
        raise FacelensError(f"--images {images} is not a folder")
    pairs = read_pairs(pairs_csv, images)  # a missing photo is an error with its line
    scores, same, skipped = pair_scores(pipeline, pairs, images, progress)
    genuine, impostor = scores[same], scores[~same]
    if not len(genuine) or not len(impostor):
        raise FacelensError("after skipping faceless photos, same or different pairs are missing")
    t = threshold_at_far(genuine, impostor, far)
    accepted = scores >= t
    how = f"FAR <= {far:g} on {len(impostor)} impostor pairs of {Path(pairs_csv).name}"
    if far * len(impostor) < 1:
        how += " (too few pairs to measure that FAR: no impostor is accepted)"
    return Calibration(
        cosine=t,
        target_far=far,
        far=float(np.mean(impostor >= t)),
        tar=float(np.mean(genuine >= t)),
        accuracy=float(np.mean(accepted == same)),
        genuine_pairs=len(genuine),
        impostor_pairs=len(impostor),
        skipped_pairs=skipped,
        how=how,
    )
