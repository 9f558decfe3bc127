"""Landmark regions follow the face, and landmarks follow the crop."""

import json

import numpy as np
import pytest

from edge.faces.detect import YuNetDetector
from edge.model.preprocess import CropRule, InputSpec
from explain.crops import FaceLoader, landmarks_in_crop, read_image
from explain.regions import REGIONS, region_masks, region_scores

# An upright face in a 100x100 image: eyes, nose tip, mouth corners (x, y).
FACE = np.array([[40, 45], [60, 45], [50, 57], [42, 68], [58, 68]], np.float32)


def at(mask, x, y):
    return bool(mask[int(y), int(x)])


def test_regions_sit_where_the_landmarks_say_and_do_not_overlap():
    masks = region_masks(FACE, (100, 100))
    assert list(masks) == list(REGIONS)
    assert at(masks["eyes"], 40, 45) and at(masks["eyes"], 60, 45)
    assert at(masks["nose"], 50, 53)
    assert at(masks["mouth"], 50, 68)
    assert at(masks["forehead"], 50, 32)
    assert at(masks["below_chin"], 50, 95)
    assert not at(masks["below_chin"], 50, 75)  # the chin itself is still face
    stacked = np.sum([m.astype(int) for m in masks.values()], axis=0)
    assert stacked.max() == 1


def test_regions_turn_with_the_face():
    # The same face turned 90 degrees (lying on its side, top of the head to the left).
    turned = np.stack([100 - FACE[:, 1], FACE[:, 0]], axis=1)
    masks = region_masks(turned, (100, 100))
    assert at(masks["forehead"], 100 - 32, 50)
    assert at(masks["below_chin"], 100 - 95, 50)
    assert at(masks["mouth"], 100 - 68, 50)


def test_region_scores_average_the_heatmap_inside_each_region():
    masks = region_masks(FACE, (100, 100))
    heatmap = masks["eyes"].astype(np.float32) * 3.0
    scores = region_scores(heatmap, masks)
    assert scores["eyes"] == pytest.approx(3.0)
    assert scores["mouth"] == scores["forehead"] == 0.0


def test_landmarks_follow_the_box_crop_exactly(lfw_dir, yunet_path, faceres_dir):
    spec = InputSpec.from_dict(json.loads((faceres_dir / "input_spec.json").read_text()))
    path = lfw_dir / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"
    loader = FaceLoader(spec, detector=YuNetDetector(yunet_path))
    crop = loader.load(path)
    assert crop.pixels.shape == (224, 224, 3)
    x, y, w, h = crop.face.box
    x0, y0 = max(0, round(x - 10)), max(0, round(y - 10))
    x1, y1 = min(250, round(x + w + 10)), min(250, round(y + h + 10))
    expected = (crop.face.landmarks - [x0, y0]) * [224 / (x1 - x0), 224 / (y1 - y0)]
    np.testing.assert_allclose(crop.landmarks, expected, atol=1.0)
    # Whole-image mode: a plain rescale of the 250x250 photo.
    whole = InputSpec(crop=CropRule(kind="whole_image"))
    image = read_image(path)
    moved = landmarks_in_crop(image.shape, whole, crop.face, crop.face.landmarks)
    np.testing.assert_allclose(moved, crop.face.landmarks * 224 / 250, atol=1.0)
