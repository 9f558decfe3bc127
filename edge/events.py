"""Person events over MQTT: one message per appearance, never a frame.

A device publishes to a broker (Mosquitto, or a clustered one) that carries the fleet:

- ``<prefix>/<camera>/person``: one JSON message each time a person appears on a
  camera — ``{"name": "Tony Blair" | "unknown", "score", "camera", "time", "device",
  "box"}``, plus ``"image"`` (a base64 JPEG of the face) only when asked for;
- ``<prefix>/devices/<device>/availability``: ``online``, retained, and ``offline``
  as the connection's last will, so a device that dies is seen as gone;
- optionally Home Assistant MQTT discovery: one retained sensor per camera whose state
  is the last person seen, with the event's fields as attributes.

paho-mqtt (the ``mqtt`` extra) is imported only when a publisher is made.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from edge.errors import FacelensError
from edge.track import iou

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "facelens"
PASSWORD_ENV = "FACELENS_MQTT_PASSWORD"
_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class MqttError(FacelensError):
    """The broker cannot be reached, refuses us, or its URL is malformed."""


def topic_name(text: str) -> str:
    """``text`` as one MQTT topic level: no ``/``, ``+``, ``#`` or spaces."""
    return _TOPIC_UNSAFE.sub("_", text).strip("_") or "unnamed"


