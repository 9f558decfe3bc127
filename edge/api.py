"""FaceLens: the one composition of detector, model bundle and gallery.

The ``edge`` command, ``edge demo``, the benchmarks and services are its clients::

    import edge

    fl = edge.FaceLens(bundle="bundles/faceres", gallery="people.db")
    fl.verify("ada_1.jpg", "ada_2.jpg").same      # True
    fl.enroll("Ada", ["ada_1.jpg"])
    [p.name for p in fl.identify("door.jpg")]      # ["Ada", None]: None is a stranger

Images are file paths or BGR ``uint8`` numpy arrays (what ``cv2.imread`` gives)
everywhere. The bundle, detector and gallery are loaded on first use, so
``FaceLens(gallery=...).people()`` needs no model. Calls are serialised by a lock,
so one instance may be shared between threads (the runtimes are not thread-safe).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from edge import paths
from edge.bundle import DEFAULT_FORMAT, Bundle
from edge.calibrate import Calibration, calibrate
from edge.detect import Face, FaceDetector
from edge.errors import GalleryError, ImageError
from edge.faces import choose_face, rank_faces
from edge.gallery import Gallery, PersonInfo
from edge.images import read_image
from edge.matching import Matcher
from edge.names import check_name
from edge.pipeline import Pipeline

Image = Union[str, Path, np.ndarray]  # noqa: UP007 - a runtime alias, also on Python 3.10
FaceChoice = Union[int, Face, None]  # noqa: UP007

# The stages :meth:`FaceLens.recognize` times, in order ("decode" only for a file).
STAGES = ("decode", "detect", "align", "embed", "match")


@dataclass(frozen=True)
class Verification:
    """Are two photos of the same person? ``score`` is the cosine of their dominant faces."""

    same: bool
    score: float
    threshold: float


@dataclass(frozen=True)
class EnrolledPhoto:
    """Which face of which photo was enrolled, and how many faces the photo had."""

    path: str
    face: Face
    faces_found: int


@dataclass(frozen=True)
class Identity:
    """One face found in an image and who it is.

    ``name`` is ``None`` for someone unknown (below the threshold); ``nearest`` is the
    closest enrolled person either way and ``score`` the cosine to them.
    """

    box: tuple[float, float, float, float]  # x, y, width, height in image pixels
    detection_score: float
    name: str | None
    score: float
    nearest: str | None


@dataclass(frozen=True)
class Recognition:
    """Every face of one image, named, with each stage's time in milliseconds."""

    faces: list[Identity]
    ms: dict[str, float]


@dataclass(frozen=True)
class Threshold:
    """The cosine threshold in use and where it came from, for the user."""

    value: float
    origin: str


def load_image(image: Image, name: str | None = None) -> tuple[np.ndarray, str]:
    """A path or an array -> (BGR uint8 HxWx3 array, a name for messages)."""
    if isinstance(image, str | Path):
        return read_image(image), name or str(image)
    name = name or "the image"
    if not isinstance(image, np.ndarray):
        raise ImageError(
            f"{name} is a {type(image).__name__}; give a file path or a BGR numpy array"
        )
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ImageError(
            f"{name} is a {image.dtype} array of shape {image.shape}; give an HxWx3 BGR uint8 "
            "image (as cv2.imread returns)"
        )
    return image, name


