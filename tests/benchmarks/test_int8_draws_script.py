"""int8_draws.py on the tiny bundle: INT8 rebuilt per calibration draw, min/max and narrowed."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def _pairs(lfw_dir: Path, path: Path, start: int) -> Path:
    with open(lfw_dir / "pairs_devtest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    same = [r for r in rows if r["same"] == "1"][start : start + 6]
    different = [r for r in rows if r["same"] == "0"][start : start + 6]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["img_a", "img_b", "same"])
        writer.writeheader()
        writer.writerows(same + different)
    return path


def test_each_draw_builds_both_schemes_and_reports_their_spread(
    tiny_bundle, lfw_dir, tmp_path, run_script, read_report
):
    proc = run_script(
        "int8_draws",
        "--bundle",
        tiny_bundle.path,
        "--pairs",
        _pairs(lfw_dir, tmp_path / "test.csv", 0),
        "--train-pairs",
        _pairs(lfw_dir, tmp_path / "train.csv", 100),
        "--images",
        lfw_dir / "images",
        "--draws",
        "2",
        "--count",
        "8",
        "--pool",
        "16",
        "--percentiles",
        "99.9",
        "--folds",
        "2",
        "--out",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = read_report(tmp_path, "int8_draws")
    builds = report["builds"]
    assert [(b["draw"], b["ranges"]) for b in builds] == [
        (0, "min/max"),
        (0, "99.9th percentile"),
        (1, "min/max"),
        (1, "99.9th percentile"),
    ]
    for b in builds:
        assert 0 <= b["acc_pct"] <= 100 and 0 <= b["train_acc_pct"] <= 100
        assert 0 < b["cos_min"] <= b["cos_mean"] <= 1 and b["noise"] >= 0
    # narrowed ranges give another model than min/max on the same faces
    assert builds[0]["cos_mean"] != builds[1]["cos_mean"]
    assert [r["builds"] for r in report["summary"]] == [2, 2]
    minmax = report["summary"][0]
    assert minmax["acc_min"] <= minmax["acc_pct"] <= minmax["acc_max"]
    assert np.isclose(minmax["gap_pts"], report["float_acc_pct"] - minmax["acc_pct"])
    assert "| activation ranges |" in proc.stdout


def test_the_calibration_pool_leaves_the_pair_photos_out(lfw_dir):
    import int8_draws

    tony_folder = str(lfw_dir / "images" / "Tony_Blair")
    args = int8_draws.parse_args(
        ["--bundle", "b", "--calibration", tony_folder, "--count", "5", "--pool", "10"]
    )
    tony = sorted((lfw_dir / "images" / "Tony_Blair").glob("*.jpg"))
    pool = int8_draws.calibration_pool(args, set(tony[:4]))
    assert len(pool) == 10 and not set(pool) & set(tony[:4])
