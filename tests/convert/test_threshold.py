"""The bundle's default threshold: measured on held-out pairs, else the model's own rule,
else a placeholder that says it is one."""

from __future__ import annotations

import numpy as np
import pytest

from convert.threshold import MIN_PAIRS, choose_threshold
from edge.model.manifest import DEFAULT_THRESHOLD


def _features(people: int, photos: int, dim: int = 16) -> tuple[np.ndarray, list[str]]:
    """``photos`` noisy unit vectors around each of ``people`` random centres."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(people, dim))
    feats = np.repeat(centres, photos, axis=0) + 0.3 * rng.normal(size=(people * photos, dim))
    ids = [f"p{i}" for i in range(people) for _ in range(photos)]
    return feats / np.linalg.norm(feats, axis=1, keepdims=True), ids


def test_enough_pairs_measure_a_threshold_and_the_native_rule():
    feats, ids = _features(people=6, photos=4)  # 36 genuine pairs
    choice = choose_threshold(feats, ids, native_distance=0.6)
    assert choice.far == 0.01 and "FAR" in choice.how and choice.warning is None
    assert 0.0 < choice.cosine < 1.0
    assert choice.native["rule"].startswith("euclidean distance < 0.6")
    assert 0 <= choice.native["tar"] <= 1


@pytest.mark.parametrize(
    ("identities", "norm", "cosine"), [(None, 1.0, 0.82), ("few", 1.45, 0.9144)]
)
def test_without_pairs_dlib_keeps_its_own_rule_as_a_cosine(identities, norm, cosine):
    feats, ids = _features(people=3, photos=2)  # 3 genuine pairs, fewer than MIN_PAIRS
    assert MIN_PAIRS > 3
    feats = norm * feats  # dlib's descriptors are not unit vectors: norms 1.3-1.6 on LFW
    choice = choose_threshold(feats, ids if identities else None, native_distance=0.6)
    # |a - b| < 0.6 for descriptors of norm n is cos > 1 - 0.6^2 / (2 n^2)
    assert choice.cosine == pytest.approx(cosine, abs=1e-4)
    assert choice.warning is None and choice.far is None
    assert "euclidean distance < 0.6" in choice.how and "edge calibrate" in choice.how
    # at one norm, the cosine decides every pair as dlib's distance does
    unit = feats / norm
    dist = np.linalg.norm(feats[:, None] - feats[None, :], axis=-1)
    assert np.array_equal(dist < 0.6, unit @ unit.T > choice.cosine)


@pytest.mark.parametrize("identities", [None, "few"])
def test_without_pairs_or_a_rule_the_placeholder_warns(identities):
    feats, ids = _features(people=3, photos=2)
    choice = choose_threshold(feats, ids if identities else None)
    assert choice.cosine == DEFAULT_THRESHOLD and choice.native is None
    assert "NOT calibrated" in choice.warning and "edge calibrate --pairs" in choice.warning
    assert ("pair(s)" if identities else "no identities") in choice.warning
