"""`edge recognize CLIP --mqtt` against a real Mosquitto: one event per person appearance,
sent when the person is recognised, not when they leave."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import edge

sys.path.append(str(Path(__file__).resolve().parent))
from walkclip import H, W, Walk, write_walk_clip

FPS = 25.0


def write_clip(path: Path, scenes: list[tuple[Path | None, int]]) -> Path:
    """A 640x480 MJPG clip: each scene is (photo pasted in the middle or None, frames)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (640, 480))
    assert writer.isOpened()
    for photo, frames in scenes:
        canvas = np.full((480, 640, 3), (90, 100, 110), np.uint8)
        if photo is not None:
            canvas[115:365, 195:445] = cv2.imread(str(photo))
        for _ in range(frames):
            writer.write(canvas)
    writer.release()
    return path


def _recognize(*sources: str, bundle: Path, gallery: Path, broker: str):
    """``edge recognize SOURCES --mqtt BROKER --device test-pi``, in a process of its own."""
    env = {k: v for k, v in os.environ.items() if k != "FACELENS_KEY"}
    run = subprocess.run(
        [sys.executable, "-m", "edge.cli.main", "recognize", *sources, "--bundle", str(bundle),
         "--gallery", str(gallery), "--mqtt", broker, "--device", "test-pi", "--threads", "2"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run


def test_recognize_clips_publishes_one_event_per_appearance(
    tmp_path: Path, faceres_bundle, lfw_dir: Path, mosquitto, subscribe
):
    images = lfw_dir / "images"
    tony = sorted((images / "Tony_Blair").glob("*.jpg"))
    serena = sorted((images / "Serena_Williams").glob("*.jpg"))
    colin = sorted((images / "Colin_Powell").glob("*.jpg"))
    gallery = tmp_path / "gallery.sqlite"
    with edge.FaceLens(faceres_bundle.path, gallery) as fl:
        fl.enroll("Tony Blair", [tony[0]])
        fl.enroll("Serena Williams", [serena[0]])
    # door: Tony, 3 s of no one (longer than the 2 s gap), Tony again, then a stranger
    door = write_clip(
        tmp_path / "door.avi", [(tony[3], 20), (None, 75), (tony[3], 20), (colin[0], 20)]
    )
    hall = write_clip(tmp_path / "hall.avi", [(None, 10), (serena[2], 30)])
    # a folder of photos: unrelated moments, so the same photo twice is two appearances
    album = tmp_path / "album"
    album.mkdir()
    for i, photo in enumerate([tony[3], tony[3], colin[0]]):
        shutil.copy(photo, album / f"{i}.jpg")

    sub = subscribe("facelens/#")
    run = _recognize(f"door={door}", f"hall={hall}", f"album={album}",
                     bundle=faceres_bundle.path, gallery=gallery, broker=mosquitto.url)  # fmt: skip
    messages = sub.drain()
    events = [(t, json.loads(p)) for t, p, _ in messages if t.endswith("/person")]
    by_camera = {
        cam: [e["name"] for t, e in events if t == f"facelens/{cam}/person"]
        for cam in ("door", "hall", "album")
    }
    assert by_camera == {
        "door": ["Tony Blair", "Tony Blair", "unknown"],
        "hall": ["Serena Williams"],
        "album": ["Tony Blair", "Tony Blair", "unknown"],
    }, run.stdout
    assert len(events) == 7
    for _, e in events:
        assert e.keys() == {"name", "status", "score", "camera", "time", "device", "box"}
        assert e["device"] == "test-pi"
        assert e["status"] == ("unknown" if e["name"] == "unknown" else "known")
    availability = [p for t, p, _ in messages if t == "facelens/devices/test-pi/availability"]
    assert availability == [b"online", b"offline"]


def test_one_person_walking_through_is_one_event_sent_as_they_arrive(
    tmp_path: Path, faceres_bundle, lfw_dir: Path, nonface_dir: Path, mosquitto, subscribe
):
    # Tony crosses the door camera from left to right in 4 s (walkclip), every frame
    # followed and voted on: one message, sent while he is still on the left side
    images = lfw_dir / "images"
    tony = sorted((images / "Tony_Blair").glob("*.jpg"))
    gallery = tmp_path / "gallery.sqlite"
    with edge.FaceLens(faceres_bundle.path, gallery) as fl:
        fl.enroll("Tony Blair", [tony[0]])
    photo = cv2.imread(str(tony[3]))
    background = cv2.resize(
        cv2.imread(str(nonface_dir / "opencv_samples" / "building.jpg")), (W, H)
    )
    walk = Walk("Tony Blair", start=10, frames=100, y=150)
    truth = write_walk_clip(tmp_path / "door.avi", {"Tony Blair": photo}, [walk], background)
    assert sum(bool(placed) for placed in truth) == 100

    sub = subscribe("facelens/+/person")
    run = _recognize(f"door={tmp_path / 'door.avi'}", bundle=faceres_bundle.path, gallery=gallery,
                     broker=mosquitto.url)  # fmt: skip
    (event,) = sub.events()
    assert (event["name"], event["status"], event["camera"]) == ("Tony Blair", "known", "door")
    x, _, w, _ = event["box"]
    assert x + w / 2 < W / 3, event  # decided on arrival, not as he leaves on the right
    # the command's own summary: the same one appearance, seen for the whole walk
    (line,) = [json.loads(line) for line in run.stdout.splitlines() if '"appearance"' in line]
    assert (line["name"], line["source"]) == ("Tony Blair", "door")
    assert line["frames"] >= 90 and line["last_seen"] - line["first_seen"] > 3.5


def test_serve_publishes_a_camera_s_appearances_as_decided(
    tmp_path: Path, faceres_bundle, lfw_dir: Path, nonface_dir: Path, mosquitto, subscribe
):
    pytest.importorskip("fastapi", reason="edge serve needs the serve extra (FastAPI, uvicorn)")
    from .test_serve import start_server

    images = lfw_dir / "images"
    serena = sorted((images / "Serena_Williams").glob("*.jpg"))
    with edge.FaceLens(faceres_bundle.path, tmp_path / "gallery" / "people.sqlite") as fl:
        fl.enroll("Serena Williams", [serena[0]])
    background = np.full((H, W, 3), 100, np.uint8)
    walks = [Walk("Serena Williams", 0, 60, 100), Walk("Serena Williams", 150, 60, 200)]
    clip = tmp_path / "hall.avi"
    write_walk_clip(clip, {"Serena Williams": cv2.imread(str(serena[2]))}, walks, background)
    sub = subscribe("facelens/+/person")
    server = start_server(
        tmp_path, faceres_bundle.path, "--camera", f"hall={clip}",
        "--mqtt", mosquitto.url, "--device", "test-pi",
    )  # fmt: skip
    try:
        events = sub.events(quiet_s=15)  # the clip takes a few seconds; then nothing comes
        with server.client() as client:
            metrics = client.get("/metrics").text
    finally:
        assert server.stop() in (0, 130)
    assert [(e["name"], e["camera"]) for e in events] == [("Serena Williams", "hall")] * 2
    assert 'facelens_events_total{camera="hall"} 2' in metrics.splitlines()
