"""``python -m explain`` end to end on real bundles, runtimes and photos."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from explain.cli import main

PHOTOS = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0001.jpg")


@pytest.fixture(scope="module")
def photos(lfw_dir):
    return [str(lfw_dir / "images" / p) for p in PHOTOS]


def test_compare_reports_agreement_and_gates_ci_on_the_floor(tiny_bundle, photos, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", *photos, "--bundle", str(tiny_bundle.path), "--out", str(out)]
    args += ["--patch", "16", "--stride", "8", "--formats", "onnx", "tflite-int8"]
    assert main([*args, "--min-spearman", "-1"]) == 0
    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert summary["images"] == 2 and set(summary["formats"]) == {"onnx", "tflite-int8"}
    # The float ONNX artifact is the same model in another runtime: the same map.
    assert summary["formats"]["onnx"]["spearman"]["worst"] > 0.99
    assert summary["formats"]["onnx"]["top10_iou"]["worst"] > 0.9
    assert summary["formats"]["onnx"]["embedding_cosine"]["worst"] > 0.9999
    # Maps of two different faces agree less than one face's maps across runtimes.
    assert summary["baseline_different_faces"]["spearman"] < 0.99
    int8 = summary["formats"]["tflite-int8"]
    assert -1 <= int8["spearman"]["worst"] <= int8["spearman"]["mean"] <= 1
    first = report["results"][0]
    assert set(first["faithfulness"]) == {"float", "float_gradcam", "onnx", "tflite-int8"}
    md = (out / "report.md").read_text()
    assert md.count("| tflite-int8 |") >= 4 and "Baseline, float maps of *different* faces" in md
    assert all((out / r["figure"].split("/")[-1]).is_file() for r in report["results"])
    # A floor above any possible Spearman must fail the run: that is the CI switch.
    assert main([*args, "--min-spearman", "1.01"]) == 1
    assert main([*args, "--min-iou", "1.01"]) == 1
    failed = json.loads((out / "report.json").read_text())["summary"]["failed"]
    assert failed and all("worst top10_iou" in line for line in failed)


def test_gradcam_occlusion_regions_filters_write_figures_and_numbers(tiny_bundle, photos, tmp_path):
    common = ["--bundle", str(tiny_bundle.path), "--out", str(tmp_path)]
    assert main(["gradcam", photos[0], *common]) == 0
    cam = json.loads((tmp_path / "gradcam.json").read_text())["results"][0]
    assert set(cam["layers"]) == {"conv_last"}
    assert set(cam["layers"]["conv_last"]["regions"]) >= {"eyes", "mouth", "below_chin"}
    occ = [*common, "--patch", "16", "--stride", "8"]
    assert main(["occlusion", photos[0], *occ, "--format", "tflite-int8"]) == 0
    assert json.loads((tmp_path / "occlusion.json").read_text())["format"] == "tflite-int8"
    assert main(["occlusion", photos[0], *occ, "--format", "tflite-int8", "--refine", "0.5"]) == 0
    assert json.loads((tmp_path / "occlusion.json").read_text())["refine"] == 0.5
    assert main(["regions", photos[1], *occ]) == 0
    assert main(["regions", photos[1], *common, "--method", "gradcam"]) == 0
    assert json.loads((tmp_path / "regions.json").read_text())["results"][0]["method"] == "gradcam"
    # The notebook's mode: the whole photo, no detection, so no landmarks and no regions.
    assert main(["occlusion", photos[0], *occ, "--no-detect"]) == 0
    assert json.loads((tmp_path / "occlusion.json").read_text())["results"][0]["regions"] is None
    assert main(["filters", *common, "--filters", "3", "--steps", "5"]) == 0
    filters = json.loads((tmp_path / "filters.json").read_text())["layers"]
    assert len(filters) == 3
    assert {layer["precision"] for layer in filters.values()} <= {"float32", "bfloat16"}
    assert (
        main(["filters", *common, "--filters", "2", "--steps", "2", "--precision", "float32"]) == 0
    )
    filters = json.loads((tmp_path / "filters.json").read_text())["layers"]
    assert {layer["precision"] for layer in filters.values()} == {"float32"}
    for layer in filters.values():
        assert all(
            b > a for a, b in zip(layer["start_activation"], layer["final_activation"], strict=True)
        )
    pngs = {p.name.split("_")[0] for p in tmp_path.glob("*.png")}
    assert pngs >= {"gradcam", "occlusion", "regions", "filters.png"}


def test_user_errors_are_one_line_and_name_the_fix(
    tiny_bundle, photos, nonface_dir, tmp_path, capsys
):
    bundle = ["--bundle", str(tiny_bundle.path), "--out", str(tmp_path)]
    assert main(["gradcam", photos[0], *bundle, "--layers", "block5_conv3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: layer 'block5_conv3'") and "conv_last" in err
    assert main(["gradcam", str(nonface_dir / "skimage" / "coffee.png"), *bundle]) == 1
    assert "error: no face found in" in capsys.readouterr().err
    assert main(["gradcam", str(tmp_path / "missing.jpg"), *bundle]) == 1
    assert "does not exist" in capsys.readouterr().err
    # A bundle without the float Keras model cannot be explained.
    no_float = tmp_path / "no-float"
    shutil.copytree(tiny_bundle.path, no_float)
    manifest = json.loads((no_float / "manifest.json").read_text())
    del manifest["artifacts"]["keras"]
    (no_float / "manifest.json").write_text(json.dumps(manifest))
    (no_float / "model_float.keras").unlink()
    assert main(["compare", photos[0], "--bundle", str(no_float)]) == 1
    err = capsys.readouterr().err
    assert "no float Keras model" in err and err.count("\n") == 1


IMPORT_CHECK = """
import os, sys, warnings
import cv2, numpy, tqdm, edge.model.bundle, edge.base.errors  # what explain.cli imports
env, filters = dict(os.environ), list(warnings.filters)
import explain, explain.cli, explain.precision
try:
    explain.cli.main(["--help"])
