"""Open-set calibration: rules tried, thresholds measured on simulated galleries."""

from dataclasses import replace

import numpy as np

from edge.gallery.matching import Matcher
from edge.gallery.openset import MULTI_VIEWS, calibrate_open_set


def _faces(rng: np.random.Generator, people: int, photos: int, prefix: str) -> dict:
    """Unit embeddings sharing one large common direction, as face networks' do."""
    dim = 16
    common = np.zeros(dim)
    common[0] = 2.5
    out = {}
    for i in range(people):
        centre = rng.standard_normal(dim)
        for j in range(photos if i % 2 else 1):  # half the people have one photo only
            x = common + centre + 0.45 * rng.standard_normal(dim)
            out[f"{prefix}{i}/{j}.jpg"] = (x / np.linalg.norm(x)).astype(np.float32)
    return out


def test_thresholds_are_measured_per_view_count_and_hold_for_new_strangers():
    rng = np.random.default_rng(0)
    report = calibrate_open_set(_faces(rng, 600, 5, "dev"), fpir=0.05)
    rule = report.open_set
    norms = ("none", "z", "t", "s")
    assert set(report.by_norm) == {f"{n}{c}" for n in norms for c in ("", ", centred")}
    assert set(rule.measured) == {1, MULTI_VIEWS}
    for sizes, thresholds in rule.measured.values():
        assert list(sizes) == sorted(sizes) and list(thresholds) == sorted(thresholds)
    assert all(v is not None for v in report.several_view_dir.values())
    # new people and strangers from the same population: a gallery of several views
    # each lets through about the target, not the several times more independence gives
    test = _faces(rng, 400, 4, "test")
    by_id: dict[str, list[str]] = {}
    for path in sorted(test):
        by_id.setdefault(path.split("/")[0], []).append(path)
    enrolled = [k for k, v in by_id.items() if len(v) >= MULTI_VIEWS][:100]
    strangers = np.stack([test[v[0]] for k, v in by_id.items() if len(v) == 1])
    names = [k for k in enrolled for _ in range(MULTI_VIEWS)]
    gallery = np.stack([test[p] for k in enrolled for p in by_id[k][:MULTI_VIEWS]])

    def fpir(r) -> float:
        named = Matcher(names, gallery, 0.0, open_set=r).match(strangers)
        return float(np.mean([m.name is not None for m in named]))

    assert fpir(rule) <= 0.1 < fpir(replace(rule, measured=None))  # measured 0.065 vs 0.13


def test_calibrate_says_which_rule_it_chose_and_what_measuring_changed():
    from edge.cli.main import _open_set_lines

    report = calibrate_open_set(_faces(np.random.default_rng(1), 600, 5, "dev"), fpir=0.05)
    text = _open_set_lines(report, enrolled=0)
    rule = report.open_set
    assert report.rule in report.by_norm  # the chosen rule is one of those tried
    assert f"open set: {rule.norm}-norm" in text
    assert ("centred on the cohort mean" in text) == rule.center
    assert f"measured from {MULTI_VIEWS}" in text
    delivered = report.independence_fpir[report.rule]
    assert delivered and all(f"({where})" in text for where in delivered)
