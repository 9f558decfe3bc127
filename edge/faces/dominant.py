"""Which face a photo is about: the dominant one (large, central, confident).

Photos often hold several faces (YuNet finds more than one in 1,357 of the 7,701
LFW View-2 images); taking the highest-scoring one put 153 of them on a background
face. Wherever one face per photo is meant (enrolment, verification, calibration,
conversion) :func:`choose_face` decides; where the task is to find people in a
frame, every face is reported.
"""

from __future__ import annotations

import numpy as np

from edge.base.errors import AmbiguousFacesError, ImageError, NoFaceError
from edge.faces.detect import Face

DOMINANCE_MARGIN = 1.5  # the subject's dominance is at least this times the runner-up's


def dominance(face: Face, image_shape: tuple[int, ...]) -> float:
    """How much a face looks like *the* subject of a photo: large, central and confident."""
    ih, iw = image_shape[:2]
    x, y, w, h = face.box
    area = (w * h) / float(iw * ih)
    dx = (x + w / 2 - iw / 2) / iw
    dy = (y + h / 2 - ih / 2) / ih
    centrality = float(np.exp(-(dx * dx + dy * dy) / (2 * 0.25**2)))
    return float(np.sqrt(area) * centrality * face.score)


def rank_faces(faces: list[Face], image_shape: tuple[int, ...]) -> list[Face]:
    """Faces from most to least dominant (see :func:`dominance`): what ``--face N`` counts."""
    return sorted(faces, key=lambda f: dominance(f, image_shape), reverse=True)


def dominant_face(
    faces: list[Face], image_shape: tuple[int, ...], margin: float = DOMINANCE_MARGIN
) -> int | None:
    """Index of the face that clearly dominates the photo, or ``None`` when none does.

    A face dominates when its :func:`dominance` is at least ``margin`` times the
    runner-up's; several alike faces (a group photo) give ``None``.
    """
    ranked = rank_faces(faces, image_shape)
    if not ranked:
        return None
    if len(ranked) > 1:
        best, second = (dominance(f, image_shape) for f in ranked[:2])
        if best < margin * second:
            return None
    return next(i for i, f in enumerate(faces) if f is ranked[0])


def describe_faces(faces: list[Face]) -> str:
    """``#0 box=(x, y, w, h) score=0.93, #1 ...`` for error messages."""
    return ", ".join(
        f"#{i} box=({', '.join(str(round(v)) for v in f.box)}) score={f.score:.2f}"
        for i, f in enumerate(faces)
    )


def choose_face(
    faces: list[Face],
    shape: tuple[int, ...],
    name: str,
    index: int | None = None,
    strict: bool = True,
) -> Face:
    """The face a photo is about: the dominant one, or ``index`` (in :func:`rank_faces` order).

    Raises :class:`NoFaceError` when there is none, and :class:`AmbiguousFacesError`
    (listing the faces) when several are alike and ``strict``; with ``strict=False``
    (labelled photos known to show one person) the most dominant of them is taken.
    """
    ranked = rank_faces(faces, shape)
    if index is not None:
        if not 0 <= index < len(ranked):
            raise ImageError(
                f"{name} has {len(ranked)} face(s), so there is no face #{index}"
                + (f": {describe_faces(ranked)}" if ranked else "")
            )
        return ranked[index]
    if not ranked:
        raise NoFaceError(
            f"no face found in {name}: use a photo where the face is clear and frontal "
            "(or --no-detect to use the whole image)"
        )
    if strict and dominant_face(ranked, shape) is None:
        raise AmbiguousFacesError(
            f"{name} has {len(ranked)} faces and none clearly dominates "
            f"({describe_faces(ranked)}): pass --face N to choose one"
        )
    return ranked[0]
