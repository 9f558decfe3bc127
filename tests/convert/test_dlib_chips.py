"""dlib's face chips, the YuNet template fitted to them, and the crop rule that carries it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from convert.dlib_chips import CHIP_SIZE, DlibChipper, fit_template, pair_photos
from edge.base.errors import BundleError
from edge.model.dlib_graph import DLIB_TEMPLATE_150
from edge.model.preprocess import CropRule, InputSpec, cut_face


@pytest.fixture(scope="module")
def faces(lfw_dir, yunet_path):
    """(photo, its dominant YuNet face) for a few LFW photos."""
    from edge.faces.detect import create_detector
    from edge.faces.dominant import rank_faces
    from edge.media.images import read_image

    detector = create_detector(yunet_path)
    out = []
    for path in sorted((lfw_dir / "images").glob("*/*_0002.jpg"))[::200][:6]:
        image = read_image(path)
        out.append((image, rank_faces(detector.detect(image), image.shape)[0]))
    return out


def test_the_chip_mapping_is_the_one_dlib_cuts_with(faces):
    chipper = DlibChipper()
    for image, face in faces:
        chip, matrix, _ = chipper.chip(image, face)
        assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3)
        ours = cv2.warpAffine(image, matrix, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR)
        assert np.abs(ours.astype(int) - chip).mean() < 1.5  # interpolation rounding only


def test_refitting_reproduces_the_template_in_the_model_definition(lfw_dir, yunet_path):
    from edge.faces.detect import create_detector

    photos = pair_photos(lfw_dir / "pairs_devtrain.csv", None, 40, seed=1)  # other faces
    fit = fit_template(photos, create_detector(yunet_path), progress=False)
    assert len(fit.points) >= 38
    np.testing.assert_allclose(fit.template, DLIB_TEMPLATE_150, atol=3.0)  # px in 150
    described = fit.describe()
    assert described["template_size"] == [CHIP_SIZE, CHIP_SIZE]
    assert max(described["residual_px_mean"]) < 10


def test_the_template_crop_lands_the_landmarks_on_the_template():
    from edge.faces.detect import Face

    rule = CropRule(kind="landmarks", template=DLIB_TEMPLATE_150, template_size=(150, 150))
    spec = InputSpec(height=150, width=150, color="RGB", crop=rule)
    # a face 1.8x larger than the chip, turned 12 degrees, somewhere in a 400x400 photo
    angle, scale = np.deg2rad(12), 1.8
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = np.asarray(DLIB_TEMPLATE_150) @ rotation.T + (90, 60)
    photo = np.zeros((400, 400, 3), np.uint8)
    for x, y in points:
        cv2.circle(photo, (round(x), round(y)), 3, (0, 0, 255), -1)
    face = Face(box=(90, 60, 270, 270), score=1.0, landmarks=points.astype(np.float32))
    crop = cut_face(photo, spec, face)
    assert crop.shape == (150, 150, 3)
    for x, y in np.round(DLIB_TEMPLATE_150).astype(int):
        assert crop[y, x, 2] > 200, f"landmark not at ({x}, {y})"
    assert crop[5, 5, 2] == 0  # and the rest of the photo is not red


def test_the_template_travels_in_the_manifest_and_old_rules_are_unchanged():
    rule = CropRule(kind="landmarks", template=DLIB_TEMPLATE_150, template_size=(150, 150))
    d = rule.to_dict()
    assert d["template_size"] == [150, 150] and len(d["template"]) == 5
    assert CropRule.from_dict(d) == rule
    # the ArcFace and box rules write what they always wrote (bundle fingerprints hold)
    assert set(CropRule(kind="landmarks").to_dict()) == {
        "from",
        "margin_px",
        "margin_frac",
        "square",
        "align",
    }
    with pytest.raises(BundleError, match="5 \\(x, y\\) points and its template_size"):
        CropRule(kind="landmarks", template=DLIB_TEMPLATE_150[:4], template_size=(150, 150))
    with pytest.raises(BundleError, match="template_size"):
        CropRule.from_dict({"from": "landmarks", "template": [list(p) for p in DLIB_TEMPLATE_150]})
