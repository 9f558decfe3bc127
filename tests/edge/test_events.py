"""MQTT events against a real Mosquitto on loopback; appearance grouping on plain faces."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from edge.events import Appearances, Broker, MqttError, MqttEvents, person_event, topic_name


@dataclass(frozen=True)
class Seen:
    name: str | None
    score: float
    box: tuple[float, float, float, float]


def test_one_appearance_until_the_person_is_gone_for_the_gap():
    app = Appearances(gap_s=1.0)
    tony = Seen("Tony", 0.9, (10, 10, 50, 50))
    firsts = [len(app.new("door", [tony], t / 10)) for t in range(20)]  # 2 s in view
    assert firsts == [1] + [0] * 19
    assert app.new("door", [tony], 2.5) == []  # 0.6 s away: the same appearance
    assert app.new("door", [tony], 4.0) == [tony]  # 1.5 s away: a new one
    assert app.new("hall", [tony], 4.0) == [tony]  # each camera on its own


def test_unknown_faces_are_told_apart_by_where_they_are():
    app = Appearances(gap_s=1.0)
    left, right = Seen(None, 0.2, (0, 0, 40, 40)), Seen(None, 0.3, (200, 0, 40, 40))
    assert app.new("door", [left, right], 0.0) == [left, right]
    moved = Seen(None, 0.2, (8, 4, 40, 40))  # the left stranger, a little further on
    assert app.new("door", [moved, right], 0.1) == []
    assert app.new("door", [Seen(None, 0.2, (100, 100, 40, 40))], 0.2) != []


def test_event_body_has_no_image_unless_asked():
    face = Seen(None, 0.41234, (1.04, 2.0, 30.0, 40.0))
    event = person_event(face, "door", "pi")
    assert event.keys() == {"name", "score", "camera", "time", "device", "box"}
    assert (event["name"], event["score"], event["box"]) == ("unknown", 0.4123, [1.0, 2, 30, 40])
    frame = np.full((100, 100, 3), 128, np.uint8)
    assert len(person_event(face, "door", "pi", frame)["image"]) > 100  # base64 JPEG


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
    with MqttEvents(mosquitto.url, ["door"], device="pi", discovery=True) as events:
        first = events.frame("door", [Seen("Tony", 0.91, (0, 0, 9, 9))], 0.0)
        events.frame("door", [Seen("Tony", 0.93, (1, 0, 9, 9))], 0.5)  # same appearance
        got = {topic: (json.loads(p) if p.startswith(b"{") else p.decode(), retain)
               for topic, p, retain in sub.drain()}  # fmt: skip
    assert got["facelens/devices/pi/availability"] == ("online", False)
    config, _ = got["homeassistant/sensor/facelens_pi_door/config"]
    assert config["state_topic"] == "facelens/door/person"
    assert config["availability_topic"] == "facelens/devices/pi/availability"
    assert got["facelens/door/person"] == (first[0], False)
    assert first[0]["name"] == "Tony" and first[0]["camera"] == "door"
    # after close: offline, retained, so a dashboard that connects later knows
    late = subscribe("facelens/devices/#")
    assert late.get()[1:] == (b"offline", True)


def test_last_will_says_offline_when_the_device_dies(mosquitto, subscribe):
    code = (
        "import sys, time\n"
        "from edge.events import MqttEvents\n"
        f"MqttEvents({mosquitto.url!r}, device='dies')\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        sub = subscribe("facelens/devices/dies/availability")
        assert sub.get()[1:] == (b"online", True)
        proc.kill()  # no goodbye: the broker sends the will
        assert sub.get()[1] == b"offline"
    finally:
        proc.kill()
        proc.wait()
