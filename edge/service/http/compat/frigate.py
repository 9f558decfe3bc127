"""Frigate's person events, named: what Double Take did, inside ``edge serve``.

``edge serve --mqtt BROKER --frigate URL`` subscribes to ``frigate/events`` on the
broker Frigate publishes to. For each person event (``type`` new or update, ``label``
person, not a false positive) it fetches the event's snapshot from Frigate's HTTP API
(``GET URL/api/events/<id>/snapshot.jpg``), recognises it, and when facelens names
someone writes the name back as the event's sub-label (``POST URL/api/events/<id>/
sub_label`` with ``{"subLabel", "subLabelScore"}``, the score on the clients' scale of
:mod:`edge.service.http.compat.scores`). One sub-label per event: an event is retried on its
next updates while no one is named (a better snapshot may come), at most
:data:`MAX_TRIES` snapshots, never after it is named. Snapshots stay in memory.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
import uuid
from collections import OrderedDict
from typing import Any

from edge.base.errors import ImageError
from edge.media.images import decode_image
from edge.service.http.compat.faces import counted
from edge.service.mqtt import Broker, MqttError
from edge.service.state import Service

log = logging.getLogger(__name__)

TOPIC = "frigate/events"
MAX_TRIES = 3  # snapshots of one event (Frigate sends updates as it finds better ones)
REMEMBERED = 512  # events whose outcome is kept (far more than are in progress at once)
LABELLED = "labelled"


class Frigate:
    """Names the person events of one Frigate; runs on paho's thread and a worker of its own."""

    def __init__(self, url: str, broker: Broker, service: Service, timeout: float = 10.0):
        import paho.mqtt.client as mqtt

        self.url, self.broker = url.rstrip("/"), broker
        self.service, self.timeout = service, timeout
        self.labelled = 0
        self._tries: OrderedDict[str, int | str] = OrderedDict()  # event id -> tries | LABELLED
        self._lock = threading.Lock()  # _tries: paho's thread and the worker
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="frigate", daemon=True)
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"facelens-frigate-{uuid.uuid4().hex[:8]}"
        )
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set()
        client.on_connect = lambda c, *_: c.subscribe(TOPIC, qos=1)  # again on each reconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client = client

    def start(self) -> None:
        """Connect to the broker (reconnecting by itself) and start naming events."""
        self._worker.start()
        try:
            self._client.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as exc:
            raise MqttError(f"cannot reach the MQTT broker {self.broker} for Frigate's events "
                            f"({exc.strerror or exc}): check --mqtt") from None  # fmt: skip
        self._client.loop_start()
        log.info("naming Frigate's person events from %s via %s", self.url, self.broker)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._queue.put(None)
        self._worker.join(timeout=self.timeout + 5)

    # paho's network thread: decide quickly, leave the work to the worker
    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            event = json.loads(message.payload)
            after = event["after"]
            wanted = event.get("type") in ("new", "update") and after.get("label") == "person"
            wanted = wanted and not after.get("false_positive")
            event_id = str(after["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a message on %s that is no Frigate event", TOPIC)
            return
        with self._lock:
            tries = self._tries.get(event_id, 0)
            if not wanted or tries == LABELLED or tries >= MAX_TRIES:
                return
            self._remember(event_id, tries + 1)  # counted when queued: one fetch per message
        self._queue.put(event_id)

    def _remember(self, event_id: str, value: int | str) -> None:
        """Record an event's outcome (the caller holds the lock)."""
        self._tries[event_id] = value
        self._tries.move_to_end(event_id)
        while len(self._tries) > REMEMBERED:
            self._tries.popitem(last=False)

    def _work(self) -> None:
        while (event_id := self._queue.get()) is not None:
            with self._lock:
                done = self._tries.get(event_id) == LABELLED
            if done:
                continue  # named from an earlier snapshot while this one waited
            try:
                self._name(event_id)
            except (OSError, ImageError, ValueError) as exc:  # urllib's errors are OSErrors
                log.warning("Frigate event %s: %s", event_id, exc)
                self.service.metrics.inc("facelens_errors_total", {"camera": "frigate"})

    def _name(self, event_id: str) -> None:
        """Recognise the event's snapshot; write the best name back as its sub-label."""
        path = f"{self.url}/api/events/{event_id}"
        with urllib.request.urlopen(f"{path}/snapshot.jpg", timeout=self.timeout) as r:
            image = decode_image(r.read(), f"the snapshot of Frigate event {event_id}")
        result = self.service.engine.call(self.service.fl.recognize, image)
        known = [f for f in counted(self.service, "frigate", result) if f.name is not None]
        if not known:
            return
        best = max(known, key=lambda f: f.confidence)
        body = json.dumps({"subLabel": best.name, "subLabelScore": best.confidence}).encode()
        request = urllib.request.Request(
            f"{path}/sub_label", body, {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout):
            pass
        with self._lock:
            self._remember(event_id, LABELLED)
        self.labelled += 1
        log.info("Frigate event %s: %s (%.2f)", event_id, best.name, best.confidence)
