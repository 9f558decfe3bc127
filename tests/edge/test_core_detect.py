"""Face detection on real photos, the YuNet file's provenance, and the Haar fallback."""

import hashlib
import logging

import cv2
import numpy as np
import pytest

from edge.base.assets import download_verified
from edge.base.errors import DetectorError
from edge.faces.detect import (
    YUNET_FILE,
    YUNET_SHA256,
    Face,
    HaarDetector,
    YuNetDetector,
    create_detector,
    find_yunet,
)
from edge.faces.dominant import dominant_face


@pytest.fixture(scope="module")
def eckhart(lfw_dir):
    return cv2.imread(str(lfw_dir / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"))


def test_yunet_finds_the_face_with_landmarks_inside_its_box(yunet_path, eckhart):
    faces = YuNetDetector(yunet_path).detect(eckhart)
    assert len(faces) >= 1
    face = faces[dominant_face(faces, eckhart.shape)]
    x, y, w, h = face.box
    assert 60 < x + w / 2 < 190 and 60 < y + h / 2 < 190  # LFW centres the subject
    assert face.score > 0.8
    lx, ly = face.landmarks[:, 0], face.landmarks[:, 1]
    assert np.all((lx > x) & (lx < x + w) & (ly > y) & (ly < y + h))
    assert face.landmarks[0, 0] < face.landmarks[1, 0]  # right eye is left in the image


def _iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return iw * ih / (aw * ah + bw * bh - iw * ih)


def test_large_frames_are_detected_downscaled_in_original_coordinates(yunet_path, eckhart):
    detector = YuNetDetector(yunet_path, max_side=320)
    small_face = max(detector.detect(eckhart), key=lambda f: f.score)
    big_face = max(detector.detect(cv2.resize(eckhart, (1000, 1000))), key=lambda f: f.score)
    assert _iou(np.array(big_face.box) / 4, small_face.box) > 0.75


def test_no_face_in_a_flower(yunet_path, nonface_dir):
    flower = cv2.imread(str(nonface_dir / "sklearn" / "flower.jpg"))
    assert flower is not None
    assert YuNetDetector(yunet_path).detect(flower) == []


HAS_HAAR = hasattr(cv2, "CascadeClassifier")


@pytest.mark.skipif(not HAS_HAAR, reason=f"OpenCV {cv2.__version__} ships no Haar cascades")
def test_haar_fallback_finds_the_face_without_landmarks(eckhart):
    faces = HaarDetector().detect(eckhart)
    assert faces and all(f.landmarks is None and 0 < f.score < 1 for f in faces)


@pytest.mark.skipif(HAS_HAAR, reason="this OpenCV still has Haar cascades")
def test_without_haar_the_missing_fallback_is_explained():
    with pytest.raises(DetectorError, match="--no-detect"):
        HaarDetector()


def test_dominant_face_prefers_large_central_confident_and_refuses_a_tie():
    shape = (200, 200, 3)
    subject = Face(box=(60, 60, 80, 80), score=0.9)
    background = Face(box=(0, 0, 25, 25), score=0.95)
    assert dominant_face([background, subject], shape) == 1
    twin = Face(box=(62, 58, 80, 80), score=0.9)
    assert dominant_face([subject, twin], shape) is None
    assert dominant_face([], shape) is None


def test_find_yunet_prefers_the_explicit_path_and_names_a_missing_one(tmp_path, yunet_path):
    assert find_yunet(yunet_path) == yunet_path
    with pytest.raises(DetectorError, match="does not exist"):
        find_yunet(tmp_path / "nope.onnx")


def test_download_is_pinned_by_sha256(tmp_path, yunet_path):
    dest = tmp_path / "cache" / "yunet.onnx"
    got = download_verified(yunet_path.as_uri(), dest, YUNET_SHA256)
    assert hashlib.sha256(got.read_bytes()).hexdigest() == YUNET_SHA256
    other = tmp_path / "other.bin"
    other.write_bytes(b"not a detector")
    with pytest.raises(DetectorError, match="expected"):
        download_verified(
            other.as_uri(), tmp_path / "cache" / "bad.onnx", YUNET_SHA256, error=DetectorError
        )
    assert not (tmp_path / "cache" / "bad.onnx").exists()


def test_a_verified_copy_in_a_folder_the_caller_names_is_found_offline(monkeypatch, yunet_path):
    monkeypatch.delenv("FACELENS_YUNET", raising=False)
    found = find_yunet(url="http://127.0.0.1:9/yunet.onnx", search=[yunet_path.parent])
    assert found == yunet_path


def test_a_searched_copy_with_another_hash_is_not_trusted(monkeypatch, tmp_path):
    monkeypatch.delenv("FACELENS_YUNET", raising=False)
    (tmp_path / YUNET_FILE).write_bytes(b"not the pinned file")
    with pytest.raises(DetectorError, match="downloads are off"):
        find_yunet(download=False, search=[tmp_path])


def test_nothing_beside_the_checkout_is_searched_unasked(monkeypatch, yunet_path):
    # the runtime has no idea of ../shared: only the caller's folders are searched
    monkeypatch.delenv("FACELENS_YUNET", raising=False)
    monkeypatch.setenv("FACELENS_SHARED", str(yunet_path.parents[2]))
    with pytest.raises(DetectorError, match="downloads are off"):
        find_yunet(download=False)


def test_offline_download_fails_clearly_and_the_detector_falls_back(monkeypatch, caplog, tmp_path):
    monkeypatch.delenv("FACELENS_YUNET", raising=False)
    with pytest.raises(DetectorError, match="offline"):
        find_yunet(url="http://127.0.0.1:9/yunet.onnx")
    if not HAS_HAAR:
        with pytest.raises(DetectorError, match=r"no YuNet file.*no Haar cascades"):
            create_detector(download=False)
        return
    with caplog.at_level(logging.WARNING):
        detector = create_detector(download=False)
    assert isinstance(detector, HaarDetector)
    assert "Haar" in caplog.text
