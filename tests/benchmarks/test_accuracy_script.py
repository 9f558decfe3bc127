"""accuracy.py end to end on the tiny bundle and real LFW photos, with known answers."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest


def write_pairs(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["img_a", "img_b", "same"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def devtest_rows(lfw_dir: Path) -> list[tuple[str, str, int]]:
    with open(lfw_dir / "pairs_devtest.csv", newline="") as f:
        return [(r["img_a"], r["img_b"], int(r["same"])) for r in csv.DictReader(f)]


def test_identical_photo_pairs_are_all_accepted(
    tiny_bundle, lfw_dir, devtest_rows, tmp_path, run_script, read_report
):
    photos = sorted({a for a, _, _ in devtest_rows})[:40:2]
    # same: a photo with itself; different: two photos of two different people
    rows = [(p, p, 1) for p in photos] + [
        (a, b, 0) for a, b, same in devtest_rows[::25] if not same
    ][:20]
    pairs = write_pairs(tmp_path / "identical.csv", rows)
    proc = run_script(
        "accuracy",
        "--bundle",
        tiny_bundle.path,
        "--pairs",
        pairs,
        "--images",
        lfw_dir / "images",
        "--folds",
        "5",
        "--out",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = read_report(tmp_path, "accuracy")
    formats = [r["format"] for r in report["rows"]]
    assert formats[0] in ("keras", "savedmodel")  # the float reference comes first
    assert {"tflite-int8", "onnx-int8"} <= set(formats)
    for row in report["rows"]:
        assert not row["error"], row
        assert row["acc_pct"] == 100.0 and row["std_pct"] == 0.0
        assert row["tar_pct"] == 100.0 and row["auc"] == 1.0
        assert row["drop_pts"] == 0.0
    assert report["rows"][0]["cos_min"] == pytest.approx(1.0, abs=1e-5)
    assert 0.9 < report["rows"][1]["cos_mean"] <= 1.0 + 1e-5
    assert "| accuracy % |" in proc.stdout and "machine: " in proc.stdout
    assert (tmp_path / "roc.png").stat().st_size > 10_000
    assert (tmp_path / "accuracy.csv").read_text().count("\n") == len(formats) + 1


def test_shuffled_labels_give_chance_accuracy(
    tiny_bundle, lfw_dir, devtest_rows, tmp_path, run_script, read_report
):
    rows = devtest_rows[:100] + devtest_rows[-100:]
    labels = [same for _, _, same in rows]
    random.Random(0).shuffle(labels)
    pairs = write_pairs(
        tmp_path / "shuffled.csv", [(a, b, s) for (a, b, _), s in zip(rows, labels, strict=True)]
    )
    # the threshold comes from a separate training file: the unshuffled labels of other pairs
    train = write_pairs(tmp_path / "train.csv", devtest_rows[100:160] + devtest_rows[-160:-100])
    proc = run_script(
        "accuracy",
        "--bundle",
        tiny_bundle.path,
        "--pairs",
        pairs,
        "--images",
        lfw_dir / "images",
        "--train-pairs",
        train,
        "--formats",
        "tflite-int8",
        "--out",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = read_report(tmp_path, "accuracy")["rows"]
    assert 35.0 < row["acc_pct"] < 65.0
    assert 0.35 < row["auc"] < 0.65
    result = read_report(tmp_path, "accuracy")["results"]["tflite-int8 (litert)"]
    assert result["threshold_from"] == "training pairs file"
    assert len(set(result["thresholds"])) == 1


def test_a_missing_photo_is_a_clean_error(
    tiny_bundle, lfw_dir, tmp_path, assert_clean_error, run_script
):
    pairs = write_pairs(tmp_path / "p.csv", [("Nobody/Nobody_0001.jpg", "x.jpg", 1)])
    proc = run_script(
        "accuracy",
        "--bundle",
        tiny_bundle.path,
        "--pairs",
        pairs,
        "--images",
        lfw_dir / "images",
        "--out",
        tmp_path,
    )
    assert_clean_error(proc, "Nobody_0001.jpg", "--images")


def test_a_missing_bundle_is_a_clean_error(tmp_path, assert_clean_error, run_script):
    proc = run_script("accuracy", "--bundle", tmp_path / "none", "--out", tmp_path)
    assert_clean_error(proc, "manifest.json")
