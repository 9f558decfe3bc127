"""Enrolment: one face per photo into the gallery, all of a person's photos in one write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.detect import Face
from edge.errors import ImageError
from edge.gallery import Gallery
from edge.images import read_image
from edge.pipeline import Pipeline, choose_face


@dataclass(frozen=True)
class EnrolledPhoto:
    """Which face of which photo was enrolled, and how many faces the photo had."""

    path: str
    face: Face
    faces_found: int


def enroll(
    pipeline: Pipeline,
    gallery: Gallery,
    name: str,
    images: Sequence[Path | str],
    face_index: int | None = None,
) -> list[EnrolledPhoto]:
    """Enrol ``name`` from photos: the dominant face of each (or face ``face_index``).

    Every photo is checked before anything is written: one bad photo enrols none.
    """
    if not images:
        raise ImageError(f"no photo given for {name!r}: pass at least one image file")
    embeddings, report = [], []
    for path in images:
        image = read_image(path)
        faces = pipeline.faces(image)
        face = choose_face(faces, image.shape, str(path), face_index)
        kept, crops = pipeline.cut(image, [face])
        if not kept:
            raise ImageError(f"the chosen face of {path} lies outside the image; pick another")
        embeddings.append(pipeline.embedder.embed(crops)[0])
        report.append(EnrolledPhoto(str(path), face, len(faces)))
    bundle = pipeline.bundle
    gallery.add(name, np.stack(embeddings), bundle.fingerprint, bundle.name)
    return report
