"""The one recognition loop: one source, or many cameras interleaved.

``edge recognize``, ``edge serve``, ``edge demo`` and the benchmarks all recognise frames
through :func:`recognize_frames`; what differs between them is where the frames come
from (one :class:`~edge.media.sources.Source`, or :meth:`Cameras.frames
<edge.media.cameras.Cameras.frames>`) and how each frame is recognised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from edge.base.errors import FacelensError
from edge.media.sources import Frame, Source
from edge.results import STAGES, Identity, Lens, with_total
from edge.video.display import Display
from edge.video.draw import annotate
from edge.video.stats import RunStats
from edge.video.track import Appearance

if TYPE_CHECKING:
    from edge.media.cameras import Camera, Cameras

K = TypeVar("K")  # where a frame came from: a source, a camera


@dataclass(frozen=True)
class FrameResult:
    """Every face of one frame of a source, with each stage's time in milliseconds.

    In a video (see :class:`edge.video.recognizer.VideoRecognizer`), ``appearances`` are the tracks
    that ended at this frame and ``decided`` the ones whose identity was decided at it.
    """

    frame: Frame
    faces: list[Identity]
    ms: dict[str, float]
    appearances: list[Appearance] = field(default_factory=list)
    decided: list[Appearance] = field(default_factory=list)
    embeddings: np.ndarray | None = None  # row i is faces[i]'s (when tracked)


def recognize_frame(lens: Lens, frame: Frame) -> FrameResult:
    """Name the faces of one frame; its decode time is the source's."""
    recognition = lens.recognize(frame.image)
    ms = with_total({**recognition.ms, "decode": frame.decode_ms})
    return FrameResult(frame, recognition.faces, ms)


def recognize_frames(
    frames: Iterable[tuple[K, Frame]],
    recognize: Callable[[K, Frame], FrameResult],
    stats: Callable[[K], RunStats] | None = None,
    display: Display | None = None,
    max_frames: int | None = None,
    on_error: Callable[[K, Frame, FacelensError], None] | None = None,
) -> Iterator[tuple[K, FrameResult]]:
    """Recognise each ``(source, frame)`` of ``frames`` in turn; yields ``(source, result)``.

    ``frames`` is one source's (see :func:`each`) or many cameras' interleaved
    (:meth:`Cameras.frames <edge.media.cameras.Cameras.frames>`). Each result is timed in
    ``stats(source)`` and drawn to ``display``. A frame that cannot be recognised goes to
    ``on_error`` and the loop goes on; without ``on_error`` the error stops it. Stops when
    ``frames`` ends, after ``max_frames`` frames in all, or when the window is closed.
    """
    done = 0
    for key, frame in frames:
        try:
            result = recognize(key, frame)
        except FacelensError as exc:
            if on_error is None:
                raise
            on_error(key, frame, exc)
            continue
        run = stats(key) if stats is not None else None
        if run is not None:
            run.add(result.ms, len(result.faces))
        yield key, result
        done += 1
        if display is not None:
            fps = run.summary()["fps"] if run is not None else 0.0
            if not display(annotate(frame.image, result.faces, fps)):
                return
        if max_frames and done >= max_frames:
            return


def each(source: Source) -> Iterator[tuple[Source, Frame]]:
    """``(source, frame)`` for every frame of one source: the one-source case of many."""
    for frame in source:
        yield source, frame


def run_to_end(
    lens: Lens,
    source: Source,
    display: Display | None = None,
    on_result: Callable[[FrameResult], None] | None = None,
) -> RunStats:
    """Recognise every frame of ``source`` on its own; returns the run's statistics."""
    stats = RunStats(STAGES)
    results = recognize_frames(
        each(source), lambda _, frame: recognize_frame(lens, frame), lambda _: stats, display
    )
    for _, result in results:
        if on_result is not None:
            on_result(result)
    return stats


def recognize_cameras(
    cameras: Cameras,
    recognize: Callable[[Camera, Frame], FrameResult],
    on_result: Callable[[Camera, Frame, FrameResult], None],
    on_error: Callable[[Camera, Exception], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Recognise the cameras' frames in turn until they end or ``stop`` is set.

    A frame that cannot be recognised is counted and logged against its camera (and
    given to ``on_error``); the loop goes on with the next one.
    """

    def failed(camera: Camera, frame: Frame, exc: FacelensError) -> None:
        camera.frame_failed(frame, exc)
        if on_error is not None:
            on_error(camera, exc)

    for camera, result in recognize_frames(cameras.frames(stop), recognize, on_error=failed):
        on_result(camera, result.frame, result)
