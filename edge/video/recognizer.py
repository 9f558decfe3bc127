"""Recognition over a video: detect on some frames, follow the tracks in between, vote.

Full-frame detection (YuNet at 640 px) is the largest stage of a frame. Between two
full detections :class:`VideoRecognizer` looks for each live track's face only in a
small window around where it was (a few hundred pixels instead of 307,200), so a
face that stays is followed every frame; a face that *enters* is found at the next
full detection, ``detect_every - 1`` frames late at most. ``benchmarks/pipeline.py``
measures what that costs in missed faces against full detection on every frame.

Faces are named by :meth:`edge.FaceLens.recognize` (given the faces, so it does not
detect again): one too small or blurred to tell is reported as "can't tell" and casts
no vote. The :class:`~edge.video.track.Tracker` turns the
frames into labels ("deciding…" until confident) and appearances. :class:`CameraTracks`
keeps one recognizer per camera, for the services that watch several (and publish
each appearance as it is decided: :mod:`edge.service.mqtt`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Protocol

import cv2
import numpy as np

from edge.faces.detect import Face
from edge.media.sources import Frame
from edge.results import Lens, with_total
from edge.video.loop import FrameResult
from edge.video.track import Observation, Step, Tracker, iou

DETECT_EVERY = 5  # at 25 FPS a face entering is found within 0.16 s
APPEARANCE_GAP_S = 2.0  # a person unseen for longer appears anew (cameras, events)
FOLLOW_PX = 64  # a followed face is looked for at this size (px), never larger
WINDOW_PX = 128  # ... in a window of this size (a constant size: YuNet need not re-plan)
# Faces less alike than the linking floor never join a track (two people crossing). It
# must lie well under the match threshold, or a linked face could never be unlike enough
# to split the track: 0.3, or half the threshold when that is lower (SFace's is ~0.3;
# dlib's 0.91 keeps 0.3).
LINK_FLOOR = 0.3
LINK_FRACTION = 0.5


def _window(box: tuple[float, ...], shape: tuple[int, ...], grow: float) -> tuple[int, ...]:
    """The box widened by ``grow`` box sizes on every side, clipped to the image."""
    x, y, w, h = box
    side = max(w, h)
    ih, iw = shape[:2]
    x0, y0 = max(0, int(x - grow * side)), max(0, int(y - grow * side))
    x1, y1 = min(iw, int(x + w + grow * side)), min(ih, int(y + h + grow * side))
    return x0, y0, x1, y1


def _to_frame(face: Face, dx: int, dy: int, scale: float) -> Face:
    """A face found in a window shrunk by ``scale`` at (dx, dy), in frame coordinates."""
    x, y, w, h = (v / scale for v in face.box)
    marks = None if face.landmarks is None else face.landmarks / scale + np.float32([dx, dy])
    return Face((x + dx, y + dy, w, h), face.score, marks)


def tracker_for(lens: Lens, **settings: float | None) -> Tracker:
    """A :class:`Tracker` for ``lens``'s model: a decided track splits on faces that its
    matcher would not call the track's person, and faces link from a floor under that
    (``settings`` as :class:`Tracker` takes)."""
    threshold = lens.threshold.value
    floor = min(LINK_FLOOR, LINK_FRACTION * threshold)
    return Tracker(split_below=threshold, **{"min_similarity": floor, **settings})


class VideoRecognizer:
    """Names the faces of consecutive frames of one source, following them as tracks.

    ``detect_every=1`` detects on every full frame (no following); ``5`` detects on
    every fifth frame and follows tracks in between. ``fps`` (a video file's frame rate)
    makes appearance times seconds into the video; without it they are epoch seconds.
    Use :meth:`edge.FaceLens.video` to make one.
    """

    def __init__(
        self,
        lens: Lens,
        detect_every: int = DETECT_EVERY,
        fps: float = 0.0,
        tracker: Tracker | None = None,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every={detect_every}: detect on at least every frame")
        self.lens = lens
        self.tracker = tracker or tracker_for(lens)
        self.detect_every = detect_every
        self.fps = fps

    def _timestamp(self, frame: Frame) -> float:
        """Seconds into a video file (``fps`` given), else the wall clock (epoch seconds)."""
        return frame.index / self.fps if self.fps > 0 else time.time()

    def _follow(self, image: np.ndarray) -> list[Face]:
        """Each live track's face, looked for in a window around its last box."""
        detector = self.lens.pipeline.detector
        faces: list[Face] = []
        for track in self.tracker.tracks:
            if track.missed > 1:  # lost: wait for the next full detection
                continue
            x0, y0, x1, y1 = _window(track.box, image.shape, grow=0.6)
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            window = image[y0:y1, x0:x1]
            # shrunk so the face is ~FOLLOW_PX and pasted on a fixed-size canvas: YuNet
            # finds it as well as at full size, on a fiftieth of a 640x480 frame's pixels
            side = max(track.box[2], track.box[3], 1.0)
            scale = min(1.0, FOLLOW_PX / side, WINDOW_PX / max(window.shape[:2]))
            h, w = (max(1, round(v * scale)) for v in window.shape[:2])
            canvas = np.zeros((WINDOW_PX, WINDOW_PX, 3), np.uint8)
            canvas[:h, :w] = cv2.resize(window, (w, h), interpolation=cv2.INTER_AREA)
            found = [_to_frame(f, x0, y0, scale) for f in detector.detect(canvas)]
            found = [f for f in found if iou(f.box, track.box) > 0.1]
            if found:
                best = max(found, key=lambda f: iou(f.box, track.box))
                if all(iou(best.box, f.box) < 0.5 for f in faces):
                    faces.append(best)
        return faces

    def __call__(self, frame: Frame, t: float | None = None) -> FrameResult:
        """Name one frame's faces, seen at ``t`` seconds (default: from ``fps`` or the clock).

        ``result.decided`` holds the appearances decided at this frame, and
        ``result.appearances`` the ones that ended.
        """
        image = frame.image
        pipeline = self.lens.pipeline
        t0 = time.perf_counter()
        full = (
            pipeline.detector is None
            or frame.index % self.detect_every == 0
            or not self.tracker.tracks
        )
        faces = pipeline.faces(image) if full else self._follow(image)
        t1 = time.perf_counter()
        named = self.lens.recognize(image, faces)
        t2 = time.perf_counter()
        observations = [
            Observation(face.box, embedding, face.name, face.score, face.problem)
            for face, embedding in zip(named.faces, named.embeddings, strict=True)
        ]
        step = self.tracker.update(self._timestamp(frame) if t is None else t, observations)
        ms = {**named.ms, "decode": frame.decode_ms, "detect": (t1 - t0) * 1000}
        ms["match"] += (time.perf_counter() - t2) * 1000  # matching and tracking
        ms = with_total(ms)
        faces_out = [
            replace(face, track_id=tf.track_id, label=tf.label)
            for face, tf in zip(named.faces, step.faces, strict=True)
        ]
        return FrameResult(frame, faces_out, ms, step.ended, step.decided, named.embeddings)

    def finish(self) -> Step:
        """End the appearances still open when the source ends (``.ended``), deciding
        those never decided (``.decided``)."""
        return self.tracker.finish()


class Feed(Protocol):
    """What :class:`CameraTracks` needs of a :class:`~edge.media.cameras.Camera` (or of a
    source read in place): its name, whether it is photos, and when a frame was seen."""

    @property
    def name(self) -> str: ...

    @property
    def stills(self) -> bool: ...

    def clock(self, frame_index: int) -> float: ...


class CameraTracks:
    """One :class:`VideoRecognizer` per camera, made at the camera's first frame.

    A video or live camera is followed as a video (``detect_every``); a folder of photos
    is detected photo by photo, each face its own appearance decided on its one vote.
    A person unseen for ``gap_s`` seconds of the camera's clock (default 2) appears anew. Calls
    must come from one thread (the recognizers share ``lens``).
    """

    def __init__(
        self, lens: Lens, detect_every: int = DETECT_EVERY, gap_s: float | None = None
    ) -> None:
        self.lens = lens
        self.detect_every = detect_every
        self.gap_s = APPEARANCE_GAP_S if gap_s is None else gap_s
        self._recognizers: dict[str, VideoRecognizer] = {}

    def _recognizer(self, camera: Feed) -> VideoRecognizer:
        if camera.stills:  # unrelated photos: nothing to follow, nothing to wait for
            tracker = tracker_for(self.lens, max_gap_s=self.gap_s, min_votes=1, min_frames=1)
            return VideoRecognizer(self.lens, 1, tracker=tracker)
        tracker = tracker_for(self.lens, max_gap_s=self.gap_s)
        return VideoRecognizer(self.lens, self.detect_every, tracker=tracker)

    def __call__(self, camera: Feed, frame: Frame) -> FrameResult:
        """Name one frame of ``camera``, following its faces from the frames before."""
        recognizer = self._recognizers.get(camera.name)
        if recognizer is None:
            recognizer = self._recognizers[camera.name] = self._recognizer(camera)
        return recognizer(frame, camera.clock(frame.index))

    def finish(self) -> dict[str, Step]:
        """End every camera's open appearances (the cameras stopped), by camera name."""
        return {name: r.finish() for name, r in self._recognizers.items()}
