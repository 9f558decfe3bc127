"""What ``uv build`` makes is publishable: a wheel and an sdist that pass ``twine check``,
the wheel holding the measurements ``edge models install`` reads."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("building the package needs `uv` on PATH")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([uv, "build", "--offline", "-q", "--out-dir", out, REPO], check=True)
    return out


def test_the_wheel_and_sdist_pass_twine_check(dist: Path):
    files = sorted(dist.glob("facelens-*"))
    assert {f.suffix for f in files} == {".whl", ".gz"}, files
    run = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("PASSED") == 2, run.stdout


def test_the_wheel_ships_the_model_measurements_and_no_test_data(dist: Path):
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "edge/model/shipped/dlib-resnet.json" in names
    assert not [n for n in names if n.endswith((".tflite", ".onnx", ".dat", ".sqlite"))]
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        big = [m.name for m in tar.getmembers() if m.size > 2_000_000]
    assert not big, big  # no bundle cache or model files in the source distribution
