"""Person events over MQTT: one message per appearance, never a frame.

A device publishes to a broker (Mosquitto, or a clustered one) that carries the fleet:

- ``<prefix>/<camera>/person``: one JSON message each time a person appears on a
  camera, sent when the appearance's identity is decided (the tracker's vote, see
  :mod:`edge.video.track`: a few frames after they arrive, not when they leave) —
  ``{"name": "Tony Blair" | "unknown", "status": "known" | "unknown" | "unclear",
  "score", "camera", "time", "device", "box"}``, plus ``"image"`` (a base64 JPEG of
  the face) only when asked for;
- ``<prefix>/devices/<device>/availability``: ``online``, retained, and ``offline``
  as the connection's last will, so a device that dies is seen as gone;
- optionally Home Assistant MQTT discovery (:mod:`edge.service.homeassistant`): a sensor
  per camera (who is in view, ``none`` at rest) and a presence sensor per person enrolled.

paho-mqtt (the ``mqtt`` extra) is imported only when a publisher is made.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from edge.base.errors import FacelensError
from edge.base.names import topic_name
from edge.service import homeassistant as ha

if TYPE_CHECKING:
    from edge.video.loop import FrameResult
    from edge.video.track import Appearance

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "facelens"
PASSWORD_ENV = "FACELENS_MQTT_PASSWORD"
KEPT_FACES = 64  # faces of recent tracks kept for --mqtt-images (far more than are in view)


class MqttError(FacelensError):
    """The broker cannot be reached, refuses us, or its URL is malformed."""


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


def paho_client(mqtt: Any, broker: Broker, device: str) -> Any:
    """A paho client (``mqtt``: the imported module) for ``broker``: its credentials and
    TLS, reconnecting by itself 1-30 s apart."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"facelens-{device}-{uuid.uuid4().hex[:8]}"
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