@dataclass(frozen=True)
class Broker:
    """Where to publish: ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> Broker:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise MqttError(
                f"{url!r} is not a broker URL: give mqtt://HOST[:PORT] (or mqtts:// for TLS), "
                "e.g. mqtt://127.0.0.1:1883"
            )
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise MqttError(f"{url!r} has a bad port: give a number from 1 to 65535") from None
        password = unquote(parts.password) if parts.password else os.environ.get(PASSWORD_ENV)
        return cls(
            host=parts.hostname,
            port=port,
            tls=parts.scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=password,
        )

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class Sighting(Protocol):
    """What events need of a recognised face (``edge.Identity`` has it)."""

    name: str | None
    score: float
    box: tuple[float, float, float, float]


# -- appearances --------------------------------------------------------------------------
# Deliberately minimal and self-contained: one event per appearance, where an appearance
# ends when its person has not been seen for `gap_s`. Unknown faces are followed by box
# overlap. A tracker with votes (edge/track.py, issue 11) can replace this class whole.


@dataclass
class _Seen:
    name: str | None
    box: tuple[float, ...]
    last: float


class Appearances:
    """Says which faces of a frame start a new appearance on their camera."""

    def __init__(self, gap_s: float = 2.0, min_iou: float = 0.2) -> None:
        self.gap_s = gap_s
        self.min_iou = min_iou
        self._seen: dict[str, list[_Seen]] = {}

    def new(self, camera: str, faces: Iterable[Sighting], t: float) -> list[Sighting]:
        """The faces seen at time ``t`` (seconds) that were not on ``camera`` just before."""
        live = [s for s in self._seen.get(camera, []) if t - s.last <= self.gap_s]
        fresh = []
        for face in faces:
            if face.name is not None:
                same = next((s for s in live if s.name == face.name), None)
            else:
                same = max(
                    (s for s in live if s.name is None and iou(s.box, face.box) >= self.min_iou),
                    key=lambda s: iou(s.box, face.box),
                    default=None,
                )
            if same is None:
                same = _Seen(face.name, face.box, t)
                live.append(same)
                fresh.append(face)
            same.box, same.last = face.box, t
        self._seen[camera] = live
        return fresh


# -- events -------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def face_jpeg(image: np.ndarray, box: tuple[float, ...], quality: int = 85) -> bytes:
    """The face's box cut from ``image`` as JPEG bytes (for events that ask for images)."""
    h, w = image.shape[:2]
    x, y, bw, bh = box
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(w, int(x + bw)), min(h, int(y + bh))
    crop = image[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else image
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes() if ok else b""


def person_event(
    face: Sighting, camera: str, device: str, image: np.ndarray | None = None
) -> dict[str, Any]:
    """The JSON body of one appearance; ``image`` adds the face as base64 JPEG."""
    event: dict[str, Any] = {
        "name": face.name if face.name is not None else "unknown",
        "score": round(float(face.score), 4),
        "camera": camera,
        "time": _now(),
        "device": device,
        "box": [round(float(v), 1) for v in face.box],
    }
    if image is not None:
        event["image"] = base64.b64encode(face_jpeg(image, face.box)).decode("ascii")
    return event


class MqttEvents:
    """Publishes person events of some cameras to one broker, with availability.

    Connects on creation (a broker that cannot be reached is an :class:`MqttError`), then
    paho's network thread reconnects by itself; ``online`` and the discovery configs are
    re-sent on every connect. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        cameras: Iterable[str] = (),
        *,
        device: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        discovery: bool = False,
        images: bool = False,
        gap_s: float = 2.0,
        timeout: float = 10.0,
    ) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise MqttError("MQTT events need paho-mqtt: pip install 'facelens[mqtt]'") from None
        self.broker = Broker.parse(url)
        self.device = topic_name(device or socket.gethostname())
        self.prefix = prefix
        self.cameras = [topic_name(c) for c in cameras]
        self.discovery = discovery
        self.images = images
        self.appearances = Appearances(gap_s)
        self.published = 0
        self.availability_topic = f"{prefix}/devices/{self.device}/availability"
        self._connected = threading.Event()
        self._refused: str | None = None
        self._lock = threading.Lock()
        self._pending: list[Any] = []  # QoS 1 messages not yet acknowledged
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"facelens-{self.device}-{uuid.uuid4().hex[:8]}",
        )
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set()
        client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client
        try:
            client.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as exc:
            raise MqttError(
                f"cannot reach the MQTT broker {self.broker} ({exc.strerror or exc}): is "
                "Mosquitto running there (`systemctl status mosquitto`)? check the host and port"
            ) from None
        client.loop_start()
        if not self._connected.wait(timeout) or self._refused:
            self.close(publish_offline=False)
            raise MqttError(
                f"the MQTT broker {self.broker} "
                + (
                    f"refused the connection ({self._refused}): check the user and password"
                    if self._refused
                    else f"did not answer within {timeout:.0f} s"
                )
            )
        log.info("publishing person events to %s as device %s", self.broker, self.device)

    # paho calls these from its network thread
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self._connected.set()
            return
        client.publish(self.availability_topic, "online", qos=1, retain=True)
        if self.discovery:
            for camera in self.cameras:
                topic, config = self.discovery_config(camera)
                client.publish(topic, json.dumps(config), qos=1, retain=True)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code != 0:
            log.warning("lost the MQTT broker %s (%s); reconnecting", self.broker, reason_code)

    def person_topic(self, camera: str) -> str:
        return f"{self.prefix}/{topic_name(camera)}/person"

    def discovery_config(self, camera: str) -> tuple[str, dict[str, Any]]:
        """Home Assistant's discovery topic and config for ``camera``'s person sensor."""
        uid = f"facelens_{self.device}_{camera}"
        config = {
            "name": f"{camera} person",
            "unique_id": f"{uid}_person",
            "state_topic": self.person_topic(camera),
            "value_template": "{{ value_json.name }}",
            "json_attributes_topic": self.person_topic(camera),
            "availability_topic": self.availability_topic,
            "payload_available": "online",
            "payload_not_available": "offline",
            "icon": "mdi:face-recognition",
            "device": {
                "identifiers": [f"facelens_{self.device}"],
                "name": f"facelens {self.device}",
                "manufacturer": "facelens",
            },
        }
        return f"homeassistant/sensor/{uid}/config", config

    def publish(self, event: dict[str, Any]) -> None:
        """Publish one event (QoS 1: paho queues it while the broker is away)."""
        info = self._client.publish(self.person_topic(event["camera"]), json.dumps(event), qos=1)
        with self._lock:
            self.published += 1
            self._pending = [i for i in self._pending if not i.is_published()] + [info]

    def frame(
        self, camera: str, faces: Iterable[Sighting], t: float, image: np.ndarray | None = None
    ) -> list[dict[str, Any]]:
        """Publish an event for each face of a frame that starts an appearance; returns them."""
        events = [
            person_event(face, camera, self.device, image if self.images else None)
            for face in self.appearances.new(camera, faces, t)
        ]
        for event in events:
            self.publish(event)
        return events

    def close(self, publish_offline: bool = True, timeout: float = 5.0) -> None:
        """Say ``offline`` (retained), flush what is queued and disconnect."""
        client = self._client
        if publish_offline and client.is_connected():
            with self._lock:
                pending = [*self._pending]
            pending.append(client.publish(self.availability_topic, "offline", qos=1, retain=True))
            try:
                for info in pending:
                    info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:  # disconnected meanwhile
                log.warning("could not flush the events to %s (%s)", self.broker, exc)
        client.disconnect()
        client.loop_stop()

    def __enter__(self) -> MqttEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