class FaceLens:
    """Find, embed, verify, enrol and identify faces with one model bundle and one gallery.

    ``bundle`` (a folder, or a loaded :class:`Bundle`) and ``gallery`` (a SQLite file)
    default to the ``edge`` command's (``$FACELENS_HOME``). ``fmt``/``runtime``/``threads``
    choose the artifact and how it runs; ``detector`` is a YuNet file or a detector
    object; ``detect=False`` uses the whole image as the face (the notebook's mode);
    ``threshold`` overrides the gallery's calibrated and the bundle's default cosine.
    """

    def __init__(
        self,
        bundle: Path | str | Bundle | None = None,
        gallery: Path | str | None = None,
        *,
        fmt: str = DEFAULT_FORMAT,
        runtime: str | None = None,
        threads: int | None = None,
        detector: Path | str | FaceDetector | None = None,
        detect: bool = True,
        threshold: float | None = None,
    ) -> None:
        self._bundle_source = bundle  # None: the gallery's own bundle, else the default
        self.gallery_path = Path(gallery) if gallery is not None else paths.default_gallery_path()
        self._options: dict[str, Any] = dict(
            fmt=fmt, runtime=runtime, threads=threads, detector=detector, detect=detect
        )
        self._threshold_override = None if threshold is None else float(threshold)
        self._pipeline: Pipeline | None = None
        self._gallery: Gallery | None = None
        self._matcher: Matcher | None = None
        self._threshold: Threshold | None = None
        self._lock = threading.RLock()

    # -- what is loaded -----------------------------------------------------------------

    @property
    def pipeline(self) -> Pipeline:
        """The bundle's model and the detector (loaded on first use)."""
        with self._lock:
            if self._pipeline is None:
                source = (
                    self._bundle_source
                    or self.gallery.bundle_path()  # what the gallery was enrolled with
                    or paths.default_bundle_dir()
                )
                self._pipeline = Pipeline.create(source, **self._options)
            return self._pipeline

    @property
    def bundle(self) -> Bundle:
        return self.pipeline.bundle

    @property
    def gallery(self) -> Gallery:
        """The gallery (opened on first use; the file is created on the first enrolment)."""
        with self._lock:
            if self._gallery is None:
                self._gallery = Gallery(self.gallery_path)
            return self._gallery

    @property
    def threshold(self) -> Threshold:
        """``threshold=`` beats the gallery's calibrated value, which beats the bundle's."""
        with self._lock:
            if self._threshold is None:
                self._threshold = self._resolve_threshold()
            return self._threshold

    def _resolve_threshold(self) -> Threshold:
        if self._threshold_override is not None:
            return Threshold(self._threshold_override, "--threshold")
        stored = self.gallery.threshold(self.bundle.fingerprint)
        if stored is not None:
            return Threshold(
                float(stored["cosine"]), f"calibrated: {stored.get('how', 'edge calibrate')}"
            )
        return Threshold(self.bundle.threshold, "bundle default")

    @property
    def matcher(self) -> Matcher:
        """The gallery's embeddings for this bundle, ready to match; refuses another bundle's."""
        with self._lock:
            if self._matcher is None:
                bundle = self.bundle
                enrolled = self.gallery.load(bundle.fingerprint, bundle.name)
                if len(enrolled.names) and enrolled.matrix.shape[1] != bundle.embedding_dim:
                    raise GalleryError(
                        f"the gallery {self.gallery_path} holds {enrolled.matrix.shape[1]}-d "
                        f"embeddings, the bundle makes {bundle.embedding_dim}-d ones: re-enrol "
                        "into a new --gallery"
                    )
                self._matcher = Matcher(enrolled.names, enrolled.matrix, self.threshold.value)
            return self._matcher

    def load(self) -> FaceLens:
        """Load the bundle, detector and gallery now (errors now, not on the first image)."""
        self.matcher  # noqa: B018 - loads everything it depends on
        return self

    def describe(self) -> str:
        """One line: bundle, artifact and runtime, detector, threshold, people enrolled."""
        p, t = self.pipeline, self.threshold
        return (
            f"bundle {p.bundle.path} ({p.embedder.format} via {p.embedder.backend.runtime}), "
            f"detector {p.detector_name}, threshold {t.value:.3f} ({t.origin}), "
            f"{len(self.matcher)} people"
        )

    # -- faces and embeddings -----------------------------------------------------------

    def faces(self, image: Image) -> list[Face]:
        """Every face in the image, most dominant first (the order ``face=N`` counts)."""
        array, _ = load_image(image)
        with self._lock:
            return rank_faces(self.pipeline.faces(array), array.shape)

    def embed(self, image: Image, face: FaceChoice = None) -> np.ndarray:
        """(N, D) unit-length embeddings, one per face (in :meth:`faces` order).

        ``face``: an index into :meth:`faces` or a :class:`Face` from it, for that face
        alone (shape (1, D)). Faces wholly outside the image are left out.
        """
        array, name = load_image(image)
        with self._lock:
            if face is None:
                return self.pipeline.embed(
                    array, rank_faces(self.pipeline.faces(array), array.shape)
                )
            return self._embedding(array, name, face)[None, :]

    def _choose(self, array: np.ndarray, name: str, face: FaceChoice) -> tuple[Face, int]:
        """The face ``face`` names (default: the dominant one) and how many were found."""
        found = self.pipeline.faces(array)
        if isinstance(face, Face):
            return face, len(found)
        return choose_face(found, array.shape, name, face), len(found)

    def _embedding(self, array: np.ndarray, name: str, face: FaceChoice) -> np.ndarray:
        chosen, _ = self._choose(array, name, face)
        return self.pipeline.face_embedding(array, chosen, name)

    def verify(self, a: Image, b: Image) -> Verification:
        """Do two photos show the same person? Compares each photo's dominant face."""
        images = [load_image(x) for x in (a, b)]
        with self._lock:
            ea, eb = (self._embedding(array, name, None) for array, name in images)
            threshold = self.threshold.value
        score = float(ea @ eb)
        return Verification(same=score >= threshold, score=score, threshold=threshold)

    # -- the gallery --------------------------------------------------------------------

    def enroll(
        self, name: str, images: Image | Sequence[Image], face: FaceChoice = None
    ) -> list[EnrolledPhoto]:
        """Enrol ``name`` from photos: the dominant face of each, or face ``face``.

        ``face`` is an index into :meth:`faces` (the command's ``--face N``) or a
        :class:`Face` found in the photo.

        Every photo is checked before anything is written: one bad photo enrols none.
        Returns which face of which photo was enrolled.
        """
        name = check_name(name)
        if isinstance(images, str | Path | np.ndarray):
            images = [images]
        if not images:
            raise ImageError(f"no photo given for {name!r}: pass at least one image file")
        with self._lock:
            self.gallery.check_writable()  # before the embedding work, not after
            embeddings, report = [], []
            for i, image in enumerate(images):
                array, label = load_image(
                    image, None if isinstance(image, str | Path) else f"image #{i}"
                )
                chosen, found = self._choose(array, label, face)
                embeddings.append(self.pipeline.face_embedding(array, chosen, label))
                report.append(EnrolledPhoto(label, chosen, found))
            bundle = self.bundle
            self.gallery.add(
                name, np.stack(embeddings), bundle.fingerprint, bundle.name, bundle.path
            )
            self._matcher = None
            return report

    def identify(self, image: Image) -> list[Identity]:
        """Every face in the image and who it is (``name`` ``None`` = unknown)."""
        return self.recognize(image).faces

    def recognize(self, image: Image) -> Recognition:
        """:meth:`identify` with each stage's time in ms (``decode`` when given a file)."""
        t0 = time.perf_counter()
        array, _ = load_image(image)
        with self._lock:
            pipeline, matcher = self.pipeline, self.matcher
            t1 = time.perf_counter()
            faces = pipeline.faces(array)
            t2 = time.perf_counter()
            faces, crops = pipeline.cut(array, faces)
            batch = pipeline.embedder.prepare(crops)
            t3 = time.perf_counter()
            embeddings = pipeline.embedder.embed_batch(batch)
            t4 = time.perf_counter()
            matches = matcher.match(embeddings) if len(faces) else []
            t5 = time.perf_counter()
        ms = {
            "decode": (t1 - t0) * 1000 if isinstance(image, str | Path) else 0.0,
            "detect": (t2 - t1) * 1000,
            "align": (t3 - t2) * 1000,
            "embed": (t4 - t3) * 1000,
            "match": (t5 - t4) * 1000,
        }
        ms["total"] = sum(ms[s] for s in STAGES)
        identities = [
            Identity(face.box, face.score, m.name, m.score, m.nearest)
            for face, m in zip(faces, matches, strict=True)
        ]
        return Recognition(identities, ms)

    def people(self) -> list[PersonInfo]:
        """Everyone enrolled: name, embeddings, bundle fingerprint, date (no key, no model)."""
        with self._lock:
            return self.gallery.people()

    def forget(self, name: str) -> int:
        """Erase ``name`` from the gallery for good; returns how many embeddings went (0: none)."""
        with self._lock:
            removed = self.gallery.forget(name)
            self._matcher = None
            return removed

    def calibrate(
        self, pairs: Path | str, images: Path | str, far: float = 0.001, progress: bool = False
    ) -> Calibration:
        """Choose and store the threshold at false-accept rate ``far`` on labelled pairs.

        ``pairs`` is a CSV ``img_a,img_b,same`` with paths under ``images``; returns the
        :class:`Calibration`, whose threshold later calls use.
        """
        with self._lock:
            self.gallery.check_writable()  # before minutes of embedding, not after
            result = calibrate(self.pipeline, pairs, images, far, progress=progress)
            self.gallery.set_threshold(self.bundle.fingerprint, result.to_dict())
            self._threshold = self._matcher = None
            return result

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the gallery (the model is freed with the object)."""
        with self._lock:
            if self._gallery is not None:
                self._gallery.close()
                self._gallery = None
            self._matcher = None

    def __enter__(self) -> FaceLens:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
