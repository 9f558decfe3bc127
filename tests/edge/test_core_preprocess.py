"""The input contract: crop rules and normalisation, on real arrays."""

import json

import numpy as np
import pytest

from edge.base.errors import BundleError, CropError
from edge.faces.detect import Face
from edge.model.preprocess import (
    ARCFACE_TEMPLATE_112,
    CropRule,
    InputSpec,
    align_landmarks,
    crop_box,
    cut_face,
)


def test_reads_the_shared_input_spec_file(faceres_dir):
    spec = InputSpec.from_dict(json.loads((faceres_dir / "input_spec.json").read_text()))
    assert (spec.height, spec.width, spec.color) == (224, 224, "BGR")
    assert spec.mean == (103.939, 116.779, 123.68)
    assert spec.crop == CropRule(kind="detector_box", margin_px=10, square=False)
    assert InputSpec.from_dict(spec.to_dict()) == spec


def test_normalize_subtracts_mean_scales_and_orders_channels():
    spec = InputSpec(height=4, width=4, color="RGB", mean=(1.0, 2.0, 3.0), scale=(0.5, 0.5, 0.5))
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 0], bgr[..., 2] = 10, 30  # blue 10, red 30
    x = spec.normalize(bgr)
    assert x.shape == (4, 4, 3) and x.dtype == np.float32
    # RGB order: channel 0 is red.
    np.testing.assert_allclose(x[0, 0], [(30 - 1) * 0.5, (0 - 2) * 0.5, (10 - 3) * 0.5])


def test_malformed_specs_are_refused_with_the_reason():
    with pytest.raises(BundleError, match="colour order"):
        InputSpec.from_dict({"size": [8, 8], "color": "YUV"})
    with pytest.raises(BundleError, match="malformed"):
        InputSpec.from_dict({"color": "BGR"})
    with pytest.raises(BundleError, match="crop rule"):
        CropRule(kind="ellipse")


def test_crop_box_widens_by_margin_and_clips_to_the_image():
    image = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    crop = crop_box(image, (20, 30, 40, 50), CropRule(margin_px=10))
    assert crop.shape[:2] == (70, 60)
    np.testing.assert_array_equal(crop[0, 0], image[20, 10])
    clipped = crop_box(image, (80, 80, 30, 30), CropRule(margin_px=10))
    assert clipped.shape[:2] == (30, 30)  # 70..100 on both axes
    square = crop_box(image, (40, 20, 20, 40), CropRule(square=True))
    assert square.shape[0] == square.shape[1] == 40


def test_alignment_puts_landmarks_on_the_template():
    spec = InputSpec(height=112, width=112, crop=CropRule(kind="landmarks"))
    # Mark five points in a larger, shifted and scaled copy of the template.
    points = ARCFACE_TEMPLATE_112 * 1.7 + np.array([60.0, 40.0], np.float32)
    image = np.zeros((300, 300, 3), np.uint8)
    for k, (x, y) in enumerate(points):
        image[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2] = 50 * (k + 1)
    aligned = align_landmarks(image, points, spec)
    for k, (x, y) in enumerate(ARCFACE_TEMPLATE_112):
        patch = aligned[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2, 0]
        assert abs(int(patch.max()) - 50 * (k + 1)) <= 15


def test_cut_face_follows_the_rule_and_says_what_is_missing():
    image = np.zeros((50, 50, 3), np.uint8)
    whole = InputSpec(crop=CropRule(kind="whole_image"))
    assert cut_face(image, whole) is image
    with pytest.raises(CropError, match="needs a detected face"):
        cut_face(image, InputSpec())
    haar_face = Face(box=(10, 10, 20, 20), score=0.9, landmarks=None)
    with pytest.raises(CropError, match="landmarks"):
        cut_face(image, InputSpec(crop=CropRule(kind="landmarks")), haar_face)
    assert cut_face(image, InputSpec(), haar_face).shape[:2] == (20, 20)
