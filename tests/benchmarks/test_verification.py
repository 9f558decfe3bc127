"""The verification protocol on score lists whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from _verification import auc, best_threshold, fold_ids, kfold, read_pairs, roc, tar_at_far

from edge.base.errors import FacelensError


def test_separable_scores_give_full_accuracy_and_auc():
    same = np.array([True] * 50 + [False] * 50)
    scores = np.where(same, 0.8, 0.2) + np.linspace(0, 0.1, 100)
    result = kfold(scores, same, folds=10)
    assert result["mean"] == 1.0 and result["std"] == 0.0
    assert all(0.3 < t < 0.8 for t in result["thresholds"])
    assert auc(scores, same) == 1.0
    assert auc(-scores, same) == 0.0


def test_folds_are_stratified_even_for_a_sorted_list():
    same = np.array([True] * 30 + [False] * 30)  # LFW lists are sorted like this
    ids = fold_ids(same, 10)
    for k in range(10):
        assert same[ids == k].sum() == 3 and (~same[ids == k]).sum() == 3


def test_random_scores_are_near_chance():
    rng = np.random.default_rng(0)
    same = rng.permutation(np.array([True, False] * 300))
    result = kfold(rng.random(600), same, folds=10)
    assert 0.4 < result["mean"] < 0.6


def test_training_pairs_fix_the_threshold():
    same = np.array([True, False] * 20)
    scores = np.where(same, 0.9, 0.1)
    train = (np.array([0.7, 0.6, 0.4, 0.3]), np.array([True, True, False, False]))
    result = kfold(scores, same, folds=4, train=train)
    assert result["thresholds"] == [best_threshold(*train)] * 4
    assert 0.4 <= result["thresholds"][0] <= 0.6
    assert result["mean"] == 1.0


def test_tar_at_far_with_too_few_different_pairs_means_no_false_accept():
    same = np.array([True] * 4 + [False] * 500)
    scores = np.concatenate([[0.9, 0.8, 0.5, 0.3], np.linspace(0, 0.6, 500)])
    r = tar_at_far(scores, same, 1e-3)
    assert r["far"] == 0.0 and r["threshold"] == pytest.approx(0.6)
    assert r["tar"] == 0.5  # 0.9 and 0.8 beat the best impostor
    far, tar = roc(scores, same)
    assert far[0] == tar[0] == 0.0 and far[-1] == tar[-1] == 1.0
    assert np.all(np.diff(far) >= 0) and np.all(np.diff(tar) >= 0)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a,b,same\nx.jpg,x.jpg,1\n", ["img_a", "img_b"]),
        ("img_a,img_b,same\nx.jpg,x.jpg,yes\n", [":2", "same='yes'"]),
        ("img_a,img_b,same\nx.jpg,nope.jpg,1\n", [":2", "nope.jpg", "--images"]),
        ("img_a,img_b,same\nx.jpg,x.jpg,1\n", ["both"]),
    ],
)
def test_bad_pair_files_name_the_problem(tmp_path, text, words):
    (tmp_path / "x.jpg").write_bytes(b"")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(text)
    with pytest.raises(FacelensError) as err:
        read_pairs(pairs, tmp_path)
    for word in words:
        assert word in str(err.value)
