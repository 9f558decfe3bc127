"""What recognition answers: named faces, verifications, thresholds, and the stages it times.

These are the values :class:`edge.FaceLens` returns and the video loop, the service and
the command print; :class:`Lens` is what recognition over frames needs of a FaceLens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from edge.gallery.confidence import DECISION
from edge.gallery.matching import OpenSet

if TYPE_CHECKING:
    from edge.faces.detect import Face
    from edge.model.pipeline import Pipeline

# The stages :meth:`FaceLens.recognize` times, in order ("decode" only for a file).
STAGES = ("decode", "detect", "align", "embed", "match")


def with_total(ms: dict[str, float]) -> dict[str, float]:
    """``ms`` (each stage's time in milliseconds) with its ``total``: the sum of the STAGES."""
    return {**ms, "total": sum(ms[s] for s in STAGES)}


@dataclass(frozen=True)
class Verification:
    """Are two photos of the same person? ``score`` is the match confidence in [0, 1] (see
    :mod:`edge.gallery.confidence`), ``same`` when it reaches ``threshold`` (same unit);
    ``cosine`` is the raw cosine of their dominant faces."""

    same: bool
    score: float
    threshold: float
    cosine: float | None = None


@dataclass(frozen=True)
class Identity:
    """One face found in an image and who it is.

    ``name`` is ``None`` for someone unknown (below the threshold); ``nearest`` is the
    closest enrolled person either way and ``score`` the match confidence in [0, 1] to
    them (see :mod:`edge.gallery.confidence`; ``cosine`` is the raw cosine). ``problem``
    says why a face is too small or blurred to decide on ("can't tell": ``name`` is
    then ``None``, not a guess). In a video, ``track_id`` is the face's track and
    ``label`` the track's decision so far (a name, "unknown", "deciding…" or
    "can't tell"; see :mod:`edge.video.track`).
    """

    box: tuple[float, float, float, float]  # x, y, width, height in image pixels
    detection_score: float
    name: str | None
    score: float
    nearest: str | None
    problem: str | None = None
    track_id: int | None = None
    label: str | None = None
    cosine: float | None = None


@dataclass(frozen=True)
class Recognition:
    """Every face of one image, named, with each stage's time in milliseconds.

    ``embeddings`` holds one unit-length row per face (what tracking follows).
    """

    faces: list[Identity]
    ms: dict[str, float]
    embeddings: np.ndarray | None = field(default=None, repr=False)  # reprs stay short


@dataclass(frozen=True)
class Threshold:
    """The threshold in use and where it came from, for the user.

    ``confidence`` is where a face is named, in the one score unit (see
    :mod:`edge.gallery.confidence`). With an ``open_set`` rule that rule decides (aiming
    at ``open_set.fpir``) and ``value`` is the calibrated cosine; without one ``value``
    is the cosine that decides and ``reference`` the cosine placed at confidence 0.5.
    """

    value: float
    origin: str
    open_set: OpenSet | None = None
    confidence: float = DECISION
    reference: float | None = None


class Lens(Protocol):
    """What the video loop needs of :class:`edge.FaceLens` (it lives in a room below it)."""

    @property
    def pipeline(self) -> Pipeline: ...

    @property
    def threshold(self) -> Threshold: ...

    def recognize(self, image: np.ndarray, faces: list[Face] | None = None) -> Recognition: ...
