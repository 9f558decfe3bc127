"""The one score unit: match confidence from the calibrated false-match curve."""

import numpy as np
import pytest

from edge.base.errors import FacelensError
from edge.gallery.bundled import read_rule, write_rule
from edge.gallery.confidence import (
    DECISION,
    DEFAULT_FPIR,
    Scale,
    check_confidence,
    confidence,
    confidence_of_fpir,
    cosine_of_confidence,
    fpir_of_confidence,
    stranger_rate,
)
from edge.gallery.matching import Matcher
from edge.gallery.openset import calibrate_open_set
from tests.edge.test_open_set_calibration import _faces


@pytest.fixture(scope="module")
def calibrated():
    rng = np.random.default_rng(1)
    rule = calibrate_open_set(_faces(rng, 600, 4, "dev"), fpir=DEFAULT_FPIR).open_set
    test = _faces(rng, 600, 4, "test")
    return rule, test


def test_the_unit_is_a_stranger_rate_with_the_decision_at_one_in_a_hundred():
    assert pytest.approx(0.5) == DECISION and confidence_of_fpir(0.01) == pytest.approx(0.5)
    assert confidence_of_fpir(0.001) == pytest.approx(0.75)
    for c in (0.1, 0.5, 0.8):
        assert confidence_of_fpir(fpir_of_confidence(c)) == pytest.approx(c)
    with pytest.raises(FacelensError, match="not a match confidence"):
        check_confidence(1.5)


def test_names_exactly_at_the_decision_confidence_and_fpir_moves_only_the_threshold(calibrated):
    rule, test = calibrated
    people = sorted({k.split("/")[0] for k in test})[:50]
    names = [p for p in people for _ in range(1)]
    gallery = np.stack([test[f"{p}/0.jpg"] for p in people])
    probes = np.stack(list(test.values()))
    for fpir in (0.01, 0.001):
        matcher = Matcher(names, gallery, 0.0, open_set=rule.with_fpir(fpir))
        for m in matcher.match(probes):
            assert (m.name is not None) == (m.confidence >= confidence_of_fpir(fpir) - 1e-9)
        if fpir == 0.01:
            first = [m.confidence for m in matcher.match(probes)]
    # the same photo keeps its confidence whatever the operating point
    again = Matcher(names, gallery, 0.0, open_set=rule.with_fpir(0.001)).match(probes)
    np.testing.assert_allclose([m.confidence for m in again], first)


def test_a_calibrated_confidence_is_the_share_of_strangers_that_score_as_high(calibrated):
    rule, test = calibrated
    people = sorted({k.split("/")[0] for k in test})
    enrolled, strangers = people[:100], people[100:]
    gallery = np.stack([test[f"{p}/0.jpg"] for p in enrolled])
    matcher = Matcher(enrolled, gallery, 0.0, open_set=rule)
    probes = np.stack([test[f"{p}/0.jpg"] for p in strangers])
    conf = np.array([m.confidence for m in matcher.match(probes)])
    # about 1 in 100 strangers at 0.5, about 1 in 10 at 0.25: the unit's promise
    assert np.mean(conf >= 0.5) < 0.04 and 0.03 < np.mean(conf >= 0.25) < 0.3
    assert stranger_rate(1e9, rule, 100) < 1e-3 and stranger_rate(-1e9, rule, 100) > 0.99


def test_without_calibration_the_cosine_threshold_sits_at_the_decision():
    scale = Scale(None, 3, cosine=0.8)
    assert confidence(0.8, scale) == pytest.approx(DECISION)
    assert confidence(0.0, scale) == 0.0 and confidence(1.0, scale) == pytest.approx(1.0)
    for c in (0.2, 0.5, 0.9):
        assert confidence(cosine_of_confidence(c, 0.8), scale) == pytest.approx(c)


def test_a_rule_survives_its_bundle_file(calibrated, tmp_path):
    rule, _ = calibrated
    write_rule(rule, tmp_path / "open_set.npz")
    back = read_rule(tmp_path / "open_set.npz")
    assert back.settings() == rule.settings()
    np.testing.assert_allclose(back.cohort, rule.cohort, atol=1e-6)
    assert back.threshold(20, 3) == pytest.approx(rule.threshold(20, 3))


def test_a_bundle_carries_its_rule_pinned_by_sha256(faceres_bundle, tmp_path):
    """The bundle built from LFW (one folder per person) decides for a new gallery."""
    import shutil

    from edge.api import FaceLens
    from edge.base.errors import BundleError
    from edge.gallery.bundled import bundle_rule
    from edge.model.bundle import Bundle

    info = faceres_bundle.manifest.open_set
    assert info.file and info.people >= 20 and len(info.identities) == info.people
    with FaceLens(faceres_bundle, tmp_path / "g.db") as lens:
        assert lens.threshold.open_set is not None
        assert "the bundle's open-set calibration" in lens.threshold.origin
    copy = tmp_path / "bundle"
    shutil.copytree(faceres_bundle.path, copy)
    with open(copy / info.file, "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="does not match the sha256"):
        bundle_rule(Bundle.load(copy))
