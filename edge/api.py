"""FaceLens: the one composition of detector, model bundle and gallery.

The ``edge`` command, ``edge demo``, the benchmarks and services are its clients::

    import edge

    fl = edge.FaceLens(bundle="bundles/faceres", gallery="people.db")
    fl.verify("ada_1.jpg", "ada_2.jpg").same      # True
    fl.enroll("Ada", ["ada_1.jpg"])
    [p.name for p in fl.identify("door.jpg")]      # ["Ada", None]: None is a stranger

Images are file paths, BGR ``uint8`` numpy arrays (what ``cv2.imread`` gives; RGB ones,
as ``face_recognition.load_image_file`` gives, with ``FaceLens(color="rgb")``), encoded
bytes (a camera's JPEG snapshot) or PIL images, everywhere. The bundle, detector and
gallery are loaded on first use, so ``FaceLens(gallery=...).people()`` needs no model.
Calls are serialised by a lock, so one instance may be shared between threads (the
runtimes are not thread-safe).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union

import numpy as np

from edge.base import paths
from edge.base.errors import FacelensError, GalleryError, ImageError
from edge.base.names import check_name, lookup_name
from edge.faces.detect import Face, FaceDetector
from edge.faces.dominant import choose_face, rank_faces
from edge.faces.quality import MIN_DECIDE_PX, assess
from edge.gallery.bundled import bundle_rule
from edge.gallery.confidence import (
    DECISION,
    DEFAULT_FPIR,
    check_confidence,
    check_fpir,
    confidence_of_fpir,
    cosine_of_confidence,
    fpir_of_confidence,
)
from edge.gallery.enroll import MAX_VIEWS, Enrolment, choose_views
from edge.gallery.matching import Matcher, OpenSet, check_threshold
from edge.gallery.negatives import NotThem
from edge.gallery.openset import Calibration, calibrate, calibrate_people
from edge.gallery.recent import Recent
from edge.gallery.review import Review
from edge.gallery.store import Gallery, PersonInfo
from edge.media.images import decode_image, read_image
from edge.model.bundle import DEFAULT_FORMAT, Bundle
from edge.model.embedder import embedding_fingerprint, made_with_flip
from edge.model.pipeline import Pipeline
from edge.results import Identity, Recognition, Threshold, Verification, with_total

if TYPE_CHECKING:  # edge.video.recognizer builds on this module
    from edge.video.recognizer import VideoRecognizer

# A path, a BGR (or, with color="rgb", RGB) uint8 array, encoded bytes or a PIL image.
Image = Union[str, Path, np.ndarray, bytes, Any]  # noqa: UP007 - a runtime alias, also on 3.10
FaceChoice = Union[int, Face, None]  # noqa: UP007
COLORS = ("bgr", "rgb")
T = TypeVar("T")
# told after each change this lens makes: ("enroll" | "forget", name) or ("calibrate", None)
Listener = Callable[[str, Union[str, None]], None]  # noqa: UP007


def _is_pil(image: object) -> bool:
    """A PIL image, known without importing PIL (an optional package)."""
    return type(image).__module__.startswith("PIL.") and hasattr(image, "convert")


def load_image(image: Image, name: str | None = None, color: str = "bgr") -> tuple[np.ndarray, str]:
    """A path, an array (``color`` says its channel order), encoded bytes or a PIL image
    -> (BGR uint8 HxWx3 array, a name for messages)."""
    if isinstance(image, str | Path):
        return read_image(image), name or str(image)
    name = name or "the image"
    if isinstance(image, bytes | bytearray | memoryview):  # e.g. a camera's JPEG snapshot
        return decode_image(bytes(image), name), name
    if _is_pil(image):
        return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1]), name
    if not isinstance(image, np.ndarray):
        raise ImageError(
            f"{name} is a {type(image).__name__}; give a file path, a BGR numpy array "
            "(or an RGB one with color='rgb'), encoded bytes or a PIL image"
        )
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ImageError(
            f"{name} is a {image.dtype} array of shape {image.shape}; give an HxWx3 BGR uint8 "
            "image (as cv2.imread returns; an RGB one with color='rgb')"
        )
    return (np.ascontiguousarray(image[:, :, ::-1]) if color == "rgb" else image), name


class FaceLens:
    """Find, embed, verify, enrol and identify faces with one model bundle and one gallery.

    ``bundle`` (a folder, or a loaded :class:`Bundle`) and ``gallery`` (a SQLite file)
    default to the ``edge`` command's (``$FACELENS_HOME``). ``fmt``/``runtime``/``threads``
    choose the artifact and how it runs; ``detector`` is a YuNet file or a detector
    object; ``detect=False`` uses the whole image as the face (the notebook's mode);
    ``threshold`` is the match confidence at which a face is named (default 0.5, see
    :mod:`edge.gallery.confidence`), ``fpir`` the same as the share of strangers that may be
    named (0.01 is 0.5); the rule is the gallery's calibration, else the bundle's;
    ``index`` is how the gallery is searched (see :class:`edge.gallery.matching.Matcher`: ``auto``
    is exact for small galleries, an in-memory FAISS index for large ones). ``flip``
    embeds every face with its mirror image too (see :class:`edge.model.embedder.Embedder`):
    twice the model time for more faces named. The gallery records it: ``flip=None``
    follows a gallery's embeddings (or, with none yet, its calibration), else is off;
    a ``flip`` that contradicts the gallery's embeddings is a :class:`GalleryError`.
    ``color="rgb"`` reads numpy arrays as RGB (``face_recognition.load_image_file``'s).
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
        index: str = "auto",
        flip: bool | None = None,
        color: str = "bgr",
        fpir: float | None = None,
    ) -> None:
        if color not in COLORS:
            raise ValueError(f"color={color!r}: give 'bgr' (OpenCV's order) or 'rgb'")
        self._color = color
        self._bundle_source = bundle  # None: the gallery's own bundle, else the default
        self.gallery_path = Path(gallery) if gallery is not None else paths.default_gallery_path()
        self._options: dict[str, Any] = dict(
            fmt=fmt, runtime=runtime, threads=threads, detector=detector, detect=detect
        )
        self._flip = flip  # None: as the gallery was made
        if threshold is not None and fpir is not None:
            raise FacelensError("give threshold (a confidence) or fpir, not both: one knob")
        if fpir is not None:
            threshold = confidence_of_fpir(check_fpir(fpir))
        self._threshold_override = None if threshold is None else check_confidence(threshold)
        self._index = index
        self._pipeline: Pipeline | None = None
        self._gallery: Gallery | None = None
        self._matcher: Matcher | None = None
        self._not_them = NotThem({})  # "not Ada" examples, loaded with the matcher
        self._threshold: Threshold | None = None
        self._seen: tuple[int, int] | None = None  # the gallery's version the matcher reflects
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []

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
                bundle = source if isinstance(source, Bundle) else Bundle.load(source)
                flip = self._gallery_flip(bundle)
                self._pipeline = Pipeline.create(bundle, flip=flip, **self._options)
            return self._pipeline

    def _gallery_flip(self, bundle: Bundle) -> bool:
        """Flip as the gallery's embeddings were made; refuses a ``flip`` that contradicts it."""
        made = self.gallery.fingerprint()
        if made is None:  # nothing enrolled: the option, else how a calibration was made
            if self._flip is not None:
                return self._flip
            flipped = embedding_fingerprint(bundle.fingerprint, True)
            return (
                self.gallery.threshold(flipped) is not None
                and self.gallery.threshold(bundle.fingerprint) is None
            )
        if made not in (embedding_fingerprint(bundle.fingerprint, f) for f in (False, True)):
            return bool(self._flip)  # another bundle's gallery: the gallery says so on load
        flip = made_with_flip(made)
        if self._flip is not None and self._flip != flip:
            made_how, option = ("with", "flip=False") if flip else ("without", "--flip (flip=True)")
            raise GalleryError(
                f"the gallery {self.gallery_path} holds embeddings made {made_how} flip (each "
                f"face averaged with its mirror image), not as {option} asks: drop {option} to "
                "follow the gallery, or re-enrol everyone into a new --gallery with it"
            )
        return flip

    @property
    def bundle(self) -> Bundle:
        return self.pipeline.bundle

    @property
    def fingerprint(self) -> str:
        """What this lens's embeddings are bound to in the gallery (bundle, and flip)."""
        return self.pipeline.embedder.fingerprint

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
        cosine, how, rule = self._calibration()
        target = self._threshold_override  # a confidence, or None: the default operating point
        if target is not None:
            how = f"--threshold {target:.2f} over {how}"
        if rule is not None:
            fpir = DEFAULT_FPIR if target is None else fpir_of_confidence(target)
            return Threshold(cosine, how, rule.with_fpir(fpir), confidence_of_fpir(fpir), cosine)
        target = DECISION if target is None else target
        decide = check_threshold(cosine_of_confidence(target, cosine), "the threshold")
        return Threshold(decide, how, None, target, cosine)

    def _calibration(self) -> tuple[float, str, OpenSet | None]:
        """(cosine, where it came from, open-set rule): the gallery's, else the bundle's."""
        fingerprint, bundle = self.fingerprint, self.bundle
        stored = self.gallery.threshold(fingerprint)
        if stored is not None:
            cosine = float(stored["cosine"])
            cohort = self.gallery.cohort(fingerprint) if stored.get("open_set") else None
            if cohort is None:
                return cosine, f"calibrated: {stored.get('how', 'edge calibrate')}", None
            rule = OpenSet.from_settings(stored["open_set"], cohort)
            how = f"calibrated open set: {rule.label} against {len(cohort)} cohort faces"
            return cosine, how, rule
        rule = bundle_rule(bundle)  # no calibration of its own: the bundle's, if it has one
        if rule is not None:
            how = f"the bundle's open-set calibration: {bundle.manifest.open_set.how}"
            return bundle.threshold, how, rule
        info = bundle.manifest.open_set
        if bundle.manifest.threshold.warning or (info is not None and info.warning):
            how = "bundle default cosine, NOT calibrated: run `edge calibrate --people DIR`"
            return bundle.threshold, how, None
        return bundle.threshold, "bundle default cosine", None

    @property
    def matcher(self) -> Matcher:
        """The gallery's embeddings for this bundle, ready to match; refuses another bundle's."""
        with self._lock:
            seen = self.gallery.version()
            if seen != self._seen:  # another process enrolled, forgot or calibrated
                self._matcher = self._threshold = None
                self._seen = seen
            if self._matcher is None:
                bundle = self.bundle
                enrolled = self.gallery.load(self.fingerprint, bundle.name)
                if len(enrolled.names) and enrolled.matrix.shape[1] != bundle.embedding_dim:
                    raise GalleryError(
                        f"the gallery {self.gallery_path} holds {enrolled.matrix.shape[1]}-d "
                        f"embeddings, the bundle makes {bundle.embedding_dim}-d ones: re-enrol "
                        "into a new --gallery"
                    )
                self._matcher = self._matcher_of(enrolled.names, enrolled.matrix, self._index)
                self._not_them = NotThem(Recent(self.gallery).negatives(self.fingerprint))
            return self._matcher

    def _matcher_of(self, names: list[str], matrix: np.ndarray, index: str) -> Matcher:
        t = self.threshold
        return Matcher(names, matrix, t.value, index, open_set=t.open_set, scale_cosine=t.reference)

    def load(self) -> FaceLens:
        """Load the bundle, detector and gallery now (errors now, not on the first image)."""
        self.matcher  # noqa: B018 - loads everything it depends on
        return self

    def describe(self) -> str:
        """One line: bundle, artifact and runtime, detector, threshold, people enrolled."""
        p, m = self.pipeline, self.matcher
        rule = self.operating_point(len(m))
        return (
            f"bundle {p.bundle.path} ({p.embedder.format} via {p.embedder.backend.runtime}"
            f"{', flip' if p.embedder.flip else ''}), "
            f"detector {p.detector_name}, {rule}, {len(m)} people ({m.index.kind} search)"
        )

    def operating_point(self, people: int | None = None) -> str:
        """Where a face is named, in the score unit, and what it means for ``people``."""
        t = self.threshold
        if people is None:
            people = len(self.matcher)
        line = f"named at confidence >= {t.confidence:.2f}"
        if t.open_set:
            line += (
                f" (about {t.open_set.fpir:.2%} of strangers' appearances named for "
                f"{people} people; {t.origin})"
            )
        else:
            line += f" (cosine {t.value:.3f}; {t.origin})"
        return line

    # -- faces and embeddings -----------------------------------------------------------

    def faces(self, image: Image) -> list[Face]:
        """Every face in the image, most dominant first (the order ``face=N`` counts)."""
        array, _ = load_image(image, color=self._color)
        with self._lock:
            return rank_faces(self.pipeline.faces(array), array.shape)

    def embed(self, image: Image, face: FaceChoice = None) -> np.ndarray:
        """(N, D) unit-length embeddings, one per face (in :meth:`faces` order).

        ``face``: an index into :meth:`faces` or a :class:`Face` from it, for that face
        alone (shape (1, D)). Faces wholly outside the image are left out.
        """
        array, name = load_image(image, color=self._color)
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
        images = [load_image(x, color=self._color) for x in (a, b)]
        with self._lock:
            ea, eb = (self._embedding(array, name, None) for array, name in images)
            # b as a gallery of one: the same rule and unit as identification
            m = self._matcher_of(["b"], eb[None, :], "exact").match(ea[None, :])[0]
            decide = self.threshold.confidence
        return Verification(m.name is not None, m.confidence, decide, m.cosine)

    # -- the gallery --------------------------------------------------------------------

    def enroll(
        self,
        name: str,
        images: Image | Sequence[Image] = (),
        face: FaceChoice = None,
        *,
        video: str | None = None,
        max_views: int = MAX_VIEWS,
    ) -> Enrolment:
        """Enrol ``name`` from photos, folders of photos and/or a video or camera (``video``).

        Each candidate face is checked (size, sharpness, pose) and at most ``max_views``
        good, distinct views are kept. A photo named on its own whose face is missing,
        ambiguous, too small or too blurred refuses the whole enrolment, saying why; in a
        folder or a video such faces are left out. ``face`` (an index into :meth:`faces`
        or a :class:`Face`) picks the face in photos with several. Returns an
        :class:`Enrolment`: the kept views (iterating gives :class:`EnrolledPhoto`) and
        what was left out and why.
        """
        name = check_name(name)
        if isinstance(images, str | Path | np.ndarray | bytes | bytearray) or _is_pil(images):
            images = [images]
        photos = [
            x if isinstance(x, str | Path) else load_image(x, f"image #{i}", self._color)[0]
            for i, x in enumerate(images)
        ]
        with self._lock:
            self.gallery.check_writable()  # before the embedding work, not after
            enrolment = choose_views(
                self.pipeline, name, photos, face, video=video, max_views=max_views
            )
            bundle = self.bundle
            self.gallery.add(name, enrolment.embeddings, self.fingerprint, bundle.name, bundle.path)
            self._matcher = None
            self._changed("enroll", name)
            return enrolment

    def identify(self, image: Image) -> list[Identity]:
        """Every face in the image and who it is (``name`` ``None`` = unknown)."""
        return self.recognize(image).faces

    def recognize(self, image: Image, faces: list[Face] | None = None) -> Recognition:
        """:meth:`identify` with each stage's time in ms (``decode`` when given a file).

        ``faces`` (already found, e.g. by following a track) skips detection. A face too
        small or blurred to decide on gets a ``problem`` and no name.
        """
        t0 = time.perf_counter()
        array, _ = load_image(image, color=self._color)
        with self._lock:
            pipeline, matcher = self.pipeline, self.matcher
            t1 = time.perf_counter()
            faces = pipeline.faces(array) if faces is None else faces
            t2 = time.perf_counter()
            faces, crops = pipeline.cut(array, faces)
            checked = pipeline.detector is not None  # the whole image is no face to measure
            problems = [assess(array, f, MIN_DECIDE_PX).problem if checked else None for f in faces]
            batch = pipeline.embedder.prepare(crops)
            t3 = time.perf_counter()
            embeddings = pipeline.embedder.embed_batch(batch)
            t4 = time.perf_counter()
            matches = matcher.match(embeddings) if len(faces) else []
            matches = self._not_them.veto(matcher, embeddings, matches)
            t5 = time.perf_counter()
        ms = with_total(
            {
                "decode": (t1 - t0) * 1000 if isinstance(image, str | Path) else 0.0,
                "detect": (t2 - t1) * 1000,
                "align": (t3 - t2) * 1000,
                "embed": (t4 - t3) * 1000,
                "match": (t5 - t4) * 1000,
            }
        )
        identities = [
            Identity(
                face.box,
                face.score,
                None if bad else m.name,
                m.confidence,
                m.nearest,
                bad,
                cosine=m.cosine,
            )
            for face, m, bad in zip(faces, matches, problems, strict=True)
        ]
        return Recognition(identities, ms, embeddings)

    def people(self) -> list[PersonInfo]:
        """Everyone enrolled: name, embeddings, bundle fingerprint, date (no key, no model)."""
        with self._lock:
            return self.gallery.people()

    def forget(self, name: str) -> int:
        """Erase ``name`` from the gallery for good; returns how many embeddings went (0: none).

        Their "not them" examples and the recent appearances named them go too."""
        with self._lock:
            reviewed = Recent(self.gallery).forget(name, compact=False)
            removed = self.gallery.forget(name)  # compacts the file when it erased embeddings
            if reviewed and not removed:
                self.gallery.compact()
            self._matcher = None
            if removed:
                self._changed("forget", lookup_name(name))
            return removed

    def calibrate(
        self,
        pairs: Path | str | None = None,
        images: Path | str | None = None,
        far: float = 0.001,
        progress: bool = False,
        fpir: float | None = DEFAULT_FPIR,
        *,
        people: Path | str | None = None,
    ) -> Calibration:
        """Choose and store the rule: from ``people`` (a folder, one sub-folder of photos per
        person), or from labelled pairs (``pairs``, a CSV ``img_a,img_b,same`` with paths
        under ``images``).

        The cosine threshold sits at false-accept rate ``far``; with ``fpir`` (the share of
        strangers the open-set rule is measured for) the same photos choose the open-set
        rule, reported for this gallery (``result.open_set``) and stored with its cohort.
        ``people`` requires that rule: a folder too small to measure it is refused.
        """
        with self._lock:
            self.gallery.check_writable()  # before minutes of embedding, not after
            bundle = self.bundle
            enrolled = self.gallery.load(self.fingerprint, bundle.name)
            gallery = (enrolled.names, enrolled.matrix) if enrolled.names else None
            if people is not None:
                fpir = fpir or DEFAULT_FPIR
                result = calibrate_people(
                    self.pipeline, people, far, progress, fpir=fpir, enrolled=gallery
                )
            elif pairs is None or images is None:
                raise FacelensError("calibrate needs people=DIR, or pairs=CSV with images=DIR")
            else:
                result = calibrate(
                    self.pipeline, pairs, images, far, progress, fpir=fpir, enrolled=gallery
                )
            self.gallery.set_threshold(self.fingerprint, result.to_dict(), cohort=result.cohort)
            self._threshold = self._matcher = None
            self._changed("calibrate", None)
            return result

    # -- other writers (the fleet: edge.service.fleet.sync) -----------------------------

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(kind, name)`` after each change this lens makes to the gallery:
        ``("enroll", name)``, ``("forget", name)`` or ``("calibrate", None)``. It runs with
        the lens's lock held: it should only take note, not call the lens."""
        self._listeners.append(listener)

    def _changed(self, kind: str, name: str | None) -> None:
        for listener in self._listeners:
            listener(kind, name)

    def with_gallery(self, fn: Callable[[Gallery], T], changes: bool = False) -> T:
        """``fn(gallery)`` with the lens's lock held; ``changes``: ``fn`` writes to it, so
        what was loaded from it is reloaded on next use (listeners are not told)."""
        with self._lock:
            try:
                return fn(self.gallery)
            finally:
                if changes:
                    self._threshold = self._matcher = None

    @property
    def review(self) -> Review:
        """Recent appearances (``--keep-recent``): corrections and recurring visitors."""
        return Review(self)

    def reload(self, enrolled: Iterable[str] = ()) -> None:
        """Match against the gallery as it is now (after a change made beside this lens);
        listeners hear of the people ``enrolled`` by that change."""
        with self._lock:
            self._matcher = None
            for name in enrolled:
                self._changed("enroll", name)

    def video(self, detect_every: int | None = None, fps: float = 0.0) -> VideoRecognizer:
        """A recognizer for consecutive frames of one source: tracks, votes, appearances.

        Full detection every ``detect_every`` frames (default 5), faces followed in
        between; ``fps`` (a file's frame rate) makes appearance times seconds into it.
        """
        from edge.video.recognizer import DETECT_EVERY, VideoRecognizer

        return VideoRecognizer(self, detect_every or DETECT_EVERY, fps)

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
