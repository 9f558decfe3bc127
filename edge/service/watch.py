"""What ``edge serve`` keeps of its cameras for the web page: the live view, and (with
``--keep-recent``) each appearance's best face, with an event when a visitor returns.

The live view is each camera's latest frame with its boxes and names, in memory only
and replaced by the next frame. Everything here runs on the engine thread.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import cv2
import numpy as np

from edge.api import FaceLens
from edge.gallery.recent import Recent
from edge.results import Identity, Recognition
from edge.service.mqtt import MqttEvents
from edge.video.draw import annotate
from edge.video.keep import Keeper
from edge.video.loop import FrameResult
from edge.video.track import Appearance

VISITOR_TOPIC = "visitor"  # <prefix>/<camera>/visitor: a grouped unknown visitor is back


class Watch:
    """The cameras' latest frames and, with ``keep_days``, the appearances kept."""

    def __init__(
        self, fl: FaceLens, keep_days: float | None = None, events: MqttEvents | None = None
    ) -> None:
        self.fl, self.events = fl, events
        self.keeper = Keeper(Recent(fl.gallery), fl.fingerprint, keep_days) if keep_days else None
        self._latest: dict[str, tuple[np.ndarray, list[Identity]]] = {}
        self._lock = threading.Lock()  # the live view is read from the web's threads

    def frame(self, camera: str, result: FrameResult) -> list[dict[str, Any]]:
        """Note one camera frame; keep the appearances that ended; visitor events sent."""
        with self._lock:
            self._latest[camera] = (result.frame.image, result.faces)
        if self.keeper is None:
            return []
        return self._returning(camera, self.keeper.frame(camera, result))

    def ended(self, camera: str, appearances: list[Appearance]) -> list[dict[str, Any]]:
        """The camera stopped: keep what was still in view."""
        if self.keeper is None:
            return []
        return self._returning(camera, self.keeper.ended(camera, appearances))

    def photo(self, image: np.ndarray, recognition: Recognition) -> list[int]:
        """An identify call's faces, kept as appearances of the camera ``http``."""
        return self.keeper.photo("http", image, recognition) if self.keeper else []

    def live(self, camera: str) -> bytes | None:
        """The camera's latest frame with boxes and names, as JPEG (None: no frame yet)."""
        with self._lock:
            latest = self._latest.get(camera)
        if latest is None:
            return None
        ok, data = cv2.imencode(
            ".jpg", annotate(latest[0], latest[1]), [cv2.IMWRITE_JPEG_QUALITY, 75]
        )
        return data.tobytes() if ok else None

    def _returning(self, camera: str, kept: list[int]) -> list[dict[str, Any]]:
        """A visitor event for each kept unknown appearance that joins an earlier one's group."""
        if self.events is None or not kept:
            return []
        recent = self.fl.review.recent
        if all(recent.get(i).status != "unknown" for i in kept):
            return []  # grouping every kept stranger is for strangers' appearances only
        sent = []
        for visitor in self.fl.review.visitors(self.fl.threshold.value):
            ids = [k.id for k in visitor.appearances]
            if len(ids) > 1 and ids[0] in kept:
                event = {
                    "visitor": visitor.number,
                    "seen": len(ids),
                    "camera": camera,
                    "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    "device": self.events.device,
                    "appearance": ids[0],
                }
                self.events.publish(event, VISITOR_TOPIC)
                sent.append(event)
        return sent
