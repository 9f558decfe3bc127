"""Matching: one matrix product, best-of-person scores, threshold decides unknown."""

import numpy as np
import pytest

from edge.matching import Matcher


def unit(*rows: list[float]) -> np.ndarray:
    x = np.asarray(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_person_score_is_their_best_embedding_and_threshold_rejects():
    gallery = unit([1, 0, 0], [0, 1, 0], [0.6, 0.8, 0], [0, 0, 1])
    names = ["bob", "alice", "bob", "carol"]  # bob's two embeddings are not adjacent
    matcher = Matcher(names, gallery, threshold=0.9)
    assert matcher.people == ["alice", "bob", "carol"]
    queries = unit([0.6, 0.8, 0], [0, 0.1, 1], [1, 1, 1])
    scores = matcher.scores(queries)
    # bob = max(cos to [1,0,0], cos to [0.6,0.8,0]) = 1.0 for the first query
    np.testing.assert_allclose(scores[0], [0.8, 1.0, 0.0], atol=1e-6)
    matches = matcher.match(queries)
    assert [m.name for m in matches] == ["bob", "carol", None]
    assert matches[2].nearest in ("alice", "bob", "carol")
    assert matches[2].score == pytest.approx(float(scores[2].max()))


def test_empty_gallery_names_no_one():
    matcher = Matcher([], np.zeros((0, 0), np.float32), threshold=0.5)
    assert len(matcher) == 0
    assert [m.name for m in matcher.match(unit([1, 0]))] == [None]


def test_dimension_mismatch_is_refused():
    matcher = Matcher(["a"], unit([1, 0, 0]), threshold=0.5)
    with pytest.raises(ValueError, match="dims"):
        matcher.match(unit([1, 0]))
