"""Enrolment views: a person's best distinct faces from photos, folders or a video.

:meth:`edge.FaceLens.enroll` stores what :func:`choose_views` keeps.

Views come from photos (files or folders) or from a video or camera. Each candidate
face is checked (:func:`edge.faces.quality.assess`: size, sharpness, pose) and the best
distinct ones are kept (:func:`edge.faces.quality.select_views`). A photo the user named
whose face is too small or blurred is refused, naming the photo and the reason, and
nothing is written; in a folder or a video, such faces are left out and reported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.base.errors import FacelensError, ImageError
from edge.faces.detect import Face
from edge.faces.dominant import choose_face
from edge.faces.quality import FULL, FaceQuality, View, assess, select_views
from edge.media.images import list_images, read_image
from edge.media.sources import open_source
from edge.model.pipeline import Pipeline

MAX_VIEWS = 5
# Near-duplicate views: closer than this fraction of the way from identical to the
# bundle's match threshold. A fixed cosine distance cannot serve every model: same-person
# photos of dlib's network lie within 0.08 of each other (its threshold is 0.911), so a
# fixed 0.08 kept one view of three for 132 of 150 LFW people.
NEAR_DUPLICATE = 0.17
VIDEO_FRAMES = 200  # frames looked at in a video file, spread over its length


@dataclass(frozen=True)
class EnrolledPhoto:
    """One view that was kept: where it came from, its face and its measured quality."""

    path: str
    face: Face
    faces_found: int
    quality: FaceQuality


@dataclass
class Enrolment:
    """What :func:`enroll` kept, what it left out and why."""

    name: str
    kept: list[EnrolledPhoto] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    # (len(kept), D), what the gallery stores; left out of the repr, which stays short
    embeddings: np.ndarray | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[EnrolledPhoto]:
        return iter(self.kept)

    def __len__(self) -> int:
        return len(self.kept)

    def __getitem__(self, i: int) -> EnrolledPhoto:
        return self.kept[i]


@dataclass(frozen=True)
class _Candidate:
    view: View
    face: Face
    faces_found: int


Photo = Path | str | np.ndarray  # a file, a folder of photos, or a BGR uint8 array


def expand_photos(images: Sequence[Photo]) -> tuple[list[tuple[str, Photo]], list[Path]]:
    """((label, photo) named one by one, photos found in the folders given), in order."""
    named: list[tuple[str, Photo]] = []
    found: list[Path] = []
    for i, item in enumerate(images):
        if isinstance(item, np.ndarray):
            named.append((f"image #{i}", item))
        elif Path(item).is_dir():
            folder = Path(item)
            files = list_images(folder)
            if not files:
                raise ImageError(f"{folder} holds no image files (.jpg, .png, ...); check it")
            found.extend(files)
        else:
            named.append((str(item), Path(item)))
    return named, found


def _candidate(
    pipeline: Pipeline, image: np.ndarray, source: str, face_index: int | Face | None
) -> _Candidate | ImageError:
    """The face a photo or frame is about, measured and embedded; or why there is none."""
    try:
        faces = pipeline.faces(image)
        if isinstance(face_index, Face):
            face = face_index
        else:
            face = choose_face(faces, image.shape, source, face_index)
    except ImageError as exc:
        return exc
    kept, crops = pipeline.cut(image, [face])
    if not kept:
        return ImageError(f"the chosen face of {source} lies outside the image; pick another")
    quality = (
        assess(image, face)
        if pipeline.detector is not None
        else FaceQuality(float(min(image.shape[:2])), 1.0, None, None, None)
    )
    embedding = pipeline.embedder.embed(crops)[0]
    return _Candidate(View(source, quality, embedding), face, len(faces))


def photo_candidates(
    pipeline: Pipeline, images: Sequence[Photo], face_index: int | Face | None = None
) -> tuple[list[_Candidate], list[tuple[str, str]]]:
    """Candidates from photos and folders; a named photo that fails raises, naming it."""
    named, found = expand_photos(images)
    items = [(label, photo, True) for label, photo in named]
    items += [(str(path), path, False) for path in found]
    candidates, left_out = [], []
    for label, photo, strict in items:
        try:
            image = photo if isinstance(photo, np.ndarray) else read_image(photo)
        except ImageError as exc:
            if strict:
                raise
            left_out.append((label, str(exc)))
            continue
        got = _candidate(pipeline, image, label, face_index)
        if isinstance(got, ImageError):
            if strict:
                raise got
            left_out.append((label, str(got)))
        elif strict and not got.view.quality.ok:
            raise ImageError(
                f"{label}: {got.view.quality.problem}; use a larger, sharper photo of the face"
            )
        else:
            candidates.append(got)
    return candidates, left_out


def video_candidates(
    pipeline: Pipeline, spec: str, frames: int = VIDEO_FRAMES
) -> tuple[list[_Candidate], list[tuple[str, str]]]:
    """Candidates from up to ``frames`` frames of a video file, stream or camera."""
    candidates, left_out = [], []
    with open_source(spec) as source:
        total = int(getattr(source, "frame_count", 0) or 0)
        step = max(1, total // frames) if total else 1
        seen = 0
        for frame in source:
            if frame.index % step:
                continue
            label = f"{source.label} frame {frame.index}"
            got = _candidate(pipeline, frame.image, label, None)
            if isinstance(got, ImageError):
                left_out.append((label, str(got)))
            else:
                candidates.append(got)
            seen += 1
            if seen >= frames:
                break
    return candidates, left_out


def choose_views(
    pipeline: Pipeline,
    name: str,
    images: Sequence[Photo] = (),
    face_index: int | Face | None = None,
    *,
    video: str | None = None,
    max_views: int = MAX_VIEWS,
    min_distance: float | None = None,
) -> Enrolment:
    """The views of ``name`` worth enrolling, from photos/folders and/or a video or camera.

    Keeps at most ``max_views`` good, distinct views (a cosine distance of at least
    ``min_distance`` between any two; by default :data:`NEAR_DUPLICATE` of the way to
    the bundle's threshold); a named photo that cannot be used (no clear face, too
    small, too blurred) raises :class:`ImageError` saying why, so nothing is enrolled.
    """
    if min_distance is None:
        min_distance = NEAR_DUPLICATE * (1.0 - pipeline.bundle.threshold)
    if not images and video is None:
        raise ImageError(f"no photo given for {name!r}: pass at least one image file")
    candidates, left_out = photo_candidates(pipeline, images, face_index) if images else ([], [])
    if video is not None:
        more, skipped = video_candidates(pipeline, video)
        candidates += more
        left_out += skipped
    by_source = {c.view.source: c for c in candidates}
    selection = select_views([c.view for c in candidates], max_views, min_distance)
    left_out += [(v.source, reason) for v, reason in selection.left_out]
    left_out.sort(key=lambda item: item[1].endswith(FULL))  # the informative reasons first
    if not selection.kept:
        reasons = "; ".join(f"{s}: {r}" for s, r in left_out[:5]) or "no face found"
        raise FacelensError(f"no usable view of {name!r} ({reasons})")
    kept = []
    for v in selection.kept:
        c = by_source[v.source]
        kept.append(EnrolledPhoto(v.source, c.face, c.faces_found, v.quality))
    embeddings = np.stack([v.embedding for v in selection.kept])
    return Enrolment(name, kept, left_out, embeddings)
