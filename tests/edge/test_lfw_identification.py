"""Open-set identification on LFW with the face-trained INT8 TFLite bundle.

The protocol of ``benchmarks/openset.py`` (its functions, so there is one copy): 150
people enrolled from one photo (and, separately, from three: people with >= 4 photos)
through edge's enrolment, up to 4 other photos of each as probes, one photo each of
150 people never enrolled, under the calibration ``edge calibrate`` stores for the
dev-train pairs (cosine at FAR 1e-3 and the open-set rule). People in the dev-train
pairs are kept out of both groups so nothing is chosen on the people it is tested on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edge.model.pipeline import Pipeline

sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.fixture(scope="module")
def lfw_runs(faceres_bundle, lfw_dir, yunet_path, tmp_path_factory):
    import openset

    # module scope runs before the per-test offline YuNet setting: name the file
    engine = {"bundle": faceres_bundle, "threads": 2, "detector": yunet_path}
    pipeline = Pipeline.create(**engine)
    embed = openset.Embeddings(pipeline)  # each photo embedded once for both protocols
    cal = openset.calibrate_lfw(pipeline, lfw_dir)
    tmp = tmp_path_factory.mktemp("lfw")
    return {
        shots: openset.protocol(engine, lfw_dir, tmp / f"g{shots}.sqlite", shots, embed, cal)
        for shots in (1, 3)
    }


def test_one_shot_identification_on_lfw(lfw_runs):
    r = lfw_runs[1]
    print({k: v for k, v in r.items() if k not in ("curve", "calibration")})
    assert r["enrolled_people"] >= 100 and r["unknown_people"] >= 100
    assert r["enrolled_probes"] >= 250
    assert r["rule"].startswith("calibrated open set: s-norm")
    # Issue 11 asks for >= 0.93 named and >= 0.95 rejected. Measured with the faceres INT8
    # bundle (S-norm, centred): 0.837 named, 0.980 rejected; rank-1 ignoring any threshold
    # is 0.947 and the DIR curve gives 0.876 at 0.953 rejected, so 0.93 named is out of
    # this model's reach one-shot (not asserted). The floors sit ~2.5 standard errors
    # under the measurement, so a lost cohort, a wrong norm or a broken gallery-size rule
    # fails here; the old single cosine threshold is the baseline. Issue 22 moved the
    # operating point from 3 % to 1 % of strangers named: measured 0.787 named, 0.993
    # rejected (282 probes, 150 strangers); floors ~2.5 standard errors under that.
    assert r["open_set"]["strangers_rejected"] >= 0.97
    assert r["open_set"]["named_right"] >= 0.73
    old = r["cosine"]
    assert r["open_set"]["named_right"] + r["open_set"]["strangers_rejected"] > (
        old["named_right"] + old["strangers_rejected"]
    )


def test_three_shot_identification_on_lfw(lfw_runs):
    r = lfw_runs[3]
    print({k: v for k, v in r.items() if k not in ("curve", "calibration")})
    assert r["enrolled_people"] >= 100 and r["enrolled_probes"] >= 250
    # Issue 11 asks for >= 0.97 and >= 0.97; measured 0.971 named, 0.967 rejected
    # (benchmarks/README.md; with --flip 0.974 / 0.973). Floors ~2.5 standard errors under
    # that, as above. At issue 22's 1 % operating point: 0.921 named, 0.993 rejected.
    assert r["open_set"]["strangers_rejected"] >= 0.97
    assert r["open_set"]["named_right"] >= 0.88
    assert r["open_set"]["named_right"] > lfw_runs[1]["open_set"]["named_right"]
