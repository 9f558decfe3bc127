"""``--keep-recent DAYS``: each appearance's best face, kept in the gallery for review.

While a track is in view, :class:`Keeper` holds its best face so far (large and sharp:
:attr:`edge.faces.quality.FaceQuality.score`; faces too small or blurred to decide on
never count) in memory only; when the appearance ends, that face's embedding and a
small thumbnail are kept, encrypted, by :class:`edge.gallery.recent.Recent`, and
whatever was kept more than ``days`` ago is erased. Nothing is kept without a Keeper.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from edge.faces.quality import FaceQuality, sharpness
from edge.gallery.recent import Face, Recent
from edge.results import Identity, Recognition
from edge.video.loop import FrameResult
from edge.video.track import Appearance

THUMBNAIL_PX = 96  # a face a person can recognise on a phone, a few kB
HELD_TRACKS = 256  # tracks whose best face is held (far more than are ever in view)
EXPIRE_EVERY_S = 60.0  # how often old appearances are looked for (each erasure vacuums)


def thumbnail(image: np.ndarray, box: tuple[float, ...]) -> bytes:
    """The face with a margin, at most :data:`THUMBNAIL_PX` a side, as JPEG."""
    h, w = image.shape[:2]
    x, y, bw, bh = box
    m = 0.25 * max(bw, bh)
    x0, y0 = max(0, int(x - m)), max(0, int(y - m))
    x1, y1 = min(w, int(x + bw + m)), min(h, int(y + bh + m))
    crop = image[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else image
    scale = min(1.0, THUMBNAIL_PX / max(crop.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return data.tobytes() if ok else b""


@dataclass(frozen=True)
class _Best:
    score: float
    quality: tuple[float, float]  # size, sharpness
    face: Face


def _quality(image: np.ndarray, face: Identity) -> tuple[float, tuple[float, float]]:
    """A face's quality score, and its size and sharpness."""
    size = float(min(face.box[2], face.box[3]))
    sharp = sharpness(image, face.box)
    return FaceQuality(size, sharp, None, None, None).score, (size, sharp)


def _measure(
    image: np.ndarray, face: Identity, embedding: np.ndarray, held: _Best | None = None
) -> _Best | None:
    """The face as a candidate to keep; ``None`` when it does not beat ``held`` (the
    thumbnail, a JPEG encode, is made only for a face that does)."""
    score, quality = _quality(image, face)
    if held is not None and score <= held.score:
        return None
    return _Best(score, quality, Face(np.asarray(embedding), thumbnail(image, face.box)))


class Keeper:
    """Keeps each appearance's best face for ``days`` (see the module)."""

    def __init__(self, recent: Recent, fingerprint: str, days: float) -> None:
        self.recent, self.fingerprint, self.days = recent, fingerprint, days
        self._best: OrderedDict[tuple[str, int], _Best] = OrderedDict()
        self._expired_at = 0.0

    def frame(self, camera: str, result: FrameResult) -> list[int]:
        """Note this frame's faces; keep the appearances that ended at it (their ids)."""
        if result.embeddings is not None:
            for face, embedding in zip(result.faces, result.embeddings, strict=True):
                if face.track_id is None or face.problem is not None:
                    continue
                key = (camera, face.track_id)
                held = self._best.get(key)
                size = min(face.box[2], face.box[3])
                if held is None or size >= held.quality[0] * 0.9:  # only measure contenders
                    best = _measure(result.frame.image, face, embedding, held)
                    if best is not None:
                        self._best[key] = best
                self._best.move_to_end(key)
            while len(self._best) > HELD_TRACKS:
                self._best.popitem(last=False)
        return self.ended(camera, result.appearances)

    def ended(self, camera: str, appearances: Iterable[Appearance]) -> list[int]:
        """Keep these ended appearances' best faces; their ids (none for a face never clear)."""
        kept = []
        for appearance in appearances:
            best = self._best.pop((camera, appearance.track_id), None)
            if best is not None:
                kept.append(self._keep(camera, appearance.to_dict(), best))
        self.expire()
        return kept

    def photo(self, camera: str, image: np.ndarray, recognition: Recognition) -> list[int]:
        """Keep each clear face of one photo (an identify call) as an appearance of its own."""
        if recognition.embeddings is None:
            return []
        now, kept = time.time(), []
        for face, embedding in zip(recognition.faces, recognition.embeddings, strict=True):
            if face.problem is not None:
                continue
            appearance = {
                "first_seen": now,
                "last_seen": now,
                "frames": 1,
                "name": face.name,
                "status": "known" if face.name is not None else "unknown",
                "best_score": face.score,
            }
            kept.append(self._keep(camera, appearance, _measure(image, face, embedding)))
        self.expire()
        return kept

    def _keep(self, camera: str, appearance: dict, best: _Best) -> int:
        return self.recent.keep(camera, appearance, best.face, self.fingerprint, best.quality)

    def expire(self, force: bool = False) -> int:
        """Erase what was kept more than ``days`` ago (looked for once a minute at most)."""
        now = time.monotonic()
        if not force and now - self._expired_at < EXPIRE_EVERY_S:
            return 0
        self._expired_at = now
        return self.recent.expire(self.days)