# -- events -------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def face_crop(image: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """The face's box cut from ``image`` (a copy; the whole image if the box is outside)."""
    h, w = image.shape[:2]
    x, y, bw, bh = box
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(w, int(x + bw)), min(h, int(y + bh))
    return (image[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else image).copy()


def jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """``image`` as JPEG bytes (for events that ask for images)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes() if ok else b""


def person_event(
    appearance: Appearance, camera: str, device: str, face: np.ndarray | None = None
) -> dict[str, Any]:
    """The JSON body of one appearance, as known when it was decided; ``face`` (the face's
    pixels) adds it as a base64 JPEG."""
    event: dict[str, Any] = {
        "name": appearance.name if appearance.name is not None else "unknown",
        "status": appearance.status,
        "score": round(float(appearance.best_score), 4),
        "camera": camera,
        "time": _now(),
        "device": device,
        "box": [round(float(v), 1) for v in appearance.box],
    }
    if face is not None:
        event["image"] = base64.b64encode(jpeg(face)).decode("ascii")
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
        timeout: float = 10.0,
        away_after_s: float = ha.DEFAULT_AWAY_AFTER_S,
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
        self.away_after_s = away_after_s
        self.published = 0
        self._people: set[str] = set()  # whose presence sensors are announced
        self._in_view: dict[str, set[int]] = {}  # camera -> tracks decided and not yet ended
        # (camera, track) -> the face's latest pixels, newest last: an appearance may be
        # decided when it ends, its face gone; bounded, as short tracks end unreported
        self._faces: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self.availability_topic = f"{prefix}/devices/{self.device}/availability"
        self._connected = threading.Event()
        self._refused: str | None = None
        self._lock = threading.Lock()
        self._pending: list[Any] = []  # QoS 1 messages not yet acknowledged
        self._client = self._new_client(mqtt)
        self._connect(timeout)
        log.info("publishing person events to %s as device %s", self.broker, self.device)

    def _new_client(self, mqtt: Any) -> Any:
        """A paho client for the broker: credentials, TLS, last will, reconnect delays."""
        client = paho_client(mqtt, self.broker, self.device)
        client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        return client

    def _connect(self, timeout: float) -> None:
        """Connect and wait for the broker's answer; an unreachable or refusing broker,
        or none within ``timeout`` seconds, is an :class:`MqttError`."""
        try:
            self._client.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as exc:
            raise MqttError(
                f"cannot reach the MQTT broker {self.broker} ({exc.strerror or exc}): is "
                "Mosquitto running there (`systemctl status mosquitto`)? check the host and port"
            ) from None
        self._client.loop_start()
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

    # paho calls these from its network thread
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self._connected.set()
            return
        client.publish(self.availability_topic, "online", qos=1, retain=True)
        if self.discovery:
            configs = [self.discovery_config(camera) for camera in self.cameras]
            with self._lock:
                configs += [self._person_config(name) for name in sorted(self._people)]
            for topic, config in configs:
                client.publish(topic, json.dumps(config), qos=1, retain=True)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code != 0:
            log.warning("lost the MQTT broker %s (%s); reconnecting", self.broker, reason_code)

    def discovery_config(self, camera: str) -> tuple[str, dict[str, Any]]:
        """Home Assistant's discovery topic and config for ``camera``'s person sensor."""
        return ha.camera_config(self.prefix, self.device, camera, self.availability_topic)

    def _person_config(self, name: str) -> tuple[str, dict[str, Any]]:
        return ha.person_config(
            self.prefix, self.device, name, self.availability_topic, self.away_after_s
        )

    def people(self, names: Iterable[str]) -> None:
        """Who is enrolled now: with discovery, announce a presence sensor for each newcomer
        and remove the sensor (and its state) of each person gone."""
        names = set(names)
        with self._lock:
            new, gone = names - self._people, self._people - names
            self._people = names
        if not self.discovery:
            return
        for name in sorted(new):
            topic, config = self._person_config(name)
            self._send(topic, json.dumps(config), retain=True)
        for name in sorted(gone):  # an empty retained config removes the entity in HA
            self._send(self._person_config(name)[0], "", retain=True)
            self._send(ha.person_state_topic(self.prefix, self.device, name), "", retain=True)

    def person_changed(self, kind: str, name: str | None) -> None:
        """A :meth:`edge.FaceLens.on_change` listener: one person enrolled or forgotten."""
        with self._lock:
            people = set(self._people)
        if kind == "enroll" and name is not None:
            self.people(people | {name})
        elif kind == "forget" and name is not None:
            self.people(people - {name})

    def _send(self, topic: str, payload: str, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        with self._lock:
            self._pending = [i for i in self._pending if not i.is_published()] + [info]

    def _states(self, camera: str, decided: list[Appearance], ended: list[Appearance]) -> None:
        """Home Assistant's states: who is in view on ``camera`` (``none`` once the last
        appearance ends) and, for each person named, ``home``."""
        view = self._in_view.setdefault(camera, set())
        state = ha.camera_state_topic(self.prefix, camera)
        for a in decided:
            view.add(a.track_id)
            self._send(state, a.name if a.name is not None else "unknown", retain=True)
            if a.name is not None and a.name in self._people:
                self._send(ha.person_state_topic(self.prefix, self.device, a.name), ha.HOME)
        for a in ended:
            view.discard(a.track_id)
        if ended and not view:
            self._send(state, ha.AT_REST, retain=True)

    def publish(self, event: dict[str, Any], kind: str = "person") -> None:
        """Publish one event to ``<prefix>/<camera>/<kind>`` (QoS 1: paho queues it while
        the broker is away)."""
        self._send(f"{self.prefix}/{topic_name(event['camera'])}/{kind}", json.dumps(event))
        with self._lock:
            self.published += 1

    def frame(self, camera: str, result: FrameResult) -> list[dict[str, Any]]:
        """Publish the appearances of ``camera`` decided at this frame; returns the events.

        ``result`` comes from a recognizer that follows faces
        (:class:`edge.video.recognizer.CameraTracks`).
        """
        if self.images:  # an appearance may be decided after its face has gone: keep it
            for face in result.faces:
                if face.track_id is not None:
                    self._faces[camera, face.track_id] = face_crop(result.frame.image, face.box)
                    self._faces.move_to_end((camera, face.track_id))
            while len(self._faces) > KEPT_FACES:
                self._faces.popitem(last=False)
        return self.appearances(camera, result.decided, result.appearances)

    def appearances(
        self, camera: str, decided: Iterable[Appearance], ended: Iterable[Appearance] = ()
    ) -> list[dict[str, Any]]:
        """Publish an event for each decided appearance of ``camera``; returns the events."""
        decided, ended = list(decided), list(ended)
        events = []
        for appearance in decided:
            face = self._faces.get((camera, appearance.track_id)) if self.images else None
            events.append(person_event(appearance, camera, self.device, face))
            self.publish(events[-1])
        for appearance in ended:
            self._faces.pop((camera, appearance.track_id), None)
        if self.discovery:
            self._states(camera, decided, ended)
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
