"""What both compatible APIs ask of the engine: recognise on the clients' scale, enrol
(adding photos), compare two photos, with refusals their routes shape."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.base.errors import GalleryError, ImageError, NoFaceError
from edge.base.names import PersonNameError, check_name
from edge.results import Recognition
from edge.service.http.compat.scores import client_score, named_score
from edge.service.http.errors import ApiError
from edge.service.state import Service

NO_FACE_FIX = "send a photo with one clear, frontal face"


class NoFace(ApiError):
    """No face in a photo that needs one (CompreFace answers it with its code 28)."""

    def __init__(self, field: str, error: str) -> None:
        super().__init__(400, field, error, NO_FACE_FIX)


@dataclass(frozen=True)
class Seen:
    """One face as the clients see it: corners, detection score, name, confidence."""

    x_min: int
    y_min: int
    x_max: int
    y_max: int
    detection: float
    name: str | None  # None: facelens did not name it (unknown, or too small to tell)
    confidence: float  # on the clients' scale (:mod:`edge.service.http.compat.scores`)

    @property
    def corners(self) -> tuple[int, int, int, int]:
        return self.x_min, self.y_min, self.x_max, self.y_max

    @property
    def area(self) -> int:
        return (self.x_max - self.x_min) * (self.y_max - self.y_min)


def corners(box: tuple[float, ...]) -> tuple[int, int, int, int]:
    """facelens' (x, y, width, height) as the clients' integer (x_min, y_min, x_max, y_max)."""
    x, y, w, h = (float(v) for v in box)
    return round(x), round(y), round(x + w), round(y + h)


def corner_fields(corners: tuple[int, int, int, int]) -> dict[str, int]:
    """The corners as both APIs name them."""
    return dict(zip(("x_min", "y_min", "x_max", "y_max"), corners, strict=True))


def named(result: Recognition, threshold: float) -> list[Seen]:
    """The faces of a recognition as the clients see them, largest first; ``threshold`` is
    the confidence facelens names a face at."""
    seen = [
        Seen(
            *corners(f.box),
            round(float(f.detection_score), 4),
            f.name,
            named_score(f.score, threshold)
            if f.name is not None
            else client_score(f.score, threshold),
        )
        for f in result.faces
    ]
    return sorted(seen, key=lambda f: -f.area)


async def recognize(s: Service, image: np.ndarray) -> list[Seen]:
    """Every face of ``image``, named by facelens' rule, largest first."""
    return counted(s, "http", await s.engine.run(s.fl.recognize, image))


def counted(s: Service, source: str, result: Recognition) -> list[Seen]:
    """A recognition counted in the service's metrics (its stages and their one total), as
    the clients see it: at the confidence facelens names a face at."""
    s.count(source, len(result.faces), result.ms)
    return named(result, s.fl.threshold.confidence)


def person_name(name: str | None, field: str) -> str:
    """A client's person name as the gallery keeps it (the one rule of ``edge enroll``)."""
    try:
        return check_name(name or "")
    except PersonNameError as exc:
        raise ApiError(400, field, str(exc), "give a name as `edge enroll` takes it") from None


async def enroll(s: Service, name: str, images: list[np.ndarray], field: str) -> int:
    """*Add* the photos to ``name`` (creating them if new); returns their embeddings now."""

    def write() -> int:
        s.fl.enroll(name, images)
        return sum(p.embeddings for p in s.fl.people() if p.name == name)

    try:
        total = await s.engine.run(write)
    except NoFaceError as exc:
        raise NoFace(field, str(exc)) from None
    except ImageError as exc:
        raise ApiError(400, field, str(exc), NO_FACE_FIX + "; nothing was enrolled") from None
    except GalleryError as exc:
        raise ApiError(409, "userid", str(exc), "see the message") from None
    return total


async def similarity(s: Service, a: np.ndarray, b: np.ndarray, fields: tuple[str, str]) -> float:
    """Are the dominant faces of ``a`` and ``b`` one person, on the clients' scale."""
    try:
        v = await s.engine.run(s.fl.verify, a, b)
    except NoFaceError:
        field = fields[0] if not await s.engine.run(s.fl.faces, a) else fields[1]
        raise NoFace(field, f"no face found in {field!r}") from None
    except ImageError as exc:
        raise ApiError(400, ", ".join(fields), str(exc), NO_FACE_FIX) from None
    return client_score(v.score, v.threshold)
