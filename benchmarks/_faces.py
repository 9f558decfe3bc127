"""One face per photo, cut as a bundle's manifest says (docs/design.md, 'Which face')."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from _common import progress

from edge.base.errors import CropError, NoFaceError
from edge.faces.detect import FaceDetector, create_detector
from edge.faces.dominant import choose_face, dominant_face
from edge.media.images import read_image
from edge.model.preprocess import InputSpec, cut_face


def photo_crop(
    image: np.ndarray, spec: InputSpec, detector: FaceDetector | None
) -> tuple[np.ndarray, str]:
    """The crop of the photo's most dominant face, and how it was chosen.

    ``dominant``: one face clearly dominates; ``ambiguous``: several alike faces, the
    most dominant is taken anyway (a pair list needs one embedding per photo);
    ``no-face``: nothing usable detected, the whole photo is used (and counted).
    """
    if spec.crop.kind == "whole_image" or detector is None:
        return image, "whole-image"
    faces = detector.detect(image)
    try:
        face = choose_face(faces, image.shape, "the photo", strict=False)
        how = "dominant" if dominant_face(faces, image.shape) is not None else "ambiguous"
        return cut_face(image, spec, face), how
    except (NoFaceError, CropError):  # no face, or a box wholly outside the image
        return image, "no-face"


def crop_photos(
    paths: Sequence[Path], spec: InputSpec, detector: FaceDetector | None = None
) -> tuple[np.ndarray, Counter]:
    """Photos -> (N, H, W, 3) uint8 BGR crops at the model's size, one dominant face each.

    uint8 keeps thousands of photos in memory; :meth:`InputSpec.normalize` is applied
    per batch later. Returns the crops and a count of how each face was chosen.
    """
    if detector is None and spec.crop.kind != "whole_image":
        detector = create_detector()
    crops = np.empty((len(paths), spec.height, spec.width, spec.channels), np.uint8)
    how = Counter()
    for i, path in enumerate(progress(paths, "detect + crop")):
        crop, chosen = photo_crop(read_image(path), spec, detector)
        # the same resize normalize() does, so normalising these later changes nothing
        crops[i] = cv2.resize(crop, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        how[chosen] += 1
    return crops, how


def prepare_photos(
    paths: Sequence[Path], spec: InputSpec, detector: FaceDetector | None = None
) -> tuple[np.ndarray, Counter]:
    """Photos -> the model's normalised (N, H, W, C) float32 batch, one dominant face each."""
    crops, how = crop_photos(paths, spec, detector)
    return np.stack([spec.normalize(c) for c in crops]), how