except SystemExit as done:
    assert done.code == 0
heavy = {"tensorflow", "keras", "matplotlib", "explain.commands"} & set(sys.modules)
assert not heavy, heavy
assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())
assert warnings.filters == filters
"""


def test_import_and_help_load_no_tensorflow_and_touch_no_global_state():
    proc = subprocess.run([sys.executable, "-c", IMPORT_CHECK], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "gradcam" in proc.stdout and "filters" in proc.stdout


def test_the_command_line_exits_nonzero_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "explain", "compare", "x.jpg", "--bundle", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no model bundle at")


def test_gradcam_explains_the_match_with_an_enrolled_person(tiny_bundle, photos, tmp_path, capsys):
    from edge.gallery.store import Gallery
    from edge.model.embedder import Embedder
    from explain.crops import FaceLoader, read_image

    crop = FaceLoader(tiny_bundle.input_spec).load(photos[1])
    embedding = Embedder(tiny_bundle).embed([crop.pixels.astype("uint8")])
    gallery = tmp_path / "people.db"
    with Gallery(gallery) as g:
        g.add("abdullah", embedding, tiny_bundle.fingerprint, tiny_bundle.name)
    assert read_image(photos[0]) is not None
    args = ["gradcam", photos[0], "--bundle", str(tiny_bundle.path), "--out", str(tmp_path)]
    assert main([*args, "--gallery", str(gallery), "--target", "person:abdullah"]) == 0
    result = json.loads((tmp_path / "gradcam.json").read_text())["results"][0]
    assert result["target"] == "cosine to enrolled abdullah"
    assert main([*args, "--gallery", str(gallery), "--target", "person:nobody"]) == 1
    assert "'nobody' is not enrolled" in capsys.readouterr().err


def test_anonymize_reports_every_mask_for_float_and_int8(tiny_bundle, lfw_dir, tmp_path):
    args = ["anonymize", "--bundle", str(tiny_bundle.path), "--out", str(tmp_path)]
    assert main([*args, "--lfw", str(lfw_dir / "images"), "--people", "4"]) == 0
    result = json.loads((tmp_path / "anonymize.json").read_text())
    assert result["people"] + len(result["skipped"]) == 4
    assert set(result["models"]) == {"float", "tflite-int8", "onnx-int8"}
    for per_mask in result["models"].values():
        assert list(per_mask) == ["none", "eyes", "eyes_nose", "full_face", "blur"]
        assert per_mask["none"]["similarity_drop_mean"] == 0.0
        assert per_mask["none"]["detected_rate"] == 1.0
    assert (tmp_path / "masks.png").is_file()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["occlusion", "x.jpg", "--stride", "0"], "argument --stride: 0 is too small"),
        (["occlusion", "x.jpg", "--stride", "-3"], "argument --stride: -3 is too small"),
        (["occlusion", "x.jpg", "--patch", "0"], "argument --patch: 0 is too small"),
        (["filters", "--filters", "0"], "argument --filters: 0 is too small"),
        (["occlusion", "x.jpg", "--fill", "nan"], "is not a finite number"),
        (["anonymize", "--lfw", "x", "--threshold", "2"], "not a match confidence"),
    ],
)
def test_bad_numbers_are_refused_before_any_work(args, says, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "explain", *args, "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert says in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_an_out_that_is_a_file_or_read_only_is_refused_before_any_work(tmp_path):
    a_file = tmp_path / "results.json"
    a_file.write_text("{}")
    # /proc cannot be written even by root (a chmod'ed folder can)
    for out, says in ((a_file, "is a file"), (Path("/proc/facelens-out"), "cannot write to")):
        proc = subprocess.run(
            [sys.executable, "-m", "explain", "filters", "--model", "vgg16", "--out", str(out)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert says in proc.stderr.strip().splitlines()[-1]
    assert a_file.read_text() == "{}"


def test_a_person_enrolled_with_flip_is_a_target_too(tiny_bundle, photos, tmp_path):
    """A flip gallery binds its rows to the bundle's fingerprint + flip; explain finds them."""
    from edge.gallery.store import Gallery
    from edge.model.embedder import Embedder
    from explain.crops import FaceLoader
    from explain.targets import person_target

    crop = FaceLoader(tiny_bundle.input_spec).load(photos[1]).pixels.astype("uint8")
    flipped = Embedder(tiny_bundle, flip=True)
    gallery = tmp_path / "people.db"
    with Gallery(gallery) as g:
        g.add("abdullah", flipped.embed([crop]), flipped.fingerprint, tiny_bundle.name)
    target = person_target(gallery, tiny_bundle, "abdullah")
    assert target.label == "cosine to enrolled abdullah"
    score = target.score(flipped.embed([crop]))[0]
    assert score > 0.999  # the same face, embedded the way the gallery was
