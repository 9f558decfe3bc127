"""The recognition loop shared by ``edge recognize`` and ``edge demo``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from edge.display import Display
from edge.draw import annotate
from edge.pipeline import STAGES, FrameResult, Recognizer
from edge.sources import Source
from edge.stats import RunStats


def recognize_frames(
    recognizer: Recognizer,
    source: Source,
    stats: RunStats | None = None,
    display: Display | None = None,
    max_frames: int | None = None,
) -> Iterator[FrameResult]:
    """Recognise each frame of ``source``, timing it in ``stats`` and drawing it to ``display``.

    Stops at the source's end, after ``max_frames``, or when the window is closed.
    """
    stats = stats if stats is not None else RunStats(STAGES)
    for frame in source:
        result = recognizer(frame)
        stats.add(result.ms, len(result.faces))
        yield result
        if display is not None and not display(annotate(result, stats.summary()["fps"])):
            return
        if max_frames and stats.frames >= max_frames:
            return


def run_to_end(
    recognizer: Recognizer,
    source: Source,
    display: Display | None = None,
    on_result: Callable[[FrameResult], None] | None = None,
) -> RunStats:
    """Recognise every frame of ``source``; returns the run's statistics."""
    stats = RunStats(STAGES)
    for result in recognize_frames(recognizer, source, stats, display):
        if on_result is not None:
            on_result(result)
    return stats
