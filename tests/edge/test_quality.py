"""Face quality (size, sharpness, pose) on real LFW faces, and choosing distinct views."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.faces.detect import create_detector
from edge.faces.dominant import rank_faces
from edge.faces.quality import MIN_FACE_PX, FaceQuality, View, assess, pose, select_views
from edge.media.images import read_image


@pytest.fixture(scope="module")
def face_photo(lfw_dir, yunet_path):
    image = read_image(lfw_dir / "images" / "Tony_Blair" / "Tony_Blair_0006.jpg")
    detector = create_detector(yunet_path)
    return image, detector


def _first_face(detector, image):
    faces = rank_faces(detector.detect(image), image.shape)
    assert faces, "YuNet found no face"
    return faces[0]


def test_a_clear_face_passes_and_blur_or_size_rule_it_out(face_photo):
    image, detector = face_photo
    clear = assess(image, _first_face(detector, image))
    assert clear.ok and clear.size > 80 and clear.yaw is not None and abs(clear.yaw) < 0.3

    blurred = cv2.GaussianBlur(image, (0, 0), 3)
    q = assess(blurred, _first_face(detector, blurred))
    assert not q.ok and "blurred" in q.problem and q.sharpness < clear.sharpness / 3

    small = cv2.resize(image, (80, 80), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((300, 300, 3), np.uint8)
    canvas[110:190, 110:190] = small
    q = assess(canvas, _first_face(detector, canvas))
    assert not q.ok and "too small" in q.problem and q.size < MIN_FACE_PX


def test_sharpness_ignores_exposure(face_photo):
    image, detector = face_photo
    face = _first_face(detector, image)
    dim = (image.astype(np.float32) * 0.5).astype(np.uint8)
    assert assess(dim, face).sharpness == pytest.approx(assess(image, face).sharpness, rel=0.15)


def test_pose_from_landmarks():
    frontal = np.float32([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]])
    yaw, roll = pose(frontal)
    assert yaw == pytest.approx(0.0) and roll == pytest.approx(0.0)
    turned = frontal.copy()
    turned[2, 0] = 66  # nose towards the left eye: a head turned
    assert pose(turned)[0] == pytest.approx(0.4)
    assert pose(None) == (None, None)


def _view(name: str, score: float, emb: list[float], problem: str | None = None) -> View:
    e = np.asarray(emb, np.float32)
    q = FaceQuality(size=160 * score, sharpness=1.0, yaw=0.0, roll=0.0, problem=problem)
    return View(name, q, e / np.linalg.norm(e))


def test_select_views_keeps_the_best_distinct_ones_and_says_why():
    views = [
        _view("a", 1.0, [1, 0, 0]),
        _view("a-again", 0.9, [1, 0.01, 0]),  # a near-duplicate of a
        _view("b", 0.8, [0.7, 0.7, 0]),
        _view("c", 0.5, [0, 0, 1]),
        _view("blurred", 1.0, [0, 1, 0], problem="face too blurred"),
    ]
    sel = select_views(views, k=2)
    assert [v.source for v in sel.kept] == ["a", "b"]
    reasons = {v.source: r for v, r in sel.left_out}
    assert reasons["blurred"] == "face too blurred"
    assert reasons["a-again"].startswith("too like a kept view")
    assert reasons["c"] == "2 better views already kept"
    with pytest.raises(ValueError):
        select_views(views, k=0)
