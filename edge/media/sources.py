"""Where frames come from: a camera, a video file or stream, an image, or a folder of images.

:func:`open_source` turns what the user typed into a :class:`Source` that yields
:class:`Frame` objects. Cameras and streams are *live*: a background thread reads
them continuously and keeps only the newest frame, so a slow model skips frames
instead of falling further and further behind.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.base.errors import FacelensError, SourceError
from edge.media.images import is_image_file, list_images, read_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One frame: ``index`` counts the source's frames (gaps mean frames were dropped)."""

    image: np.ndarray
    index: int
    name: str  # the file it came from, or the source's label
    decode_ms: float


class Source(ABC):
    """An iterable of frames that must be closed (use it as a context manager)."""

    label: str
    fps: float = 0.0  # the source's nominal frame rate, 0 when unknown
    stills = False  # photos (unrelated moments), not a video or stream

    @abstractmethod
    def frames(self) -> Iterator[Frame]: ...

    def clock(self, index: int) -> float:
        """When frame ``index`` was seen, in seconds: its time in a video file."""
        return index / (self.fps or 25.0)

    def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        pass

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageSource(Source):
    """Image files, in order; in a folder, unreadable files are skipped.

    The first few skips are warnings; the rest are counted (``skipped``) and logged at
    INFO, so a folder of a thousand junk files ends with a count, not a thousand lines.
    """

    warn_first = 3
    stills = True

    def __init__(self, paths: list[Path], label: str, skip_bad: bool = False) -> None:
        self.paths = paths
        self.label = label
        self.skip_bad = skip_bad
        self.skipped: list[str] = []

    def frames(self) -> Iterator[Frame]:
        for i, path in enumerate(self.paths):
            t0 = time.perf_counter()
            try:
                image = read_image(path)
            except FacelensError as exc:
                if not self.skip_bad:
                    raise
                warn = len(self.skipped) < self.warn_first
                log.log(logging.WARNING if warn else logging.INFO, "skipping %s", exc)
                self.skipped.append(str(path))
                continue
            yield Frame(image, i, str(path), (time.perf_counter() - t0) * 1000)

    def clock(self, index: int) -> float:
        """Photos of a folder are unrelated moments, an hour apart."""
        return index * 3600.0


def _open_capture(target: int | str, what: str) -> cv2.VideoCapture:
    # OpenCV logs its own warnings for a missing camera; the SourceError says it better.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        raise SourceError(what)
    return cap


class VideoSource(Source):
    """A video file, every frame in order."""

    def __init__(self, path: Path) -> None:
        self.label = str(path)
        self._cap = _open_capture(
            str(path), f"{path} is neither an image nor a video OpenCV can open; check the file"
        )
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            t0 = time.perf_counter()
            ok, image = self._cap.read()
            if not ok:
                if index == 0:
                    raise SourceError(f"{self.label} holds no readable video frame")
                return
            yield Frame(image, index, self.label, (time.perf_counter() - t0) * 1000)
            index += 1

    def close(self) -> None:
        self._cap.release()


class LiveSource(Source):
    """A camera or stream read by a background thread that keeps only the newest frame.

    A camera that stops delivering (unplugged) raises :class:`SourceError`; a stream or
    file that ends simply ends.
    """

    def __init__(
        self, target: int | str, label: str, is_camera: bool, timeout: float = 10.0
    ) -> None:
        self.label = label
        self.is_camera = is_camera
        self.timeout = timeout
        if is_camera:
            what = (
                f"camera {target} cannot be opened: check it is connected and not in use "
                "(on Linux, `ls /dev/video*` lists cameras), or give another index"
            )
        else:
            what = f"cannot open the stream {label}; check the URL and the network"
        self._cap = _open_capture(target, what)
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._ended = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"source {label}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        index = 0
        while not self._stop.is_set():
            t0 = time.perf_counter()
            ok, image = self._cap.read()
            with self._cond:
                if not ok:
                    self._ended = True
                else:
                    ms = (time.perf_counter() - t0) * 1000
                    self._latest = Frame(image, index, self.label, ms)
                    index += 1
                self._cond.notify_all()
            if not ok:
                return

    def clock(self, index: int) -> float:
        """Live: the wall clock (epoch seconds)."""
        return time.time()

    def frames(self) -> Iterator[Frame]:
        last = -1

        def fresh() -> bool:
            return self._ended or (self._latest is not None and self._latest.index != last)

        while True:
            with self._cond:
                self._cond.wait_for(fresh, timeout=self.timeout)
                frame = self._latest
                if frame is None or frame.index == last:
                    if not self._ended:
                        raise SourceError(
                            f"{self.label} gave no frame for {self.timeout:.0f} s; check it"
                        )
                    if self.is_camera:
                        raise SourceError(
                            f"{self.label} stopped delivering frames (unplugged or in use by "
                            "another program?)"
                        )
                    return
                last = frame.index
            yield frame

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._cap.release()


def is_live(spec: str) -> bool:
    """A camera index or a stream URL: read live (newest frame only, reopened when it drops);
    anything else is a file, read frame by frame."""
    return spec.isdigit() or "://" in spec


def open_source(spec: str, live: bool | None = None) -> Source:
    """A camera index (``0``), a stream URL, a video file, an image file or a folder.

    ``live`` forces (or prevents) the newest-frame-only background reader; by default
    cameras and streams are live (:func:`is_live`) and files are read frame by frame.
    """
    spec = str(spec)
    if spec.isdigit():
        return LiveSource(int(spec), f"camera {spec}", is_camera=True)
    if is_live(spec):  # a stream
        if live is False:
            raise SourceError(f"{spec} is a stream; it can only be read live")
        return LiveSource(spec, spec, is_camera=False)
    path = Path(spec)
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise SourceError(f"{path} holds no image files (.jpg, .png, ...); check the folder")
        return ImageSource(files, str(path), skip_bad=True)
    if not path.exists():
        raise SourceError(
            f"{spec} does not exist: give a camera index (0), a video file, a stream URL, "
            "an image file or a folder of images"
        )
    if path.stat().st_size == 0:
        raise SourceError(f"{path} is empty (0 bytes); give an image or a video file")
    if is_image_file(path):
        return ImageSource([path], str(path))
    if live:
        return LiveSource(str(path), str(path), is_camera=False)
    return VideoSource(path)
