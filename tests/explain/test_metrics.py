"""Map-agreement and faithfulness metrics on inputs whose values are known."""

import numpy as np
import pytest

from explain.metrics import cosine, deletion_insertion, spearman, ssim, top_iou, top_mask
from explain.models import ExplainModel
from explain.targets import self_target


def test_identical_maps_agree_perfectly_and_reversed_ones_do_not():
    rng = np.random.default_rng(0)
    m = rng.random((32, 32))
    assert spearman(m, m) == pytest.approx(1.0)
    assert ssim(m, m) == pytest.approx(1.0)
    assert top_iou(m, m) == 1.0
    assert spearman(m, -m) == pytest.approx(-1.0)
    assert top_iou(m, -m) == 0.0
    # Agreement ignores scale and offset: an INT8 map may be uniformly weaker.
    assert spearman(m, 0.5 * m + 3) == pytest.approx(1.0)
    assert ssim(m, 0.5 * m + 3) == pytest.approx(1.0)


def test_top_mask_takes_the_requested_fraction():
    m = np.arange(100.0).reshape(10, 10)
    mask = top_mask(m, 0.1)
    assert mask.sum() == 10 and mask[9].all()
    shifted = np.roll(m, 1, axis=0)  # top row moves from row 9 to row 0
    assert top_iou(m, shifted) == 0.0


def test_constant_maps_have_no_ranking():
    assert spearman(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert spearman(np.zeros((4, 4)), np.eye(4)) == 0.0


def test_cosine():
    assert cosine([1, 0], [0, 2]) == 0.0
    assert cosine([1, 1], [2, 2]) == pytest.approx(1.0)


def test_deletion_rewards_the_map_that_points_at_what_the_model_reads(toys):
    model = toys.window_model(0, 16, 0, 16)
    features = ExplainModel(model, toys.SPEC, None, "w").features()
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 60, (toys.SIZE, toys.SIZE, 3)).astype(np.float32)
    image[..., 2] += 180  # reddish: greying it out turns the features' direction
    target = self_target(features(image[None]))
    right = np.zeros((toys.SIZE, toys.SIZE))
    right[0:16, 0:16] = 1.0
    right += rng.random(right.shape) * 1e-3  # an order inside the window
    wrong = right[::-1, ::-1]  # points at the opposite corner
    good = deletion_insertion(image, right, features, target, steps=12)
    bad = deletion_insertion(image, wrong, features, target, steps=12)
    assert good["deletion_auc"] < bad["deletion_auc"] - 0.01
    assert good["insertion_auc"] > bad["insertion_auc"] + 0.01
