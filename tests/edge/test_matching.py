"""Matching: one matrix product, best-of-person scores, threshold decides unknown."""

from dataclasses import replace

import numpy as np
import pytest

from edge.gallery.matching import Matcher, OpenSet


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
    assert matches[2].cosine == pytest.approx(float(scores[2].max()))


def test_empty_gallery_names_no_one():
    matcher = Matcher([], np.zeros((0, 0), np.float32), threshold=0.5)
    assert len(matcher) == 0
    assert [m.name for m in matcher.match(unit([1, 0]))] == [None]


def test_dimension_mismatch_is_refused():
    matcher = Matcher(["a"], unit([1, 0, 0]), threshold=0.5)
    with pytest.raises(ValueError, match="dims"):
        matcher.match(unit([1, 0]))


def test_under_an_open_set_rule_a_person_also_scores_their_centroid():
    # two views 90 degrees apart: a probe between them is closer to their mean direction
    views, probe = unit([1, 0, 0], [0, 1, 0], [0, 0, 1]), unit([1, 1, 0.05])
    rule = OpenSet(unit([0, 0, 1]), "none", ((0.0,), (1.0,)), 0.01)
    (m,) = Matcher(["a", "a", "b"], views, 0.0, open_set=rule).match(probe)
    assert m.name == "a" and m.cosine > 0.99
    # a plain cosine threshold was chosen on single comparisons: no centroid there
    (m,) = Matcher(["a", "a", "b"], views, threshold=0.9).match(probe)
    assert m.name is None and m.cosine == pytest.approx(0.706, abs=1e-3)


def _rule(cohort: np.ndarray, norm: str, fpir: float = 0.01) -> OpenSet:
    # per-comparison FAR falling tenfold per normalised unit from 1 at 0
    thresholds = tuple(float(t) for t in range(7))
    return OpenSet(cohort, norm, (thresholds, tuple(10.0**-t for t in thresholds)), fpir)


def test_the_open_set_threshold_grows_with_the_gallery():
    rule = _rule(unit([1, 0]), "none", fpir=0.01)
    assert rule.comparison_far(1) == pytest.approx(0.01)
    assert rule.comparison_far(100) == pytest.approx(1 - 0.99 ** (1 / 100))
    t1, t10, t100 = rule.threshold(1), rule.threshold(10), rule.threshold(100)
    assert t1 == pytest.approx(2.0) and t1 < t10 < t100
    assert t100 == pytest.approx(-np.log10(rule.comparison_far(100)), abs=1e-6)
    assert rule.threshold(10**9) == 6.0  # below the curve's last point: nothing passes


def test_z_norm_gives_each_person_their_own_scale():
    rng = np.random.default_rng(0)
    cohort = rng.standard_normal((400, 8)).astype(np.float32)
    cohort /= np.linalg.norm(cohort, axis=1, keepdims=True)
    gallery = unit(*np.eye(8)[:3].tolist())
    matcher = Matcher(["a", "b", "c"], gallery, 0.0, open_set=_rule(cohort, "z"))
    impostor = matcher.normalize(cohort, matcher.scores(cohort))
    np.testing.assert_allclose(impostor.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(impostor.std(axis=0), 1.0, atol=1e-4)
    (m,) = matcher.match(gallery[:1])
    assert m.name == "a" and m.normalized > matcher.threshold and m.cosine == pytest.approx(1.0)
    settings = matcher.open_set.settings()
    again = OpenSet.from_settings(settings, cohort)
    assert again.threshold(3) == matcher.threshold and again.norm == "z"


def test_the_margin_rule_rejects_a_face_between_two_people():
    rule = OpenSet(unit([0, 0, 1]), "none", ((0.0, 0.5), (1.0, 1e-9)), 0.01, margin=0.2)
    matcher = Matcher(["a", "b"], unit([1, 0, 0], [0, 1, 0]), 0.0, open_set=rule)
    between, near_a = unit([1, 0.95, 0]), unit([1, 0.1, 0])
    assert [m.name for m in matcher.match(np.concatenate([between, near_a]))] == [None, "a"]
    with pytest.raises(ValueError, match="normalisation"):
        OpenSet(unit([1, 0]), "x", ((0.0,), (1.0,)), 0.01)


def test_centring_removes_the_direction_every_face_shares():
    # every face leans along the last axis; a stranger differs from "a" only there
    rng = np.random.default_rng(1)
    cohort = unit(*(np.append(rng.standard_normal(3) * 0.3, 3.0) for _ in range(200)))
    a, stranger = unit([1, 0, 0, 3]), unit([-1, 0, 0, 3])
    plain = OpenSet(cohort, "none", ((0.0,), (1.0,)), 0.01)
    centred = OpenSet(cohort, "none", ((0.0,), (1.0,)), 0.01, center=True)
    assert float(Matcher(["a"], a, 0.0, open_set=plain).scores(stranger)[0, 0]) > 0.75
    assert float(Matcher(["a"], a, 0.0, open_set=centred).scores(stranger)[0, 0]) < -0.5
    np.testing.assert_allclose(np.linalg.norm(centred.projected_cohort, axis=1), 1.0, rtol=1e-5)
    again = OpenSet.from_settings(centred.settings(), cohort)
    assert again.center and not OpenSet.from_settings(plain.settings(), cohort).center


def test_a_measured_table_gives_people_with_several_views_their_own_threshold():
    measured = {1: ((1, 10, 100), (1.0, 2.0, 3.0)), 3: ((1, 10, 100), (1.5, 2.5, 3.5))}
    rule = _rule(unit([1, 0]), "none", fpir=0.01)
    table = replace(rule, measured=measured)
    assert table.threshold(10) == pytest.approx(2.0)
    assert table.threshold(10, views=3) == pytest.approx(2.5)
    assert table.threshold(10, views=2) == pytest.approx(2.5)  # between: the stricter
    assert table.threshold(10, views=5) == pytest.approx(2.5)
    assert table.threshold(np.sqrt(10 * 100)) == pytest.approx(2.5)  # log-size interpolation
    # past the largest simulated gallery the independence curve carries the table on
    step = rule.independent_threshold(1000) - rule.independent_threshold(100)
    assert step > 0 and table.threshold(1000) == pytest.approx(3.0 + step)
    assert OpenSet.from_settings(table.settings(), unit([1, 0])).measured == measured
    # per person, by their number of views: "b" has 3 and needs 2.5 in a gallery of 10
    names = ["a", "b", "b", "b", *(f"x{i}" for i in range(8))]
    matrix = unit(*np.eye(12)[: len(names)].tolist())
    matcher = Matcher(names, matrix, 0.0, open_set=table)
    assert matcher.person_thresholds.tolist() == pytest.approx([2.0, 2.5] + [2.0] * 8)
