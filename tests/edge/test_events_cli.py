"""`edge recognize CLIP --mqtt` against a real Mosquitto: one event per person appearance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

import edge

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

    sub = subscribe("facelens/#")
    env = {k: v for k, v in os.environ.items() if k != "FACELENS_KEY"}
    run = subprocess.run(
        [sys.executable, "-m", "edge.cli", "recognize", f"door={door}", f"hall={hall}",
         "--bundle", str(faceres_bundle.path), "--gallery", str(gallery),
         "--mqtt", mosquitto.url, "--device", "test-pi", "--threads", "2"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    messages = sub.drain()
    events = [(t, json.loads(p)) for t, p, _ in messages if t.endswith("/person")]
    by_camera = {
        cam: [e["name"] for t, e in events if t == f"facelens/{cam}/person"]
        for cam in ("door", "hall")
    }
    assert by_camera == {
        "door": ["Tony Blair", "Tony Blair", "unknown"],
        "hall": ["Serena Williams"],
    }, run.stdout
    assert len(events) == 4
    for _, e in events:
        assert e.keys() == {"name", "score", "camera", "time", "device", "box"}  # no image
        assert e["device"] == "test-pi"
    availability = [p for t, p, _ in messages if t == "facelens/devices/test-pi/availability"]
    assert availability == [b"online", b"offline"]
