"""`edge serve --frigate` names Frigate's person events, end to end through a real Mosquitto.

Frigate itself cannot run here (it needs cameras, ffmpeg and its detectors), so a small
STAND-IN serves exactly the parts of Frigate's documented API and MQTT topic that the
flow uses: events on ``frigate/events`` ({"type", "before", "after": {"id", "camera",
"label", "false_positive", ...}}), ``GET /api/events/<id>/snapshot.jpg`` (404 with
``{"success": false, "message"}`` for an unknown event) and ``POST
/api/events/<id>/sub_label`` taking ``{"subLabel", "subLabelScore"}``, as in Frigate's
frigate/api/media.py, frigate/api/event.py and docs/integrations/mqtt.md.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="edge serve needs the serve extra (FastAPI, uvicorn)")
from .test_serve import Server, person_photos, start_server, upload

mqtt = pytest.importorskip("paho.mqtt.client", reason="--frigate needs paho-mqtt (the mqtt extra)")


class StandInFrigate:
    """Frigate's snapshot and sub-label endpoints over events it is given (a stand-in)."""

    def __init__(self) -> None:
        self.snapshots: dict[str, bytes] = {}
        self.fetched: list[str] = []
        self.sub_labels: list[tuple[str, dict]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _event(self, suffix: str) -> str | None:
                parts = self.path.split("/")  # /api/events/<id>/<suffix>
                ok = len(parts) == 5 and parts[:3] == ["", "api", "events"] and parts[4] == suffix
                return parts[3] if ok and parts[3] in stand_in.snapshots else None

            def _missing(self) -> None:
                body = {"success": False, "message": "Event not found"}
                self._answer(404, json.dumps(body).encode())

            def do_GET(self) -> None:
                event_id = self._event("snapshot.jpg")
                if event_id is None:
                    return self._missing()
                stand_in.fetched.append(event_id)
                self._answer(200, stand_in.snapshots[event_id], "image/jpeg")

            def do_POST(self) -> None:
                event_id = self._event("sub_label")
                if event_id is None:
                    return self._missing()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.sub_labels.append((event_id, body))
                message = f"Event {event_id} sub label set to {body['subLabel']}"
                self._answer(200, json.dumps({"success": True, "message": message}).encode())

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


def frigate_event(kind: str, event_id: str, label: str = "person", **after: object) -> bytes:
    state = {"id": event_id, "camera": "front_door", "label": label, "sub_label": None,
             "false_positive": False, "has_snapshot": True, "end_time": None, **after}  # fmt: skip
    return json.dumps({"type": kind, "before": state, "after": state}).encode()


@pytest.fixture
def stand_in() -> Iterator[StandInFrigate]:
    frigate = StandInFrigate()
    yield frigate
    frigate.http.shutdown()


def wait_for(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.1)


def test_one_sub_label_per_person_event(tmp_path: Path, dlib_bundle, yunet_path, lfw_dir,
                                        mosquitto, stand_in: StandInFrigate):  # fmt: skip
    tony, colin = (person_photos(lfw_dir, n) for n in ("Tony_Blair", "Colin_Powell"))
    stand_in.snapshots.update(
        tony=tony[3].read_bytes(), colin=colin[0].read_bytes(), car=tony[5].read_bytes(),
        later=tony[6].read_bytes(),
    )  # fmt: skip
    server: Server = start_server(tmp_path, dlib_bundle.path, "--detector", str(yunet_path),
                                  "--mqtt", mosquitto.url, "--frigate", stand_in.url)  # fmt: skip
    try:
        with server.client() as http:
            assert http.put("/v1/people/Tony Blair", files=upload(tony[0])).status_code == 200
        frigate = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)  # Frigate's own publisher
        frigate.connect("127.0.0.1", mosquitto.port)
        frigate.loop_start()
        for payload in (
            frigate_event("new", "tony"),
            frigate_event("update", "tony"),  # a better snapshot: already named, not again
            frigate_event("new", "colin"),  # a stranger: no sub-label
            frigate_event("new", "car", label="car"),  # not a person: not even fetched
            frigate_event("new", "ghost", false_positive=True),
            frigate_event("end", "tony", end_time=1.0),
            frigate_event("new", "later"),  # after the others in the one queue
        ):
            frigate.publish("frigate/events", payload, qos=1).wait_for_publish(10)
        wait_for(lambda: any(e == "later" for e, _ in stand_in.sub_labels), "the last sub-label")
        frigate.loop_stop()
        frigate.disconnect()
    finally:
        assert server.stop() == 130
    labels = dict(stand_in.sub_labels)
    assert len(stand_in.sub_labels) == 2 and labels.keys() == {"tony", "later"}
    assert (
        labels["tony"]["subLabel"] == "Tony Blair" and 0.7 <= labels["tony"]["subLabelScore"] <= 1
    )
    assert "colin" in stand_in.fetched and "car" not in stand_in.fetched
    assert "ghost" not in stand_in.fetched
    # the update was queued before the name was written, and skipped once it was
    assert stand_in.fetched.count("tony") == 1
