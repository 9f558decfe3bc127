"""Photos in, face crops at the model's input size out, with the landmarks moved along.

The crop goes through ``edge``'s own ``cut_face`` and ``InputSpec.normalize`` resize,
so explanations see exactly what the runtime sees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from edge.faces.detect import Face, FaceDetector, create_detector
from edge.faces.dominant import choose_face, dominant_face
from edge.media.images import read_image
from edge.model.preprocess import CropRule, InputSpec, cut_face

log = logging.getLogger(__name__)


@dataclass
class FaceCrop:
    """One face: ``pixels`` (H, W, 3) float32 BGR at the model's size, landmarks in it."""

    source: str
    pixels: np.ndarray
    landmarks: np.ndarray | None  # (5, 2) in crop pixels, or None (no detection)
    face: Face | None
    image: np.ndarray  # the whole BGR photo


def landmarks_in_crop(
    image_shape: tuple[int, ...], spec: InputSpec, face: Face, landmarks: np.ndarray
) -> np.ndarray:
    """Where ``landmarks`` (photo pixels) land in the model-size crop.

    The crop rule is applied to a map of source coordinates, so whatever ``cut_face``
    does (margin, clipping, alignment) the points follow it exactly.
    """
    h, w = image_shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = cut_face(np.dstack([xs, ys]), spec, face)
    coords = cv2.resize(coords, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
    flat = coords.reshape(-1, 2)
    # The nearest crop pixel: within half a crop pixel of the true position.
    nearest = [
        int(np.argmin(np.sum((flat - p) ** 2, axis=1)))
        for p in np.asarray(landmarks, np.float32).reshape(-1, 2)
    ]
    return np.array([(i % spec.width, i // spec.width) for i in nearest], np.float32)


class FaceLoader:
    """Detect the dominant face of a photo and cut it as the model's crop rule says.

    ``detect=False`` is the notebook's mode: the whole photo, resized, no landmarks.
    """

    def __init__(
        self, spec: InputSpec, detect: bool = True, detector: FaceDetector | None = None
    ) -> None:
        self.spec = spec if detect else replace(spec, crop=CropRule(kind="whole_image"))
        self.detect = detect
        self.detector = (detector or create_detector()) if detect else None

    def find(self, image: np.ndarray, source: str) -> Face | None:
        """The photo's dominant face (None in whole-image mode); ImageError when there is none."""
        if self.detector is None:
            return None
        faces = self.detector.detect(image)
        if len(faces) > 1 and dominant_face(faces, image.shape) is None:
            log.warning("%s: %d similar faces, explaining the most central one", source, len(faces))
        return choose_face(faces, image.shape, source, strict=False)

    def crop(self, image: np.ndarray, face: Face | None, source: str) -> FaceCrop:
        """Cut ``face`` (found in this or another copy of the photo) out of ``image``."""
        # The same resize as InputSpec.normalize, kept in pixels so patches can be grey.
        pixels = cv2.resize(
            cut_face(image, self.spec, face),
            (self.spec.width, self.spec.height),
            interpolation=cv2.INTER_LINEAR,
        ).astype(np.float32)
        marks = None
        if face is not None and face.landmarks is not None:
            marks = landmarks_in_crop(image.shape, self.spec, face, face.landmarks)
        return FaceCrop(source, pixels, marks, face, image)

    def load(self, path: Path | str) -> FaceCrop:
        """Read a photo and cut its dominant face."""
        image = read_image(path)
        return self.crop(image, self.find(image, str(path)), str(path))
