"""One gallery for a fleet: real `edge serve` processes syncing through a real Mosquitto.

Enrol on one door and the others name the person; forget on another and every door
stops naming them, with nothing of them left on the broker; a door that was away, or
is new, catches up from the broker's retained records; a record without the key is
ignored. Waits are polls with a generous bound: no timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.gallery.store import parse_key
from edge.service.fleet.records import (
    FLEET_KEY_ENV,
    PERSON,
    FleetError,
    FleetKey,
    Record,
    Version,
    new_key,
)

pytest.importorskip("fastapi", reason="edge serve needs the serve extra (FastAPI, uvicorn)")
from .test_serve import Server, person_photos, start_server, upload

FLEET = "house"
BOUND_S = 60.0  # generous: three model processes share two cores


def until(check: Callable[[], object], what: str) -> object:
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.25)
    raise AssertionError(f"not within {BOUND_S:.0f} s: {what}")


def names(server: Server, photo: Path) -> list[str | None]:
    with server.client() as http:
        r = http.post("/v1/identify", files=upload(photo))
        assert r.status_code == 200, r.text
        return [f["name"] for f in r.json()["faces"]]


def people(server: Server) -> list[str]:
    with server.client() as http:
        return [p["name"] for p in http.get("/v1/people").json()["people"]]


def sync_status(server: Server) -> dict:
    with server.client() as http:
        return http.get("/v1/health").json()["sync"]


def test_three_doors_share_one_gallery(
    tmp_path, monkeypatch, mosquitto, subscribe, faceres_bundle, lfw_dir
):
    key = new_key()
    monkeypatch.setenv(FLEET_KEY_ENV, key)
    url = f"{mosquitto.url}/{FLEET}"

    def door(name: str) -> Server:
        return start_server(tmp_path / name, faceres_bundle.path, "--sync", url)

    tony, colin = (person_photos(lfw_dir, n) for n in ("Tony_Blair", "Colin_Powell"))
    doors = {n: door(n) for n in ("front", "back", "garage")}
    try:
        for d in doors.values():
            until(lambda d=d: sync_status(d)["caught_up"], "every door caught up")
        with doors["front"].client() as http:
            assert http.put("/v1/people/Tony Blair", files=upload(tony[0])).status_code == 200
        with doors["garage"].client() as http:
            assert http.put("/v1/people/Colin Powell", files=upload(colin[0])).status_code == 200
        for d in ("back", "garage"):  # another photo of him, named at the other doors
            until(lambda d=d: "Tony Blair" in people(doors[d]), f"{d} has Tony")
            assert names(doors[d], tony[3]) == ["Tony Blair"]
        until(lambda: "Colin Powell" in people(doors["front"]), "front has Colin")
        assert names(doors["front"], colin[1]) == ["Colin Powell"]

        # the garage goes away; Tony is forgotten at the back door meanwhile
        until(lambda: "Colin Powell" in people(doors["back"]), "back has Colin")
        assert doors["garage"].stop() == 130
        with doors["back"].client() as http:
            assert http.delete("/v1/people/Tony Blair").status_code == 200
        for d in ("front", "back"):
            until(lambda d=d: "Tony Blair" not in people(doors[d]), f"{d} forgot Tony")
            assert names(doors[d], tony[3]) == [None]

        # nothing of Tony is left on the broker: only Colin's record and the fleet marker
        colin_id = FleetKey(parse_key(key)).person_id("Colin Powell")
        root = f"facelens/fleet/{FLEET}"
        retained = {t for t, p, retain in subscribe(f"{root}/#").drain() if retain and p}
        assert retained == {f"{root}/records/{colin_id[:2]}/{colin_id}", f"{root}/marker"}

        # the garage comes back and a new door starts: both converge to Colin alone
        doors["garage"] = door("garage")
        doors["shed"] = door("shed")
        for d in ("garage", "shed"):
            until(lambda d=d: people(doors[d]) == ["Colin Powell"], f"{d} has Colin alone")
            assert names(doors[d], tony[3]) == [None]
            assert names(doors[d], colin[1]) == ["Colin Powell"]

        # a client that can publish on the broker but has not the key adds no one
        _publish_forged(mosquitto.port, f"{root}/records")
        until(lambda: sync_status(doors["front"])["ignored"] >= 2, "front ignored both")
        assert people(doors["front"]) == ["Colin Powell"]
        assert "ignored the fleet record" in doors["front"].output.read_text()
    finally:
        for d in doors.values():
            d.stop()


def _publish_forged(port: int, records: str) -> None:
    """A sealed record made with another key, and garbage, both retained."""
    import numpy as np
    import paho.mqtt.client as mqtt

    other = FleetKey(parse_key(new_key()))
    mallory = Record(PERSON, "Mallory", Version(2**40, 0, False, "x"), "fp", np.ones((1, 4)))
    mallory_id = other.person_id("Mallory")
    topic = f"{records}/{mallory_id[:2]}/{mallory_id}"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for t, payload in ((topic, other.seal(topic, mallory)), (f"{records}/ab/junk", b"junk")):
            client.publish(t, payload, qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_records_open_only_with_their_key_and_topic():
    key = FleetKey(parse_key(new_key()))
    rec = Record(
        PERSON, "Ada", Version(5, 1, False, "d"), "fp", pytest.importorskip("numpy").eye(2)
    )
    topic = f"facelens/fleet/x/records/{key.person_id('Ada')}"
    sealed = key.seal(topic, rec)
    opened = key.open(topic, sealed)
    assert (opened.name, opened.version, opened.matrix.tolist()) == (
        "Ada",
        rec.version,
        [[1, 0], [0, 1]],
    )
    with pytest.raises(ValueError, match="authentication"):
        key.open(f"facelens/fleet/x/records/{key.person_id('Bob')}", sealed)  # moved
    with pytest.raises(ValueError, match="authentication"):
        FleetKey(parse_key(new_key())).open(topic, sealed)  # another fleet's key
    # the conflict rule: later wins; on a tie a forget wins; then the device id
    assert Version(5, 1, False, "z") < Version(5, 2, False, "a")
    assert Version(5, 1, False, "z") < Version(5, 1, True, "a")
    assert Version(5, 1, True, "a") < Version(5, 1, True, "b")


def test_fleet_init_prints_a_key_and_join_keeps_it_0600(tmp_path, capsys, monkeypatch):
    from edge.cli.main import main
    from edge.service.fleet.records import load_key
    from edge.service.fleet.sync import FleetUrl

    monkeypatch.delenv(FLEET_KEY_ENV, raising=False)
    gallery = tmp_path / "g" / "people.sqlite"
    assert main(["fleet", "init"]) == 0
    key = capsys.readouterr().out.split()[0]
    assert len(bytes.fromhex(key)) == 32
    with pytest.raises(FleetError, match="edge fleet init"):
        load_key(gallery)  # not joined yet: says how to
    assert main(["fleet", "join", key, "--gallery", str(gallery)]) == 0
    path = gallery.with_name("people.sqlite.fleet-key")
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_key(gallery) == bytes.fromhex(key)
    assert main(["fleet", "join", "not-a-key", "--gallery", str(gallery)]) == 1
    assert "not a fleet key" in capsys.readouterr().err
    assert load_key(gallery) == bytes.fromhex(key)  # a bad key replaces nothing
    with pytest.raises(FleetError, match="names no fleet"):
        FleetUrl.parse("mqtt://127.0.0.1:1883")
    assert FleetUrl.parse("mqtts://u@h/house").root == "facelens/fleet/house"


def test_recognize_sync_on_a_new_device_names_the_fleets_people(
    tmp_path, monkeypatch, mosquitto, subscribe, faceres_bundle, lfw_dir
):
    """`edge recognize PHOTO --sync URL` on a device that never enrolled anyone waits for
    the fleet's records first, so the photo is named by what a door enrolled."""
    monkeypatch.setenv(FLEET_KEY_ENV, new_key())
    url = f"{mosquitto.url}/{FLEET}"
    tony = person_photos(lfw_dir, "Tony_Blair")
    records = subscribe(f"facelens/fleet/{FLEET}/records/#")
    door = start_server(tmp_path / "door", faceres_bundle.path, "--sync", url)
    try:
        until(lambda: sync_status(door)["caught_up"], "the door caught up")
        with door.client() as http:
            assert http.put("/v1/people/Tony Blair", files=upload(tony[0])).status_code == 200
        records.get(timeout=BOUND_S)  # his record is on the broker
    finally:
        assert door.stop() == 130
    home = tmp_path / "new-device"
    env = {**os.environ, "FACELENS_HOME": str(home)}
    cmd = [sys.executable, "-m", "edge.cli.main", "recognize", str(tony[3]), "--json"]
    run = subprocess.run(
        [*cmd, "--bundle", str(faceres_bundle.path), "--sync", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "caught up: 1 person enrolled" in run.stderr
    *faces, _summary = [json.loads(line) for line in run.stdout.splitlines()]
    assert [f["name"] for f in faces] == ["Tony Blair"]
