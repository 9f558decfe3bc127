"""FaceLens takes every kind of image a user holds: paths, BGR arrays, RGB arrays (with
``color="rgb"``), encoded bytes and PIL images, and gives the same answer for each."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import FaceLens
from edge.base.errors import ImageError

PIL = pytest.importorskip("PIL.Image", reason="PIL images need Pillow (peers group)")


def test_paths_arrays_bytes_and_pil_images_give_the_same_answer(
    tiny_bundle, lfw_dir: Path, tmp_path: Path
):
    photos = sorted((lfw_dir / "images" / "Tony_Blair").glob("*.jpg"))[:3]
    bgr = cv2.imread(str(photos[2]))
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])  # what face_recognition.load_image_file gives
    gallery = tmp_path / "people.db"
    with (
        FaceLens(tiny_bundle.path, gallery) as fl,
        FaceLens(tiny_bundle.path, gallery, color="rgb") as rgb_fl,
    ):
        enrolment = fl.enroll("Tony Blair", [photos[0].read_bytes(), PIL.open(photos[1])])
        assert sorted(p.path for p in enrolment) == ["image #0", "image #1"]  # both read
        reference = fl.embed(photos[2])
        assert np.array_equal(fl.embed(bgr), reference)
        assert np.array_equal(fl.embed(photos[2].read_bytes()), reference)
        assert np.array_equal(fl.embed(PIL.fromarray(rgb)), reference)
        assert np.array_equal(rgb_fl.embed(rgb), reference)
        assert not np.array_equal(fl.embed(rgb), reference)  # RGB read as BGR: another face
        # Pillow's own JPEG decoder rounds a little differently from OpenCV's
        assert float(fl.embed(PIL.open(photos[2]))[0] @ reference[0]) > 0.99
        expected = fl.identify(photos[2])
        assert expected[0].nearest == "Tony Blair"  # (the tiny model names no one)
        assert rgb_fl.identify(rgb) == expected  # the background face too
        again = fl.identify(bytearray(bgr_jpeg(bgr)))
        assert [f.nearest for f in again] == [f.nearest for f in expected]
        assert fl.verify(photos[2].read_bytes(), PIL.fromarray(rgb)).score == pytest.approx(1.0)
        recognition = fl.recognize(bgr)
    for value in (enrolment, enrolment[0], recognition):  # no embeddings, no landmarks
        assert "array(" not in repr(value) and len(repr(value)) < 1000, repr(value)


def bgr_jpeg(bgr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr)
    assert ok
    return buf.tobytes()


def test_what_is_no_image_is_refused_clearly(tiny_bundle, tmp_path: Path):
    fl = FaceLens(tiny_bundle.path, tmp_path / "people.db")
    with fl, pytest.raises(ImageError, match="not an image"):
        fl.faces(b"no photo at all")
    with pytest.raises(ValueError, match=r"'bgr'.*'rgb'"):
        FaceLens(tiny_bundle.path, tmp_path / "people.db", color="RGBA")
