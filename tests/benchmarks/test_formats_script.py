"""formats.py end to end on the tiny bundle: every artifact x runtime, each in its own process."""

from __future__ import annotations

import shutil

import pytest

EXPECTED = {
    ("savedmodel", "tensorflow"),
    ("keras", "tensorflow"),
    ("tflite-int8", "litert"),
    ("tflite-fp16", "litert"),
    ("tflite-dynamic", "litert"),
    ("onnx", "onnxruntime"),
    ("onnx", "opencv"),
    ("onnx-int8", "onnxruntime"),
    ("onnx-int8", "opencv"),
}


def test_every_format_and_runtime_gets_sane_numbers(tiny_bundle, tmp_path, run_script, read_report):
    proc = run_script(
        "formats",
        "--bundle",
        tiny_bundle.path,
        "--threads",
        "1",
        "--runs",
        "5",
        "--warmup",
        "1",
        "--num-faces",
        "4",
        "--out",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = read_report(tmp_path, "formats")
    rows = {(r["format"], r["runtime"]): r for r in report["rows"]}
    assert set(rows) == EXPECTED
    for key, r in rows.items():
        assert not r["error"], (key, r["error"])
        assert r["size_mb"] > 0 and r["load_ms"] > 0 and r["first_ms"] > 0
        assert 0 < r["median_ms"] <= r["p95_ms"] <= r["p99_ms"]
        assert r["ips_b1"] == pytest.approx(1000 / r["median_ms"])
        assert r["ips_b8"] > 0, (key, r["notes"])
        assert r["peak_rss_mb"] > r["base_rss_mb"] > 10
        assert r["cos_min"] <= r["cos_mean"] <= 1 + 1e-5
        assert r["load1"] >= 0
    # float formats agree with the float reference; quantized ones are close, not identical
    for fmt in ("savedmodel", "keras", "tflite-fp16"):
        assert rows[(fmt, "tensorflow" if fmt != "tflite-fp16" else "litert")]["cos_min"] > 0.999
    for key in (("tflite-int8", "litert"), ("onnx-int8", "onnxruntime")):
        assert 0.9 < rows[key]["cos_min"] < 1.0
    # TensorFlow costs memory the edge runtimes do not
    assert (
        rows[("keras", "tensorflow")]["peak_rss_mb"]
        > rows[("tflite-int8", "litert")]["peak_rss_mb"]
    )
    ratios = {(r["ratio"], r["threads"]): r["speedup"] for r in report["ratios"]}
    assert set(ratios) == {
        ("INT8 TFLite vs float Keras", 1),
        ("INT8 TFLite vs float ONNX", 1),
        ("INT8 ONNX vs float ONNX", 1),
    }
    assert all(v > 0 for v in ratios.values())
    assert report["machine"]["cores"] >= 1 and report["machine"]["versions"]["numpy"]
    assert proc.stdout.count("\n| ") == len(EXPECTED) + 1  # header + one row each
    assert (tmp_path / "formats.png").stat().st_size > 10_000
    assert (tmp_path / "formats.csv").read_text().count("\n") == len(EXPECTED) + 1


def test_a_broken_artifact_is_a_row_not_a_crash(tiny_bundle, tmp_path, run_script, read_report):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.path, bundle)
    with open(bundle / "model.onnx", "ab") as f:
        f.write(b"tampered")
    proc = run_script(
        "formats",
        "--bundle",
        bundle,
        "--formats",
        "onnx,tflite-int8",
        "--threads",
        "1",
        "--runs",
        "3",
        "--num-faces",
        "2",
        "--out",
        tmp_path / "out",
    )
    assert proc.returncode == 0, proc.stderr
    rows = {
        (r["format"], r["runtime"]): r for r in read_report(tmp_path / "out", "formats")["rows"]
    }
    for runtime in ("onnxruntime", "opencv"):
        assert "sha256" in rows[("onnx", runtime)]["error"]
        assert rows[("onnx", runtime)]["median_ms"] is None
    assert not rows[("tflite-int8", "litert")]["error"]
    assert rows[("tflite-int8", "litert")]["median_ms"] > 0
    assert "sha256" in proc.stdout  # the table shows the error


def test_bad_arguments_are_clean_errors(tiny_bundle, tmp_path, run_script, assert_clean_error):
    proc = run_script("formats", "--bundle", tiny_bundle.path, "--formats", "nope")
    assert_clean_error(proc, "nope")
    proc = run_script("formats", "--bundle", tiny_bundle.path, "--threads", "0")
    assert_clean_error(proc, "--threads")
    proc = run_script("formats", "--bundle", tiny_bundle.path, "--faces", tmp_path / "none")
    assert_clean_error(proc, "--faces")
