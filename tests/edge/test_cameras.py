"""Many cameras through the real cv2.VideoCapture path: files, and an HTTP stream on loopback
that is missing, then appears, then ends (a camera that drops and comes back)."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path

import pytest

from edge.base.errors import SourceError
from edge.media.cameras import Backoff, Cameras, CameraSpec, unique_specs

from .test_sources import write_video


@pytest.fixture
def http_folder(tmp_path: Path):
    """(folder, base URL): a static file server on a free loopback port."""
    folder = tmp_path / "www"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_specs_name_cameras():
    assert CameraSpec.parse("door=rtsp://u:p@cam/stream?ch=1") == CameraSpec(
        "door", "rtsp://u:p@cam/stream?ch=1"
    )
    assert CameraSpec.parse("0") == CameraSpec("camera0", "0")
    assert CameraSpec.parse("rtsp://cam.lan/stream?ch=1").name == "cam.lan"
    assert CameraSpec.parse("clips/front door.mp4").name == "front_door"
    assert CameraSpec.parse("0").live and not CameraSpec.parse("a.mp4").live
    with pytest.raises(SourceError, match="two cameras are named 'a'"):
        unique_specs(["a=0", "a=1"])


def test_files_hand_over_every_frame_interleaved(tmp_path: Path):
    a = write_video(tmp_path / "a.avi", 30)
    b = write_video(tmp_path / "b.avi", 40)
    with Cameras([CameraSpec("a", str(a)), CameraSpec("b", str(b))]) as cams:
        seen = [(cam.name, frame.index) for cam, frame in cams.frames()]
    assert [i for n, i in seen if n == "a"] == list(range(30))
    assert [i for n, i in seen if n == "b"] == list(range(40))
    # (whether b's first frame comes before a's last depends on when its reader thread
    # starts, i.e. on the machine's load: a scheduling matter, not checked here)
    assert [c.status for c in cams.cameras] == ["ended", "ended"]


def test_a_broken_file_fails_alone(tmp_path: Path):
    good = write_video(tmp_path / "good.avi", 5)
    specs = [CameraSpec("gone", str(tmp_path / "missing.avi")), CameraSpec("good", str(good))]
    with Cameras(specs) as cams:
        seen = [cam.name for cam, _ in cams.frames()]
    assert seen == ["good"] * 5
    gone = cams.cameras[0]
    assert gone.status == "failed" and "does not exist" in gone.last_error


def test_a_stream_that_drops_is_retried_with_backoff(tmp_path: Path, http_folder):
    folder, url = http_folder
    steady = write_video(tmp_path / "steady.avi", 400)
    specs = [CameraSpec("door", f"{url}/door.avi"), CameraSpec("steady", str(steady))]
    counts = {"door": 0, "steady": 0}
    with Cameras(specs, Backoff(first=0.05, most=0.2)) as cams:
        door = cams.cameras[0]
        deadline = time.monotonic() + 60
        for cam, _ in cams.frames():
            counts[cam.name] += 1
            if counts["steady"] == 20:  # the door stream is still missing: it is being retried
                assert door.status == "retrying" and door.errors >= 1 and counts["door"] == 0
                write_video(tmp_path / "door.avi", 10).rename(folder / "door.avi")
            if (door.reconnects >= 3 and counts["door"] >= 10) or time.monotonic() > deadline:
                break
            time.sleep(0.002)  # a consumer slower than the decoder
    assert counts["door"] >= 10  # it came up, and its stream ended: reopened again
    assert door.reconnects >= 3 and door.errors >= 3
    assert counts["steady"] > 20  # the file camera went on meanwhile
