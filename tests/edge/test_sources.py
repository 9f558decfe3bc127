"""Sources on real files through cv2.VideoCapture / imdecode (a generated video stands in
for a camera: the live reader is the same code, fed by the same VideoCapture)."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.base.errors import ImageError, SourceError
from edge.media.images import read_image
from edge.media.sources import ImageSource, LiveSource, VideoSource, open_source


def write_video(path: Path, frames: int, size=(160, 120), fps: float = 25.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), i * 8 % 256, np.uint8))
    writer.release()
    return path


def test_video_file_yields_every_frame_in_order(tmp_path: Path):
    video = write_video(tmp_path / "v.avi", 20)
    with open_source(str(video)) as source:
        assert isinstance(source, VideoSource) and source.fps == pytest.approx(25.0)
        frames = list(source)
    assert [f.index for f in frames] == list(range(20))
    # the frames are the ones written (MJPG is lossy: compare the mean grey level)
    assert [round(float(f.image.mean()) / 8) for f in frames[:5]] == [0, 1, 2, 3, 4]


def test_live_reader_keeps_only_the_newest_frame(tmp_path: Path):
    video = write_video(tmp_path / "v.avi", 200)
    with open_source(str(video), live=True) as source:
        assert isinstance(source, LiveSource)
        seen = []
        for frame in source:
            seen.append(frame.index)
            time.sleep(0.02)  # a consumer slower than the decoder
    assert seen == sorted(set(seen))  # never a stale or repeated frame
    assert len(seen) < 200  # frames were dropped rather than queued
    assert seen[-1] == 199  # the reader kept up to the very last frame


def test_missing_camera_is_a_source_error():
    with pytest.raises(SourceError, match="camera 97 cannot be opened"):
        open_source("97")


def test_camera_that_stops_is_an_error_not_a_silent_end(tmp_path: Path):
    video = write_video(tmp_path / "v.avi", 3)
    source = LiveSource(str(video), "camera X", is_camera=True)
    with source, pytest.raises(SourceError, match="stopped delivering"):
        list(source)


def test_folder_skips_unreadable_images(tmp_path: Path):
    ok = np.zeros((20, 30, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), ok)
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(str(tmp_path)) as source:
        assert isinstance(source, ImageSource)
        frames = list(source)
    assert [Path(f.name).name for f in frames] == ["a.png"]
    assert source.skipped == [str(tmp_path / "b.jpg")]


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("nowhere.mp4", "does not exist"),
        ("empty.mp4", "is empty"),
        ("text.dat", "neither an image nor a video"),
        ("emptydir", "no image files"),
    ],
)
def test_bad_sources(tmp_path: Path, spec: str, error: str):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.dat").write_text("hello " * 100)
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(SourceError, match=error):
        open_source(str(tmp_path / spec))


def test_image_errors(tmp_path: Path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    _, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    huge = bytearray(png.tobytes())
    huge[16:24] = struct.pack(">II", 40000, 40000)  # a 1.6-gigapixel claim in the header
    (tmp_path / "huge.png").write_bytes(bytes(huge))
    _, jpg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    big_jpg = jpg.tobytes()
    sof = big_jpg.index(b"\xff\xc0")
    big_jpg = big_jpg[: sof + 5] + struct.pack(">HH", 30000, 30000) + big_jpg[sof + 9 :]
    (tmp_path / "huge.jpg").write_bytes(big_jpg)
    for name, message in [
        ("empty.jpg", "is empty"),
        ("corrupt.jpg", "not an image OpenCV can read"),
        ("huge.png", "40000x40000 pixels"),
        ("huge.jpg", "30000x30000 pixels"),
        ("missing.jpg", "does not exist"),
    ]:
        with pytest.raises(ImageError, match=message):
            read_image(tmp_path / name)
