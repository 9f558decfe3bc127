"""What the service's routes and its camera loop share: engine, cameras, events, metrics.

Each camera's faces are followed and decided as appearances (a person unseen for
``appearance_gap_s`` seconds, default 2, appears anew); the MQTT events publish each
one when it is decided. Every frame, face, error and event is counted for ``/metrics``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from edge.media.cameras import Camera, Cameras
from edge.media.sources import Frame
from edge.service.engine import Engine
from edge.service.fleet.sync import FleetSync
from edge.service.metrics import Metrics
from edge.service.mqtt import MqttEvents
from edge.service.watch import Watch
from edge.video.loop import FrameResult, recognize_cameras
from edge.video.recognizer import CameraTracks

Gauge = tuple[str, Mapping[str, str] | None, float]

SERIES = (
    ("facelens_http_requests_total", "counter", "HTTP requests by route and status"),
    ("facelens_http_request_seconds", "summary", "HTTP request latency by route"),
    ("facelens_frames_total", "counter", "images recognised, by camera (http = API calls)"),
    ("facelens_faces_total", "counter", "faces found, by camera"),
    ("facelens_stage_seconds", "summary", "recognition latency per stage"),
    ("facelens_errors_total", "counter", "recognition and camera errors, by camera"),
    ("facelens_events_total", "counter", "MQTT person events published, by camera"),
    ("facelens_camera_up", "gauge", "1 when the camera delivers frames"),
    ("facelens_camera_fps", "gauge", "frames recognised per second, last 5 s"),
    ("facelens_camera_reconnects_total", "counter", "times the camera was reopened"),
    ("facelens_camera_dropped_frames_total", "counter", "frames replaced by newer ones"),
    ("facelens_people", "gauge", "people enrolled"),
)


class Companion(Protocol):
    """Work that starts and stops with the service (``--frigate``'s listener)."""

    def start(self) -> None: ...

    def close(self) -> None: ...


class Service:
    """The engine with the cameras it watches, the events it publishes and its metrics."""

    def __init__(
        self,
        engine: Engine,
        cameras: Cameras | None = None,
        events: MqttEvents | None = None,
        appearance_gap_s: float | None = None,
        sync: FleetSync | None = None,
        keep_recent_days: float | None = None,
    ) -> None:
        self.engine, self.fl = engine, engine.fl
        self.watch = engine.call(Watch, engine.fl, keep_recent_days, events)
        self.cameras, self.events, self.sync = cameras, events, sync
        if events is not None:  # whoever enrols or forgets (API, web page, review, fleet)
            engine.fl.on_change(events.person_changed)
        self.metrics = Metrics()
        for name, kind, text in SERIES:
            self.metrics.describe(name, kind, text)
        self._tracks = CameraTracks(engine.fl, gap_s=appearance_gap_s)
        self.frigate: Companion | None = None  # names Frigate's person events (--frigate)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def camera_list(self) -> list[Camera]:
        return self.cameras.cameras if self.cameras else []

    def count(self, camera: str, faces: int, stage_ms: Mapping[str, float]) -> None:
        """One image recognised for ``camera`` (``http`` for API calls)."""
        self.metrics.inc("facelens_frames_total", {"camera": camera})
        self.metrics.inc("facelens_faces_total", {"camera": camera}, faces)
        for stage, ms in stage_ms.items():
            self.metrics.observe("facelens_stage_seconds", ms / 1000, {"stage": stage})

    def gauges(self, people: int) -> list[Gauge]:
        """The values read at scrape time: people enrolled and each camera's state."""
        out: list[Gauge] = [("facelens_people", None, people)]
        for c in self.camera_list:
            label = {"camera": c.name}
            out += [
                ("facelens_camera_up", label, 1.0 if c.up else 0.0),
                ("facelens_camera_fps", label, round(c.fps(), 2)),
                ("facelens_camera_reconnects_total", label, c.reconnects),
                ("facelens_camera_dropped_frames_total", label, c.frames_read - c.frames_taken),
            ]
        return out

    # -- the people enrolled --------------------------------------------------------------

    async def forget(self, name: str) -> int:
        """Erase ``name`` for good (as ``edge forget``); how many embeddings went (0: none).
        The events hear of it from the lens (Home Assistant's sensor for them goes)."""
        return await self.engine.run(self.fl.forget, name)

    # -- the camera loop ----------------------------------------------------------------

    def start(self) -> None:
        """Open the cameras and recognise their frames on a thread of their own."""
        if self.events is not None:  # who is enrolled: Home Assistant's person sensors
            self.events.people([p.name for p in self.engine.call(self.fl.people)])
        if self.frigate is not None:
            self.frigate.start()
        if self.cameras is None:
            return
        self.cameras.start()
        self._watcher = threading.Thread(target=self._watch, name="cameras", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop the camera loop, close the cameras, events and sync (not the engine)."""
        self._stop.set()
        if self.frigate is not None:
            self.frigate.close()
        if self.cameras is not None:
            self.cameras.close()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        if self.events is not None:
            self.events.close()
        if self.sync is not None:
            self.sync.close()

    def _watch(self) -> None:
        assert self.cameras is not None
        recognize_cameras(self.cameras, self._recognize, self._on_frame, self._on_error, self._stop)
        for name, step in self.engine.call(self._tracks.finish).items():  # cameras ended/stopped
            self._counted(self.engine.call(self.watch.ended, name, step.ended))
            if self.events is not None:
                self._counted(self.events.appearances(name, step.decided, step.ended))

    def _recognize(self, camera: Camera, frame: Frame) -> FrameResult:
        return self.engine.call(self._tracks, camera, frame)

    def _on_frame(self, camera: Camera, frame: Frame, result: FrameResult) -> None:
        self.count(camera.name, len(result.faces), result.ms)
        self._counted(self.engine.call(self.watch.frame, camera.name, result))
        if self.events is not None:
            self._counted(self.events.frame(camera.name, result))

    def _on_error(self, camera: Camera, exc: Exception) -> None:
        self.metrics.inc("facelens_errors_total", {"camera": camera.name})

    def _counted(self, published: list[dict[str, Any]]) -> None:
        for event in published:
            self.metrics.inc("facelens_events_total", {"camera": event["camera"]})
