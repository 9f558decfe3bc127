"""Bad input to convert: a clear FacelensError, and no half-written bundle left behind."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from convert import ConversionFailed, Export, FaceSets, ModelChoice, build_bundle, load_backbone
from convert.calibration_set import calibration_and_eval
from convert.cli import main
from convert.models import ModelError
from edge.base.errors import FacelensError, ImageError
from edge.model.bundle import Bundle

REPO = Path(__file__).resolve().parents[2]


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def test_calibration_and_eval_faces_are_disjoint_and_reproducible(tiny_bundle, lfw_dir):
    spec = tiny_bundle.input_spec
    cal, held = calibration_and_eval(lfw_dir / "images", spec, 12, eval_count=8, progress=False)
    assert len(cal) == 12 and len(held) == 8
    assert cal.batch.shape == (12, 64, 64, 3) and held.batch.dtype.name == "float32"
    assert not set(cal.paths) & set(held.paths)
    # held-out faces come in identity pairs, so a threshold can be measured
    assert held.identities is not None and len(set(held.identities)) <= 4
    again, _ = calibration_and_eval(lfw_dir / "images", spec, 12, eval_count=8, progress=False)
    assert again.paths == cal.paths
    other, _ = calibration_and_eval(
        lfw_dir / "images", spec, 12, eval_count=8, seed=1, progress=False
    )
    assert other.paths != cal.paths


def test_an_eval_folder_overlapping_calibration_stays_disjoint(tiny_bundle, lfw_dir):
    person = lfw_dir / "images" / "Colin_Powell"
    cal, held = calibration_and_eval(
        person, tiny_bundle.input_spec, 5, eval_dir=person, eval_count=5, progress=False
    )
    assert len(cal) == 5 and len(held) == 5 and not set(cal.paths) & set(held.paths)


def test_photos_without_faces_are_refused(tiny_bundle, nonface_dir):
    with pytest.raises(ImageError, match=r"no usable face .*skipped: \{'no face'"):
        calibration_and_eval(nonface_dir / "skimage", tiny_bundle.input_spec, 5, progress=False)
    # YuNet finds 3 "faces" among OpenCV's samples: calibration uses them, none are left
    with pytest.raises(ImageError, match="went to calibration; pass --eval DIR"):
        calibration_and_eval(nonface_dir, tiny_bundle.input_spec, 5, progress=False)


def test_empty_or_missing_folders_are_refused(tiny_bundle, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(ImageError, match="no images"):
        calibration_and_eval(tmp_path / "empty", tiny_bundle.input_spec, 5, progress=False)
    with pytest.raises(ImageError, match="does not exist"):
        calibration_and_eval(tmp_path / "nope", tiny_bundle.input_spec, 5, progress=False)


def test_unreadable_images_are_counted_and_skipped(tiny_bundle, lfw_dir, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    photo = sorted((lfw_dir / "images" / "Tony_Blair").glob("*.jpg"))[0]
    shutil.copy(photo, tmp_path)
    cal, held = calibration_and_eval(
        tmp_path,
        tiny_bundle.input_spec,
        1,
        eval_dir=lfw_dir / "images" / "Tony_Blair",
        eval_count=2,
        progress=False,
    )
    assert len(cal) == 1 and len(held) == 2
    with pytest.raises(ImageError, match="not a folder"):
        calibration_and_eval(tmp_path / "broken.jpg", tiny_bundle.input_spec, 1)
    (tmp_path / photo.name).unlink()
    with pytest.raises(ImageError, match=r"no usable face.*'unreadable': 1"):
        calibration_and_eval(tmp_path, tiny_bundle.input_spec, 1, progress=False)


def test_unknown_layer_lists_valid_names(tiny_model):
    with pytest.raises(ModelError, match=r"no layer 'block9_pool'.*conv_last"):
        load_backbone(tiny_model[0], layer="block9_pool", input_spec=tiny_model[1])


def test_bad_model_files_and_specs_are_refused(tiny_model, tmp_path):
    model, spec = tiny_model
    with pytest.raises(ModelError, match="does not exist"):
        load_backbone(tmp_path / "missing.keras", input_spec=spec)
    (tmp_path / "junk.keras").write_bytes(b"junk")
    with pytest.raises(ModelError, match="cannot load Keras model"):
        load_backbone(tmp_path / "junk.keras", input_spec=spec)
    with pytest.raises(ModelError, match="needs --input-spec"):
        load_backbone(model)
    with pytest.raises(ModelError, match="applies to --model vgg16, dlib-resnet or sface only"):
        load_backbone(model, weights="none", input_spec=spec)
    (tmp_path / "spec.json").write_text('{"size": [32, 32], "color": "BGR"}')
    with pytest.raises(ModelError, match=r"takes \(64, 64, 3\) but the input spec says"):
        load_backbone(model, input_spec=tmp_path / "spec.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_backbone(model, input_spec=tmp_path / "bad.json")


def test_missing_imagenet_weights_say_where_to_put_them(monkeypatch):
    if (Path.home() / ".keras/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").exists():
        pytest.skip("ImageNet VGG16 weights are cached here; the offline error cannot happen")
    # a proxy that refuses connections: the download fails here and on machines online
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with pytest.raises(ModelError, match=r"~/.keras/models/vgg16_weights.*--weights PATH"):
        load_backbone("vgg16", weights="imagenet")


def test_refuses_to_overwrite_a_folder_that_is_not_a_bundle(tiny_model, lfw_dir, tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("years of work")
    with pytest.raises(FacelensError, match="not a model bundle; refusing"):
        build_bundle(
            tmp_path / "precious", faces=FaceSets(lfw_dir), model=ModelChoice(tiny_model[0])
        )
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "years of work"


def _small_build(out, tiny_model, lfw_dir, yunet_path, formats, force=False, **check):
    return build_bundle(
        out,
        faces=FaceSets(lfw_dir / "images", 10, eval_count=10, detector=yunet_path),
        model=ModelChoice(tiny_model[0], input_spec=tiny_model[1]),
        export=Export(formats, **check),
        force=force,
        progress=False,
    )


def test_under_the_floor_writes_nothing_unless_allowed(tiny_model, lfw_dir, yunet_path, tmp_path):
    out = tmp_path / "b"
    with pytest.raises(ConversionFailed, match="tflite-int8 failed or fell under") as info:
        _small_build(out, tiny_model, lfw_dir, yunet_path, ["tflite-int8"], min_cosine=1.01)
    assert "BELOW FLOOR" in info.value.table
    assert not out.exists() and _leftovers(tmp_path) == []
    bundle = _small_build(
        out,
        tiny_model,
        lfw_dir,
        yunet_path,
        ["tflite-int8", "keras"],
        min_cosine=0.99999,
        allow_failures=True,
    )
    fid = bundle.artifact("tflite-int8").fidelity
    assert not fid.passed and fid.floor == 0.99999
    assert bundle.artifact("keras").fidelity.passed
    # an existing bundle is replaced only with force
    with pytest.raises(FacelensError, match="--force"):
        _small_build(out, tiny_model, lfw_dir, yunet_path, ["keras"])
    again = _small_build(out, tiny_model, lfw_dir, yunet_path, ["keras"], force=True)
    assert again.formats == ["keras"] and Bundle.load(out).formats == ["keras"]
    assert _leftovers(tmp_path) == []


def test_cli_reports_bad_input_in_one_line(capsys, tmp_path):
    assert main(["--out", str(tmp_path / "b"), "--calibration", str(tmp_path / "no")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: image folder") and "Traceback" not in "".join(err)
    assert main(["--out", str(tmp_path / "b"), "--calibration", ".", "--formats", "tflite"]) == 1
    assert "unknown format(s) tflite" in capsys.readouterr().err


def test_cli_builds_a_bundle_and_prints_its_table(
    capsys, tiny_model, lfw_dir, yunet_path, tmp_path
):
    out = tmp_path / "cli-bundle"
    args = [
        "--model", str(tiny_model[0]), "--input-spec", str(tiny_model[1]),
        "--calibration", str(lfw_dir / "images"), "--calibration-count", "8",
        "--eval-count", "6", "--detector", str(yunet_path), "--formats", "tflite-int8,onnx-int8",
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["format", "MB", "cos", "mean", "cos", "min", "seconds", "status"]
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    assert set(rows) == {"tflite-int8", "onnx-int8"} and all(r[-1] == "ok" for r in rows.values())
    bundle = Bundle.load(out)
    assert float(rows["onnx-int8"][3]) == round(bundle.artifact("onnx-int8").fidelity.cosine_min, 4)
    assert lines[-1].startswith(f"bundle: {out}")
    assert bundle.manifest.calibration.count == 8 and bundle.manifest.eval.count == 6
    # 6 held-out faces hold too few pairs of one person: the threshold says it is a guess
    warning = bundle.manifest.threshold.warning
    assert "NOT calibrated" in warning and f"warning: {warning}" in lines
    # ... and so does every edge command that reports its threshold, until calibrated
    from edge.api import FaceLens

    lens = FaceLens(out, tmp_path / "people.db", detector=yunet_path, threads=1)
    assert "(bundle default, NOT calibrated: run `edge calibrate`)" in lens.describe()


def _limit_file_size() -> None:
    # a disk that fills up: writes past 20 kB fail with EFBIG instead of killing the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))


def test_a_full_disk_leaves_no_bundle_and_no_traceback(tiny_model, lfw_dir, yunet_path, tmp_path):
    out = tmp_path / "b"
    cmd = [
        sys.executable, "-m", "convert", "--model", str(tiny_model[0]),
        "--input-spec", str(tiny_model[1]), "--calibration", str(lfw_dir / "images"),
        "--calibration-count", "5", "--eval-count", "5", "--detector", str(yunet_path),
        "--formats", "keras,onnx", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    run = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, preexec_fn=_limit_file_size,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: cannot write the bundle")
    assert "Traceback" not in run.stderr
    assert not out.exists() and _leftovers(tmp_path) == []


def test_no_detect_uses_whole_photos_and_a_default_threshold(
    tiny_model, nonface_dir, tmp_path, caplog
):
    # the notebook's mode: no detector at all, so even photos without faces calibrate;
    # a flat folder carries no identities, so the threshold is a placeholder that says so
    bundle = build_bundle(
        tmp_path / "b",
        faces=FaceSets(nonface_dir / "skimage", calibration_count=6, eval_count=4),
        model=ModelChoice(tiny_model[0], input_spec=tiny_model[1], no_detect=True),
        export=Export(formats=["tflite-int8"]),
        progress=False,
    )
    m = bundle.manifest
    assert bundle.input_spec.crop.kind == "whole_image"
    assert m.calibration.count == 6 and m.calibration.detector.startswith("none")
    assert m.eval.count == 4
    assert m.threshold.cosine == 0.5 and "edge calibrate" in m.threshold.how
    assert "NOT calibrated" in m.threshold.warning and "edge calibrate" in m.threshold.warning
    assert m.threshold.warning in caplog.text  # and said while building
