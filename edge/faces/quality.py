"""Is this face good enough to decide on, and which views of a person are worth keeping?

:func:`assess` measures a detected face: its size (the shorter side of the detector box,
in pixels), its sharpness (variance of the Laplacian of the face resized to a fixed
96 px, divided by the face's own contrast, so lighting and size do not move it) and
how frontal it is (yaw and roll from YuNet's 5 landmarks). A face that is too small or
too blurred gets a :attr:`FaceQuality.problem`: enrolment refuses it, recognition
reports it as "can't tell" instead of guessing.

:func:`select_views` keeps the best *distinct* views of one person (enrolment from many
photos or from a video): greedily the best-quality face, then the best of those that
differ enough from every view already kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.faces.detect import Face

MIN_FACE_PX = 40  # to enrol: a reference view should be better than what it is matched with
# to decide at all: edge demo's 33-39 px faces are still named right (cosine 0.85-0.89)
# and its 27-31 px strangers still rejected; 24 px leaves a margin under both
MIN_DECIDE_PX = 24
# see sharpness(): LFW photos' 1st percentile is 0.030, blurred by sigma 2 px their 95th 0.025
MIN_SHARPNESS = 0.025
MAX_YAW = 0.35  # nose offset from the eyes' midpoint, in eye distances: ~35 degrees
SHARPNESS_SIDE = 96
FULL = "better views already kept"  # why a good view was left out of a full selection


@dataclass(frozen=True)
class FaceQuality:
    """What :func:`assess` measured about one face, and the problem that rules it out."""

    size: float  # shorter side of the detector box, px
    sharpness: float  # Laplacian variance / contrast variance at 96 px
    yaw: float | None  # nose offset from the eye midpoint in eye distances (0 = frontal)
    roll: float | None  # eye-line angle, degrees
    problem: str | None  # why no decision should rest on this face, or None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def score(self) -> float:
        """Higher is better: large, sharp and frontal (for ranking views of one person)."""
        frontal = 1.0 if self.yaw is None else max(0.0, 1.0 - abs(self.yaw) / MAX_YAW)
        size = min(self.size, 160.0) / 160.0
        sharp = min(self.sharpness / (4 * MIN_SHARPNESS), 1.0)
        return float(size * sharp * (0.25 + 0.75 * frontal))

    def describe(self) -> str:
        pose = "" if self.yaw is None else f", yaw {self.yaw:+.2f}, roll {self.roll:+.0f} deg"
        return f"{self.size:.0f} px, sharpness {self.sharpness:.2f}{pose}"


def sharpness(image: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Focus measure of the face in ``box``: Laplacian variance over intensity variance.

    The face is shrunk to 96 px first so a large soft face and a large sharp one are
    compared at the same scale; dividing by the face's own variance makes the measure
    blind to exposure and contrast (a dim face is not a blurred one).
    """
    x, y, w, h = box
    ih, iw = image.shape[:2]
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(iw, int(x + w)), min(ih, int(y + h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    patch = image[y0:y1, x0:x1]
    gray = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY) if patch.ndim == 3 else patch
    side = min(SHARPNESS_SIDE, x1 - x0, y1 - y0)  # never upsample: that would read as blur
    gray = cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA)
    gray = gray.astype(np.float32)
    contrast = float(gray.var())
    if contrast < 1e-6:
        return 0.0
    return float(cv2.Laplacian(gray, cv2.CV_32F).var() / contrast)


def pose(landmarks: np.ndarray | None) -> tuple[float | None, float | None]:
    """(yaw, roll) from YuNet's landmarks (right eye, left eye, nose, mouth corners)."""
    if landmarks is None:
        return None, None
    pts = np.asarray(landmarks, np.float32).reshape(5, 2)
    right_eye, left_eye, nose = pts[0], pts[1], pts[2]
    eye_vec = left_eye - right_eye
    eye_dist = float(np.hypot(*eye_vec))
    if eye_dist < 1e-3:
        return None, None
    roll = float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0])))
    # the nose's offset along the eye line, from the eyes' midpoint, in eye distances
    along = float(np.dot(nose - (right_eye + left_eye) / 2, eye_vec / eye_dist)) / eye_dist
    return along, roll


def assess(
    image: np.ndarray,
    face: Face,
    min_size: float = MIN_FACE_PX,
    min_sharpness: float = MIN_SHARPNESS,
) -> FaceQuality:
    """Measure ``face`` in ``image`` and say what, if anything, rules it out."""
    size = float(min(face.box[2], face.box[3]))
    sharp = sharpness(image, face.box)
    yaw, roll = pose(face.landmarks)
    problem = None
    if size < min_size:
        problem = f"face too small ({size:.0f} px, needs {min_size:.0f})"
    elif sharp < min_sharpness:
        problem = f"face too blurred (sharpness {sharp:.4g}, needs at least {min_sharpness:.4g})"
    return FaceQuality(size, sharp, yaw, roll, problem)


@dataclass(frozen=True)
class View:
    """One candidate view of a person: where it came from, its quality, its embedding."""

    source: str  # a photo's path, or "video.mp4 frame 41"
    quality: FaceQuality
    embedding: np.ndarray


@dataclass(frozen=True)
class Selection:
    """The views :func:`select_views` kept and why each other candidate was left out."""

    kept: list[View]
    left_out: list[tuple[View, str]]


def select_views(views: Sequence[View], k: int, min_distance: float = 0.08) -> Selection:
    """Keep at most ``k`` good, distinct views: best quality first, then the best that differ.

    A view differs enough when its cosine distance to every kept view is at least
    ``min_distance`` (near-duplicate frames of a video add nothing). Views with a
    quality problem are never kept.
    """
    if k < 1:
        raise ValueError(f"k={k}: keep at least one view")
    left_out: list[tuple[View, str]] = [(v, v.quality.problem) for v in views if not v.quality.ok]
    good = sorted((v for v in views if v.quality.ok), key=lambda v: -v.quality.score)
    kept: list[View] = []
    for view in good:
        if len(kept) == k:
            left_out.append((view, f"{k} {FULL}"))
            continue
        if kept:
            closest = max(float(view.embedding @ v.embedding) for v in kept)
            if 1.0 - closest < min_distance:
                left_out.append((view, f"too like a kept view (cosine {closest:.3f})"))
                continue
        kept.append(view)
    return Selection(kept, left_out)
