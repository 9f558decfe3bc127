"""Many cameras at once: one reader per camera, their frames interleaved.

Each :class:`Camera` reads its source (anything :func:`edge.media.sources.open_source`
takes) on its own thread. A camera or stream keeps only its newest frame; a file hands
over every frame. :meth:`Cameras.frames` takes the next waiting frame round-robin, so a
busy camera cannot starve the others. A camera or stream that fails or drops is
reopened with exponential back-off, logged and counted; a file that cannot be read
fails alone. Nothing one camera does stops the others. Recognising the frames is
:func:`edge.video.loop.recognize_frames`'s job.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edge.base.errors import FacelensError, SourceError
from edge.base.names import topic_name
from edge.media.sources import Frame, Source, is_live, open_source

log = logging.getLogger(__name__)

_NAMED = re.compile(r"^([A-Za-z0-9_-]+)=(.+)$")


@dataclass(frozen=True)
class CameraSpec:
    """A camera's name (used in events and metrics) and its source."""

    name: str
    source: str

    @classmethod
    def parse(cls, text: str) -> CameraSpec:
        """``NAME=SOURCE`` or a bare source (named ``camera0``, the file's stem or the host)."""
        named = _NAMED.match(text)
        if named:
            return cls(named.group(1), named.group(2))
        if text.isdigit():
            return cls(f"camera{text}", text)
        if "://" in text:
            return cls(topic_name(urlsplit(text).hostname or text), text)
        return cls(topic_name(Path(text).stem), text)

    @property
    def live(self) -> bool:
        """A camera or a stream: newest frame only, reopened when it drops."""
        return is_live(self.source)


def unique_specs(texts: Sequence[str]) -> list[CameraSpec]:
    """Parse ``--camera`` values; two cameras may not share a name."""
    specs = [CameraSpec.parse(t) for t in texts]
    names = [s.name for s in specs]
    for name in names:
        if names.count(name) > 1:
            raise SourceError(
                f"two cameras are named {name!r}: name each one, "
                "e.g. --camera door=SRC --camera hall=SRC"
            )
    return specs


@dataclass(frozen=True)
class Backoff:
    """Seconds to wait before reopening: ``first``, doubled each failure, up to ``most``."""

    first: float = 1.0
    most: float = 30.0

    def delay(self, failures: int) -> float:
        return min(self.most, self.first * 2 ** max(0, failures - 1))


class Camera:
    """One camera's reader thread and what it has seen (for ``/metrics`` and logs)."""

    def __init__(self, spec: CameraSpec, cond: threading.Condition, backoff: Backoff) -> None:
        self.spec = spec
        self.name = spec.name
        self.status = "starting"  # starting, up, retrying, ended, failed
        self.frames_read = 0
        self.frames_taken = 0
        self.reconnects = 0
        self.errors = 0
        self.last_error = ""
        self._cond = cond
        self._backoff = backoff
        self._slot: Frame | None = None
        self._source: Source | None = None
        self._taken_at: deque[float] = deque(maxlen=60)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera {self.name}", daemon=True)

    @property
    def finished(self) -> bool:
        return self.status in ("ended", "failed") and self._slot is None

    @property
    def up(self) -> bool:
        return self.status == "up"

    @property
    def source(self) -> Source | None:
        """The camera's source as last opened (None before it opens)."""
        return self._source

    @property
    def stills(self) -> bool:
        """The source is photos (unrelated moments), not a video or stream."""
        return self._source is not None and self._source.stills

    def fps(self, window_s: float = 5.0) -> float:
        """Frames recognised per second over the last few seconds."""
        now = time.monotonic()
        recent = [t for t in self._taken_at if now - t <= window_s]
        return len(recent) / window_s if len(recent) > 1 else 0.0

    def clock(self, frame_index: int) -> float:
        """When a frame was seen, in seconds (see :meth:`Source.clock`)."""
        source = self._source
        return time.time() if source is None else source.clock(frame_index)

    def frame_failed(self, frame: Frame, exc: Exception) -> None:
        """Count and log a frame that could not be recognised (the camera goes on)."""
        self.errors += 1
        self.last_error = str(exc)
        log.warning("camera %s frame %d: %s", self.name, frame.index, exc)

    # -- the reader thread --------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def _set(self, status: str) -> None:
        with self._cond:
            self.status = status
            self._cond.notify_all()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            delivered = self.frames_read
            try:
                with open_source(self.spec.source) as source:
                    self._source = source
                    self._set("up")
                    if failures:
                        log.warning("camera %s is back", self.name)
                    for frame in source:
                        if not self._offer(frame):
                            return
                if not self.spec.live:
                    self._set("ended")
                    return
                raise SourceError(f"{self.spec.source} ended")
            except Exception as exc:  # one camera's fault never stops the others
                self.errors += 1
                self.last_error = str(exc)
                if not isinstance(exc, FacelensError):
                    log.exception("camera %s failed", self.name)
                if not self.spec.live:
                    log.error("camera %s: %s", self.name, exc)
                    self._set("failed")
                    return
                # a source that delivered frames before it failed starts the back-off afresh
                failures = 1 if self.frames_read > delivered else failures + 1
                delay = self._backoff.delay(failures)
                log.warning("camera %s: %s; retrying in %.0f s", self.name, exc, delay)
                self._set("retrying")
                if self._stop.wait(delay):
                    return
                self.reconnects += 1

    def _offer(self, frame: Frame) -> bool:
        """Hand a frame over: live sources replace an untaken one, files wait for it to go."""
        with self._cond:
            if not self.spec.live:
                self._cond.wait_for(lambda: self._slot is None or self._stop.is_set())
            if self._stop.is_set():
                return False
            self._slot = frame
            self.frames_read += 1
            self._cond.notify_all()
        return True

    def _take(self) -> Frame:  # called with the condition held
        frame, self._slot = self._slot, None
        assert frame is not None
        self.frames_taken += 1
        self._taken_at.append(time.monotonic())
        self._cond.notify_all()
        return frame


class Cameras:
    """Several cameras read at once; :meth:`frames` interleaves their newest frames."""

    def __init__(self, specs: Sequence[CameraSpec], backoff: Backoff | None = None) -> None:
        self._cond = threading.Condition()
        self.cameras = [Camera(s, self._cond, backoff or Backoff()) for s in specs]

    def start(self) -> None:
        for camera in self.cameras:
            camera.start()

    def __enter__(self) -> Cameras:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for camera in self.cameras:
            camera.stop()

    def frames(self, stop: threading.Event | None = None) -> Iterator[tuple[Camera, Frame]]:
        """``(camera, frame)`` round-robin until every camera has ended (or ``stop`` is set)."""
        stop = stop or threading.Event()
        turn = 0
        while not stop.is_set():
            with self._cond:
                n = len(self.cameras)
                order = [self.cameras[(turn + i) % n] for i in range(n)]
                ready = next((c for c in order if c._slot is not None), None)
                if ready is None:
                    if all(c.finished for c in self.cameras):
                        return
                    self._cond.wait(0.25)
                    continue
                frame = ready._take()
            turn = (self.cameras.index(ready) + 1) % n
            yield ready, frame
