"""dlib's own face chips, and the template that lets edge cut them from YuNet's landmarks.

dlib's face ResNet was trained on ``get_face_chip`` crops: 150 px, padding 0.25,
aligned on the 5 points of ``shape_predictor_5_face_landmarks`` (eye corners and
the base of the nose) found in dlib's HOG detector box. edge has YuNet's 5 points
(eye centres, nose tip, mouth corners) instead. :func:`fit_template` maps YuNet's
points of many faces into dlib's chip of the same face and takes their mean: the
similarity-transform template that puts YuNet's points where dlib's chips have
them. It needs dlib (``dlib-bin``, a development dependency); the numbers it found
are written into :mod:`convert.models` so a build does not.

    uv run python -m convert.dlib_chips --pairs ../shared/data/lfw/pairs_devtrain.csv
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge.base.errors import ImageError
from edge.faces.detect import Face, FaceDetector, create_detector
from edge.faces.dominant import rank_faces
from edge.gallery.openset import read_pairs
from edge.media.images import read_image
from edge.model.dlib_file import find_model_file

CHIP_SIZE = 150
CHIP_PADDING = 0.25
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
MIN_IOU = 0.3  # a HOG box overlapping YuNet's face less than this is another face


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


class DlibChipper:
    """dlib's face chip of a face edge has found: HOG box (else YuNet's), 5 points, chip."""

    def __init__(self, landmarks_model: Path | str | None = None) -> None:
        import dlib

        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector()
        self._points = dlib.shape_predictor(str(landmarks_model or find_model_file(LANDMARKS_FILE)))

    def _rect(self, rgb: np.ndarray, face: Face) -> tuple[object, str]:
        boxes = [(r, (r.left(), r.top(), r.width(), r.height())) for r in self._hog(rgb, 1)]
        best = max(boxes, key=lambda b: _iou(b[1], face.box), default=None)
        if best is not None and _iou(best[1], face.box) >= MIN_IOU:
            return best[0], "hog"
        x, y, w, h = (round(v) for v in face.box)
        return self._dlib.rectangle(x, y, x + w, y + h), "yunet box"

    def chip(self, image_bgr: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray, str]:
        """(150x150 BGR chip, 2x3 image-to-chip matrix, which box the 5 points came from)."""
        rgb = np.ascontiguousarray(image_bgr[..., ::-1])
        rect, how = self._rect(rgb, face)
        shape = self._points(rgb, rect)
        chip = self._dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        details = self._dlib.get_face_chip_details(shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return np.ascontiguousarray(chip[..., ::-1]), mapping_to_chip(details), how


def mapping_to_chip(details) -> np.ndarray:
    """The 2x3 affine matrix taking image points into a dlib ``chip_details``' chip.

    dlib cuts the chip from ``rect`` rotated by ``angle`` about its centre: three of
    the rotated rectangle's corners go to three corners of the rows x cols chip.
    """
    r = details.rect
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    c, s = np.cos(details.angle), np.sin(details.angle)
    rotation = np.array([[c, -s], [s, c]])
    corners = np.array([[r.left(), r.top()], [r.right(), r.top()], [r.right(), r.bottom()]])
    source = (corners - centre) @ rotation.T + centre
    w, h = details.cols - 1, details.rows - 1
    target = np.array([[0, 0], [w, 0], [w, h]], np.float32)
    return cv2.getAffineTransform(source.astype(np.float32), target)


@dataclass
class TemplateFit:
    """YuNet's 5 points in dlib's chip space: their mean (the template) and spread."""

    template: np.ndarray  # (5, 2) in CHIP_SIZE x CHIP_SIZE pixels
    points: np.ndarray  # (N, 5, 2): every face's points, for the spread
    boxes: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    def describe(self) -> dict:
        spread = np.linalg.norm(self.points - self.template, axis=2)
        return {
            "template": np.round(self.template, 3).tolist(),
            "template_size": [CHIP_SIZE, CHIP_SIZE],
            "faces": len(self.points),
            "landmark_boxes": dict(self.boxes),
            "skipped": dict(self.skipped),
            "residual_px_mean": np.round(spread.mean(axis=0), 2).tolist(),
            "residual_px_p95": np.round(np.percentile(spread, 95, axis=0), 2).tolist(),
        }


def fit_template(
    paths: Sequence[Path],
    detector: FaceDetector,
    chipper: DlibChipper | None = None,
    progress: bool = True,
) -> TemplateFit:
    """Fit the YuNet template on ``paths`` (one dominant face each)."""
    chipper = chipper or DlibChipper()
    points, boxes, skipped = [], Counter(), Counter()
    for path in tqdm(paths, "fitting", unit="face", disable=None if progress else True):
        try:
            image = read_image(path)
        except ImageError:
            skipped["unreadable"] += 1
            continue
        faces = rank_faces(detector.detect(image), image.shape)
        if not faces or faces[0].landmarks is None:
            skipped["no face"] += 1
            continue
        _, matrix, how = chipper.chip(image, faces[0])
        boxes[how] += 1
        yunet = np.asarray(faces[0].landmarks, np.float64).reshape(5, 2)
        points.append(yunet @ matrix[:, :2].T + matrix[:, 2])
    if not points:
        raise ImageError(f"no face found in any of {len(paths)} photos; cannot fit a template")
    stacked = np.stack(points)
    return TemplateFit(stacked.mean(axis=0), stacked, boxes, skipped)


def pair_photos(pairs: Path, images: Path | None, count: int, seed: int) -> list[Path]:
    """``count`` photos of a pair list, shuffled with ``seed`` (the fit's faces)."""
    root = images or pairs.parent / "images"
    photos = sorted({root / name for pair in read_pairs(pairs, root) for name in (pair.a, pair.b)})
    random.Random(seed).shuffle(photos)
    return photos[:count]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m convert.dlib_chips", description=__doc__)
    p.add_argument("--pairs", type=Path, required=True, help="pair list whose photos to fit on")
    p.add_argument("--images", type=Path, help="their root (default: PAIRS/../images)")
    p.add_argument("--count", type=int, default=600, help="photos to fit on (default 600)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--detector", type=Path, help="YuNet .onnx (default: edge's search)")
    args = p.parse_args(argv)
    photos = pair_photos(args.pairs, args.images, args.count, args.seed)
    fit = fit_template(photos, create_detector(args.detector))
    print(json.dumps(fit.describe(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
