"""The recognition pipeline: detect -> cut (per the manifest's crop rule) -> embed -> match.

:class:`Pipeline` turns a BGR image into faces and embeddings; :func:`choose_face`
picks the one face a photo is about (enrolment, calibration); :class:`Recognizer`
adds the gallery match and per-stage timings for every frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.bundle import DEFAULT_FORMAT, Bundle
from edge.detect import Face, FaceDetector, create_detector, dominant_face, rank_faces
from edge.embedder import Embedder
from edge.errors import DetectorError, GalleryError, ImageError
from edge.gallery import Gallery
from edge.matching import Matcher
from edge.preprocess import cut_face
from edge.sources import Frame

STAGES = ("decode", "detect", "align", "embed", "match")


class Pipeline:
    """Faces and embeddings from BGR images, exactly as the bundle's manifest says.

    With ``detect=False`` (or a bundle whose crop rule is ``whole_image``) the whole
    image is one face, as in the original notebook.
    """

    def __init__(self, bundle: Bundle, embedder: Embedder, detector: FaceDetector | None) -> None:
        self.bundle = bundle
        self.embedder = embedder
        self.detector = detector

    @classmethod
    def create(
        cls,
        bundle: Path | str | Bundle,
        fmt: str = DEFAULT_FORMAT,
        runtime: str | None = None,
        threads: int | None = None,
        detector: Path | str | None = None,
        detect: bool = True,
    ) -> Pipeline:
        """Load a bundle's artifact and a face detector (see :func:`create_detector`)."""
        bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        embedder = Embedder(bundle, fmt, runtime=runtime, threads=threads)
        use_detector = detect and bundle.input_spec.crop.kind != "whole_image"
        return cls(bundle, embedder, create_detector(detector) if use_detector else None)

    @property
    def detector_name(self) -> str:
        return self.detector.name if self.detector else "none (whole image)"

    def faces(self, image: np.ndarray) -> list[Face]:
        """Every face in the image; the whole image when detection is off."""
        if self.detector is None:
            h, w = image.shape[:2]
            return [Face(box=(0.0, 0.0, float(w), float(h)), score=1.0)]
        return self.detector.detect(image)

    def cut(self, image: np.ndarray, faces: list[Face]) -> tuple[list[Face], list[np.ndarray]]:
        """The faces that can be cut out (a box wholly off the image cannot) and their crops."""
        if self.detector is None:
            return faces, [image]
        kept, crops = [], []
        for face in faces:
            try:
                crops.append(cut_face(image, self.bundle.input_spec, face))
            except ValueError as exc:
                if face.landmarks is None and self.bundle.input_spec.crop.kind == "landmarks":
                    raise DetectorError(str(exc)) from None  # no face could ever be cut
                continue
            kept.append(face)
        return kept, crops

    def embed(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(N, D) unit embeddings of those of ``faces`` that can be cut out of ``image``."""
        return self.embedder.embed(self.cut(image, faces)[1])

    def photo_embedding(self, image: np.ndarray) -> np.ndarray | None:
        """The embedding of the photo's most dominant face (``None`` when it has none).

        For labelled photos (calibration, evaluation), where one face per photo is meant.
        """
        faces = rank_faces(self.faces(image), image.shape)
        kept, crops = self.cut(image, faces[:1])
        return self.embedder.embed(crops)[0] if kept else None


def describe_faces(faces: list[Face]) -> str:
    return ", ".join(
        f"#{i} box=({', '.join(str(round(v)) for v in f.box)}) score={f.score:.2f}"
        for i, f in enumerate(faces)
    )


def choose_face(
    faces: list[Face], shape: tuple[int, ...], name: str, index: int | None = None
) -> Face:
    """The face a photo is about: the dominant one, or ``index`` (in :func:`rank_faces` order).

    Raises :class:`ImageError` listing the faces when none or several alike are found.
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
        raise ImageError(
            f"no face found in {name}: use a photo where the face is clear and frontal "
            "(or --no-detect to use the whole image)"
        )
    if dominant_face(ranked, shape) is None:
        raise ImageError(
            f"{name} has {len(ranked)} faces and none clearly dominates "
            f"({describe_faces(ranked)}): pass --face N to choose one"
        )
    return ranked[0]


@dataclass(frozen=True)
class FaceResult:
    """One face found in a frame and who it is (``name`` is ``None`` for unknown)."""

    box: tuple[float, float, float, float]
    detection_score: float
    name: str | None
    score: float
    nearest: str | None


@dataclass
class FrameResult:
    """Every face of one frame, with each stage's time in milliseconds."""

    frame: Frame
    faces: list[FaceResult]
    ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Threshold:
    value: float
    origin: str  # where it came from, for the user


def resolve_threshold(bundle: Bundle, gallery: Gallery, override: float | None) -> Threshold:
    """``--threshold`` beats the gallery's calibrated value, which beats the bundle's."""
    if override is not None:
        return Threshold(float(override), "--threshold")
    stored = gallery.threshold(bundle.fingerprint)
    if stored is not None:
        how = stored.get("how", "edge calibrate")
        return Threshold(float(stored["cosine"]), f"calibrated: {how}")
    return Threshold(bundle.threshold, "bundle default")


def load_matcher(bundle: Bundle, gallery: Gallery, threshold: float) -> Matcher:
    """The gallery's embeddings for this bundle, ready to match; refuses another bundle's."""
    enrolled = gallery.load(bundle.fingerprint, bundle.name)
    if len(enrolled.names) and enrolled.matrix.shape[1] != bundle.embedding_dim:
        raise GalleryError(
            f"the gallery {gallery.path} holds {enrolled.matrix.shape[1]}-d embeddings, the "
            f"bundle makes {bundle.embedding_dim}-d ones: re-enrol into a new --gallery"
        )
    return Matcher(enrolled.names, enrolled.matrix, threshold)


class Recognizer:
    """Finds and names every face of a frame, timing each stage."""

    def __init__(self, pipeline: Pipeline, matcher: Matcher) -> None:
        self.pipeline = pipeline
        self.matcher = matcher

    def __call__(self, frame: Frame) -> FrameResult:
        image = frame.image
        ms = {"decode": frame.decode_ms}
        t0 = time.perf_counter()
        faces = self.pipeline.faces(image)
        t1 = time.perf_counter()
        faces, crops = self.pipeline.cut(image, faces)
        batch = self.pipeline.embedder.prepare(crops)
        t2 = time.perf_counter()
        embeddings = self.pipeline.embedder.embed_batch(batch)
        t3 = time.perf_counter()
        matches = self.matcher.match(embeddings) if len(faces) else []
        t4 = time.perf_counter()
        ms.update(
            detect=(t1 - t0) * 1000,
            align=(t2 - t1) * 1000,
            embed=(t3 - t2) * 1000,
            match=(t4 - t3) * 1000,
        )
        ms["total"] = sum(ms[s] for s in STAGES)
        results = [
            FaceResult(face.box, face.score, m.name, m.score, m.nearest)
            for face, m in zip(faces, matches, strict=True)
        ]
        return FrameResult(frame, results, ms)
