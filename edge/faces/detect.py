"""Face detection: OpenCV's YuNet (boxes + 5 landmarks), with a Haar-cascade fallback.

The YuNet file is looked for at an explicit path, then ``$FACELENS_YUNET``, then the
user cache; when absent it is downloaded once and pinned by sha256. When it cannot
be had, :func:`create_detector` falls back to the Haar cascade that ships inside
opencv-python and says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.base.assets import default_cache_dir, download_verified, sha256_file
from edge.base.errors import DetectorError, ImageError

log = logging.getLogger(__name__)

YUNET_FILE = "face_detection_yunet_2023mar.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
YUNET_URL = (
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/" + YUNET_FILE
)


@dataclass(frozen=True)
class Face:
    """One detected face, in the coordinates of the image it was found in.

    ``landmarks`` is a (5, 2) array (right eye, left eye, nose tip, right and left
    mouth corners) or ``None`` when the detector gives none (Haar).
    """

    box: tuple[float, float, float, float]  # x, y, width, height
    score: float
    landmarks: np.ndarray | None = field(default=None, repr=False)  # reprs stay short


class FaceDetector(Protocol):
    """Anything that finds faces in a BGR image."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...


def _quiet_opencv() -> None:
    # OpenCV 5's graph engine warns about DNN targets on every create(); it is noise here.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class YuNetDetector:
    """YuNet through ``cv2.FaceDetectorYN``; large frames are detected on a downscaled copy."""

    name = "yunet"

    def __init__(
        self,
        model_path: Path | str,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        max_side: int = 640,
    ) -> None:
        _quiet_opencv()
        self.model_path = Path(model_path)
        self.max_side = max_side
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (320, 320), score_threshold, nms_threshold, 5000
            )
            # Another ONNX model loads fine and fails only on its first frame: try one now.
            self._net.setInputSize((64, 64))
            self._net.detect(np.zeros((64, 64, 3), np.uint8))
        except cv2.error as exc:
            reason = " ".join(exc.msg.split())[:160]
            raise DetectorError(
                f"{self.model_path} is not a YuNet face detector OpenCV can run ({reason}): "
                f"pass the YuNet file ({YUNET_FILE}, OpenCV model zoo) as --detector, or leave "
                "--detector out to use facelens' verified copy"
            ) from exc

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        factor = min(1.0, self.max_side / max(h, w))
        small = (
            image
            if factor == 1.0
            else cv2.resize(
                # at least 1 px a side: a 1300x1 strip must not shrink to nothing
                image,
                (max(1, round(w * factor)), max(1, round(h * factor))),
                interpolation=cv2.INTER_AREA,
            )
        )
        try:
            self._net.setInputSize((small.shape[1], small.shape[0]))
            _, rows = self._net.detect(small)
        except cv2.error as exc:  # never seen on a real photo; one clear line, not a traceback
            reason = " ".join(exc.msg.split())[:160]
            raise ImageError(f"face detection failed on a {w}x{h} image ({reason})") from exc
        if rows is None:
            return []
        return [
            Face(
                box=tuple(float(v) / factor for v in row[:4]),
                score=float(row[14]),
                landmarks=row[4:14].reshape(5, 2).astype(np.float32) / factor,
            )
            for row in rows
        ]


class HaarDetector:
    """OpenCV's frontal-face Haar cascade: no landmarks, a crude confidence."""

    name = "haar"

    def __init__(self) -> None:
        # OpenCV 5 removed CascadeClassifier and no longer ships the cascade files.
        if not hasattr(cv2, "CascadeClassifier"):
            raise DetectorError(
                f"OpenCV {cv2.__version__} has no Haar cascades (removed in OpenCV 5), so there "
                "is no fallback detector: get the YuNet file (online once, or pass "
                "--detector PATH), or run with --no-detect"
            )
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"cannot load the Haar cascade {path}; reinstall opencv-python")

    def detect(self, image: np.ndarray) -> list[Face]:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        min_side = max(24, min(gray.shape) // 20)
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=1.1,
            minNeighbors=5,
            minSize=(min_side, min_side),
            outputRejectLevels=True,
        )
        # levelWeights are unbounded; squash them to (0, 1) so they rank like YuNet scores.
        return [
            Face(box=tuple(float(v) for v in box), score=float(1 - np.exp(-max(float(wt), 0.0))))
            for box, wt in zip(boxes, np.ravel(weights), strict=True)
        ]


def find_yunet(
    path: Path | str | None = None,
    download: bool = True,
    url: str = YUNET_URL,
    search: Sequence[Path | str] = (),
) -> Path:
    """Return a verified YuNet file.

    In order: ``path``, ``$FACELENS_YUNET``, the user cache, a copy in one of the
    ``search`` folders (the caller's choice, e.g. the demo's shared models folder),
    else a download into the cache. Files found by search must have the pinned sha256.
    """
    explicit = path or os.environ.get("FACELENS_YUNET")
    if explicit:
        explicit = Path(explicit)
        if not explicit.is_file():
            raise DetectorError(f"YuNet file {explicit} does not exist; check the path")
        return explicit  # a user's own file is trusted as given (it may be another YuNet)
    cached = default_cache_dir() / YUNET_FILE
    if cached.is_file():
        if sha256_file(cached) == YUNET_SHA256:
            return cached
        log.warning("cached %s has the wrong sha256; downloading it again", cached)
    for folder in search:
        local = Path(folder) / YUNET_FILE
        if local.is_file() and sha256_file(local) == YUNET_SHA256:
            return local
    if not download:
        raise DetectorError(f"no YuNet file at {cached} and downloads are off")
    return download_verified(url, cached, YUNET_SHA256, error=DetectorError)


def create_detector(path: Path | str | None = None, download: bool = True) -> FaceDetector:
    """YuNet when it can be had, else the Haar cascade (OpenCV 4 only), saying why."""
    try:
        return YuNetDetector(find_yunet(path, download=download))
    except DetectorError as exc:
        if path:  # the user asked for this file: do not silently use something else
            raise
        try:
            haar = HaarDetector()
        except DetectorError as no_haar:
            raise DetectorError(f"{exc}. {no_haar}") from exc
        log.warning("%s; falling back to the Haar cascade (no landmarks, lower accuracy)", exc)
        return haar
