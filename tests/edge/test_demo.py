"""``edge demo`` end to end as a subprocess: real bundles, generated clip, real outputs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest


def demo(*args: str | Path, home: Path, shared: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACELENS_HOME": str(home)}
    if shared is not None:
        env["FACELENS_SHARED"] = str(shared)
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "demo", *map(str, args)],
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


def test_demo_with_the_face_trained_bundle_recognises_real_people(
    faceres_bundle, lfw_dir, tmp_path: Path
):
    run = demo("--bundle", faceres_bundle.path, home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert f"bundle: {faceres_bundle.name}" in run.stdout
    assert "enrolled Serena_Williams" in run.stdout  # LFW people join when ../shared has them
    right, known, rejected, strangers, wrong = recognised(run)
    assert known >= 30 and strangers >= 12
    assert right >= 0.85 * known and rejected >= 0.85 * strangers and wrong <= 1
    files = outputs(run)
    assert set(files) == {"input clip", "annotated", "contact sheet"}
    frames = cv2.VideoCapture(str(files["annotated"])).get(cv2.CAP_PROP_FRAME_COUNT)
    assert frames == cv2.VideoCapture(str(files["input clip"])).get(cv2.CAP_PROP_FRAME_COUNT) > 30
    sheet = cv2.imread(str(files["contact sheet"]))
    assert sheet is not None and sheet.shape[1] == 4 * 320
    assert not (tmp_path / "gallery.sqlite").exists()  # the user's gallery is never touched


@pytest.mark.slow
def test_demo_on_a_fresh_machine_builds_its_own_bundle(tmp_path: Path, yunet_path: Path):
    """No bundle, no ../shared data, no network: it builds VGG16 (untrained, says so)."""
    run = demo(home=tmp_path, shared=tmp_path / "no-shared")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SEEDED UNTRAINED" in run.stdout and "UNTRAINED weights" in run.stdout
    assert (tmp_path / "bundle" / "model_int8.tflite").is_file()
    right, known, _, _, wrong = recognised(run)
    assert right == known > 0 and wrong == 0  # the same photo, moved and scaled
    assert all(p.is_file() for p in outputs(run).values())


def test_demo_module_does_not_import_scikit_image_until_run():
    code = "import sys, edge.demo; print('skimage' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
