"""The recognition loop shared by ``edge recognize``, ``edge demo`` and the benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from edge.media.sources import Frame, Source
from edge.results import STAGES, Identity, Lens
from edge.video.display import Display
from edge.video.draw import annotate
from edge.video.stats import RunStats
from edge.video.track import Appearance


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


def recognize_frame(lens: Lens, frame: Frame) -> FrameResult:
    """Name the faces of one frame; its decode time is the source's."""
    recognition = lens.recognize(frame.image)
    ms = {**recognition.ms, "decode": frame.decode_ms}
    ms["total"] = sum(ms[s] for s in STAGES)
    return FrameResult(frame, recognition.faces, ms)


def recognize_frames(
    lens: Lens,
    source: Source,
    stats: RunStats | None = None,
    display: Display | None = None,
    max_frames: int | None = None,
    recognizer: Callable[[Frame], FrameResult] | None = None,
) -> Iterator[FrameResult]:
    """Recognise each frame of ``source``, timing it in ``stats`` and drawing it to ``display``.

    ``recognizer`` (default: each frame on its own) may follow faces across frames, as
    :meth:`FaceLens.video` does. Stops at the source's end, after ``max_frames``, or
    when the window is closed.
    """
    stats = stats if stats is not None else RunStats(STAGES)
    for frame in source:
        result = recognizer(frame) if recognizer is not None else recognize_frame(lens, frame)
        stats.add(result.ms, len(result.faces))
        yield result
        if display is not None:
            image = annotate(frame.image, result.faces, stats.summary()["fps"])
            if not display(image):
                return
        if max_frames and stats.frames >= max_frames:
            return


def run_to_end(
    lens: Lens,
    source: Source,
    display: Display | None = None,
    on_result: Callable[[FrameResult], None] | None = None,
) -> RunStats:
    """Recognise every frame of ``source``; returns the run's statistics."""
    stats = RunStats(STAGES)
    for result in recognize_frames(lens, source, stats, display):
        if on_result is not None:
            on_result(result)
    return stats
