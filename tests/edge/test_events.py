"""MQTT events against a real Mosquitto on loopback: one message per decided appearance."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest

from edge.base.names import topic_name
from edge.media.sources import Frame
from edge.results import Identity
from edge.service.mqtt import Broker, MqttError, MqttEvents, person_event
from edge.video.loop import FrameResult
from edge.video.track import Appearance


def appearance(track_id=1, name=None, status="unknown", box=(1.04, 2.0, 30.0, 40.0)):
    return Appearance(track_id, name, status, 0.0, 0.4, 5, 0.41234, 0.4, box)


def test_event_body_has_no_image_unless_asked():
    event = person_event(appearance(), "door", "pi")
    assert event.keys() == {"name", "status", "score", "camera", "time", "device", "box"}
    assert (event["name"], event["status"]) == ("unknown", "unknown")
    assert (event["score"], event["box"]) == (0.4123, [1.0, 2, 30, 40])
    face = np.full((40, 30, 3), 128, np.uint8)
    assert len(person_event(appearance(), "door", "pi", face)["image"]) > 100  # base64 JPEG


@pytest.mark.parametrize(
    ("url", "match"),
    [("http://host", "not a broker URL"), ("mqtt://", "not a broker URL"), ("mqtt://h:x", "port")],
)
def test_bad_broker_urls_say_what_to_give(url, match):
    with pytest.raises(MqttError, match=match):
        Broker.parse(url)


def test_broker_url_parts(monkeypatch):
    monkeypatch.setenv("FACELENS_MQTT_PASSWORD", "from-env")
    b = Broker.parse("mqtts://ha@broker.lan")
    assert (b.host, b.port, b.tls) == ("broker.lan", 8883, True)
    assert (b.username, b.password) == ("ha", "from-env")
    assert Broker.parse("mqtt://u:p%40ss@h:1884").password == "p@ss"
    assert topic_name("front door/#1") == "front_door_1"


def test_unreachable_broker_is_a_clear_error():
    pytest.importorskip("paho.mqtt.client", reason="MQTT tests need paho-mqtt (the mqtt extra)")
    # A port held bound but never listening: connecting is refused, and no other process
    # can start listening there meanwhile (a port that was merely free once could be).
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        with pytest.raises(
            MqttError, match=rf"cannot reach the MQTT broker mqtt://127\.0\.0\.1:{port}"
        ):
            MqttEvents(f"mqtt://127.0.0.1:{port}")


def test_events_availability_and_discovery_on_a_real_broker(mosquitto, subscribe):
    sub = subscribe("facelens/#", "homeassistant/#")
    tony = appearance(7, "Tony", "known", (0, 0, 9, 9))
    with MqttEvents(mosquitto.url, ["door"], device="pi", discovery=True) as events:
        first = events.appearances("door", [tony])
        assert events.appearances("door", [], [tony]) == []  # its end publishes nothing
        got = {topic: (json.loads(p) if p.startswith(b"{") else p.decode(), retain)
               for topic, p, retain in sub.drain()}  # fmt: skip
    assert got["facelens/devices/pi/availability"] == ("online", False)
    config, _ = got["homeassistant/sensor/facelens_pi_door/config"]
    assert config["state_topic"] == "facelens/door/state"
    assert config["json_attributes_topic"] == "facelens/door/person"
    assert config["availability_topic"] == "facelens/devices/pi/availability"
    assert got["facelens/door/person"] == (first[0], False)
    assert first[0]["name"] == "Tony" and first[0]["camera"] == "door"
    assert first[0]["status"] == "known" and first[0]["score"] == 0.4123
    # after close: offline, retained, so a dashboard that connects later knows
    late = subscribe("facelens/devices/#")
    assert late.get()[1:] == (b"offline", True)


def test_an_image_is_the_face_even_when_decided_after_it_left(mosquitto, subscribe):
    sub = subscribe("facelens/door/person")
    image = np.zeros((120, 160, 3), np.uint8)
    image[20:60, 30:70] = (0, 0, 255)  # the face: red
    face = Identity((30.0, 20.0, 40.0, 40.0), 0.9, None, 0.3, None, track_id=3, label="deciding…")
    seen = FrameResult(Frame(image, 0, "door", 0.0), [face], {})
    gone = FrameResult(Frame(np.zeros_like(image), 9, "door", 0.0), [], {})
    stranger = appearance(3, box=face.box)
    with MqttEvents(mosquitto.url, ["door"], device="pi", images=True) as events:
        assert events.frame("door", seen) == []  # not decided yet
        # never confident: decided as it ends, frames after the face left the picture
        (event,) = events.frame("door", replace(gone, decided=[stranger], appearances=[stranger]))
    (message,) = sub.events()
    assert message == event
    pixels = cv2.imdecode(np.frombuffer(base64.b64decode(event["image"]), np.uint8), 1)
    assert pixels.shape == (40, 40, 3) and pixels[..., 2].mean() > 200  # red, not black


def test_last_will_says_offline_when_the_device_dies(mosquitto, subscribe):
    code = (
        "import sys, time\n"
        "from edge.service.mqtt import MqttEvents\n"
        f"MqttEvents({mosquitto.url!r}, device='dies')\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        sub = subscribe("facelens/devices/dies/availability")
        # live, or retained if the broker had it before we subscribed (a race either way)
        assert sub.get()[1] == b"online"
        late = subscribe("facelens/devices/dies/availability")  # the broker has it now
        assert late.get()[1:] == (b"online", True)  # retained, for whoever connects later
        proc.kill()  # no goodbye: the broker sends the will
        assert sub.get()[1] == b"offline"
    finally:
        proc.kill()
        proc.wait()


def test_home_assistant_sees_people_come_and_go_and_cameras_rest(mosquitto, subscribe):
    """A presence sensor per person enrolled (removed when forgotten); a camera's sensor
    names who is in view and returns to ``none`` when the appearance ends."""
    sub = subscribe("facelens/#", "homeassistant/#")
    tony = appearance(7, "Tony Blair", "known", (0, 0, 9, 9))
    stranger = appearance(8)
    with MqttEvents(mosquitto.url, ["door"], device="pi", discovery=True) as events:
        events.people(["Tony Blair", "Ada"])
        events.appearances("door", [tony])
        events.appearances("door", [stranger], [tony])
        in_view = [(t, p) for t, p, _ in sub.drain() if t == "facelens/door/state"]
        events.appearances("door", [], [stranger])  # the last one leaves: rest
        events.people(["Ada"])  # Tony forgotten
        after = sub.drain()
    topic = "homeassistant/binary_sensor/facelens_pi_person_Tony_Blair/config"
    retained = {t: p for t, p, _ in after}
    assert in_view == [("facelens/door/state", b"Tony Blair"), ("facelens/door/state", b"unknown")]
    assert retained["facelens/door/state"] == b"none"
    assert retained[topic] == b"" and retained["facelens/devices/pi/people/Tony_Blair"] == b""
    # what a Home Assistant connecting now finds retained: Ada's sensor, not Tony's
    late = subscribe("homeassistant/#")
    configs = {t: json.loads(p) for t, p, _ in late.drain() if p}
    ada = configs["homeassistant/binary_sensor/facelens_pi_person_Ada/config"]
    assert ada["device_class"] == "presence" and ada["off_delay"] == 300
    assert ada["state_topic"] == "facelens/devices/pi/people/Ada"
    assert (ada["payload_on"], ada["payload_off"]) == ("home", "not_home")
    assert topic not in configs and "homeassistant/sensor/facelens_pi_door/config" in configs


def test_a_person_named_on_camera_is_home(mosquitto, subscribe):
    sub = subscribe("facelens/devices/pi/people/#")
    with MqttEvents(mosquitto.url, ["door"], device="pi", discovery=True) as events:
        events.people(["Tony Blair"])
        events.appearances("door", [appearance(7, "Tony Blair", "known")])
        events.appearances("door", [appearance(9, "Ada", "known")])  # not enrolled (any more)
        got = sub.drain()
    assert [(t, p) for t, p, _ in got] == [("facelens/devices/pi/people/Tony_Blair", b"home")]
