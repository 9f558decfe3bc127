"""explain.py end to end on the tiny bundle: explain's methods vs the notebook's, one process."""

from __future__ import annotations

import json
import re
import shutil


def test_every_method_is_timed_against_the_notebook(tiny_bundle, tmp_path, run_script, read_report):
    proc = run_script(
        "explain",
        "--bundle",
        tiny_bundle.path,
        "--runs",
        "2",
        "--patch",
        "16",
        "--stride",
        "16",
        "--baseline-patches",
        "5",
        "--filters",
        "2",
        "--steps",
        "3",
        "--baseline-filters",
        "1",
        "--threads",
        "1",
        "--occlusion-batches",
        "1,4",
        "--out",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rows = read_report(tmp_path, "explain")["rows"]
    tasks = {}
    for row in rows:
        assert row["seconds"] > 0, row
        tasks.setdefault(row["task"], []).append(row)
    # the tiny model has one Grad-CAM layer of its own: three convolutions stand in
    assert set(tasks) == {
        "Grad-CAM (conv_last)",
        "Grad-CAM (conv1, conv2, conv_last)",
        "occlusion map",
        "filters (3 layers x 2, 3 steps)",
    }
    for task_rows in tasks.values():
        baseline, *ours = task_rows
        assert baseline["method"].startswith("notebook") and baseline["speedup"] == 1.0
        assert ours and all(r["method"].startswith("explain") for r in ours)
        for r in ours:
            assert r["speedup"] == baseline["seconds"] / r["seconds"]
    occlusion = {r["method"] for r in tasks["occlusion map"]}
    assert {m.split(": ")[1].split(" (")[0] for m in occlusion} >= {
        "float TF",
        "tflite-int8",
        "onnx-int8",
    }
    # LiteRT at every measured batch size, each copy whole and incrementally
    assert {m for m in occlusion if "tflite-int8" in m and "1 thread, batch" in m} == {
        "explain: tflite-int8 (LiteRT, 1 thread, batch 1)",
        "explain: tflite-int8 (LiteRT, 1 thread, batch 4)",
        "explain: tflite-int8 incremental (LiteRT, 1 thread, batch 1)",
        "explain: tflite-int8 incremental (LiteRT, 1 thread, batch 4)",
    }
    for row in tasks["occlusion map"][1:]:
        if "coarse-to-fine" in row["method"]:
            assert row["note"].startswith("vs the full INT8 map: correlation"), row
        else:  # each map agrees with the float one
            assert float(re.search(r"to float TF ([\d.]+)", row["note"])[1]) > 0.9, row
        if "incremental (" in row["method"]:  # the plain map to the bit, with less work
            assert "map vs the plain INT8 row: identical" in row["note"], row
            assert 0 < row["macs_share"] < 1 and row["stage_work"][1]["fraction"] < 1, row
    assert sum("coarse-to-fine" in m for m in occlusion) == 1
    for row in tasks["Grad-CAM (conv1, conv2, conv_last)"][1:]:
        assert "one trace" in row["note"]
    # 64 px / 16 px stride = 16 patches; 5 were run one predict at a time and scaled
    assert tasks["occlusion map"][0]["note"] == "16 patches, 5 run and scaled"
    filters = tasks["filters (3 layers x 2, 3 steps)"]
    assert filters[0]["note"].startswith("1 of 2 per layer run and scaled; CPU ")
    assert "float32" in filters[1]["method"]
    for row in filters:
        assert row["cpu_seconds"] > 0, row
    for row in filters[1:]:  # explain's rows: the same arithmetic, at a rate
        assert row["tflop"] == filters[1]["tflop"] > 0 and row["rate_of_lone_conv"] > 0
        assert "GFLOP per CPU-second" in row["note"], row
    assert "| speed-up vs notebook |" in proc.stdout and "machine: " in proc.stdout
    assert (tmp_path / "explain.png").stat().st_size > 10_000


def test_a_bundle_without_the_float_model_is_a_clean_error(
    tiny_bundle, tmp_path, run_script, assert_clean_error
):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.path, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["artifacts"]["keras"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    proc = run_script("explain", "--bundle", bundle, "--out", tmp_path)
    assert_clean_error(proc, "model_float.keras")
