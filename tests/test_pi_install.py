"""The Pi install, tested as such: the wheel in a clean venv with ai-edge-litert only.

The wheel is built from this checkout (``uv build``), installed into a fresh virtual
environment holding just the edge runtime's locked dependencies and ``ai-edge-litert``
(no TensorFlow, Keras, onnxruntime or matplotlib; pytest to run the tests), all from
uv's cache (``--offline``). The edge tests and the README's Python API snippets then
run there, from a copy outside the checkout (so ``import edge`` is the installed wheel),
against the bundles this run built with ``convert``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # minutes: a wheel, a venv and the edge tests once more

REPO = Path(__file__).resolve().parents[1]
ABSENT = ("tensorflow", "keras", "onnxruntime", "matplotlib", "tf2onnx", "skimage")
# Edge tests that need more than a Pi has: the demo samples photos from scikit-image,
# and the LFW identification run is long (it runs in the main suite).
NOT_ON_A_PI = ("test_demo.py", "test_lfw_identification.py")


def _run(cmd: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=1200, **kwargs
    )
    assert run.returncode == 0, f"{cmd}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


@pytest.fixture(scope="session")
def pi_python(tmp_path_factory) -> Path:
    """A clean venv with the facelens wheel, its runtime dependencies, ai-edge-litert, pytest."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("the Pi install test needs `uv` on PATH (it builds the wheel and the venv)")
    root = tmp_path_factory.mktemp("pi")
    _run([uv, "build", "--wheel", "--offline", "--out-dir", root / "dist", "-q", REPO])
    (wheel,) = (root / "dist").glob("facelens-*.whl")
    venv = root / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    env.pop("VIRTUAL_ENV", None)
    # Exactly the locked versions a Pi gets with `pip install facelens[litert]`.
    _run(
        [uv, "sync", "--locked", "--offline", "--no-default-groups", "--no-dev", "--extra",
         "litert", "--no-install-project", "--python", sys.executable, "-q"],
        cwd=REPO, env=env,
    )  # fmt: skip
    python = venv / "bin" / "python"
    _run([uv, "pip", "install", "--offline", "-q", "--python", python, wheel, "pytest"])
    _run([uv, "pip", "check", "--python", python])
    return python


@pytest.fixture(scope="session")
def pi_tests(tmp_path_factory, tiny_bundle, faceres_bundle, dlib_bundle) -> Path:
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
    bundles = {"tiny": tiny_bundle, "faceres": faceres_bundle, "dlib-resnet": dlib_bundle}
    for name, bundle in bundles.items():
        (root / "bundles" / name).symlink_to(bundle.path.resolve())
    return root


def test_the_pi_venv_holds_no_workstation_package(pi_python):
    code = (
        f"import importlib.util, sys; print([m for m in {ABSENT!r} if importlib.util.find_spec(m)])"
    )
    assert _run([pi_python, "-c", code]).stdout.strip() == "[]"


def test_edge_tests_and_readme_snippets_pass_in_the_pi_venv(pi_python, pi_tests, lfw_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACELENS_", "VIRTUAL_ENV"))}
    env.update(
        FACELENS_TEST_BUNDLES=str(pi_tests / "bundles"),
        FACELENS_SHARED=str(lfw_dir.parents[1]),
        FACELENS_BUNDLE_CACHE=str(tmp_path / "no-builds"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    where = _run([pi_python, "-c", "import edge; print(edge.__file__)"], cwd=pi_tests, env=env)
    assert str(pi_python.parents[1]) in where.stdout  # the installed wheel, not the checkout
    ignore = [f"--ignore=tests/edge/{name}" for name in NOT_ON_A_PI]
    run = subprocess.run(
        [pi_python, "-m", "pytest", "tests/edge", "-q", "-rfEs", *ignore],
        cwd=pi_tests, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    tail = run.stdout[-4000:]
    assert run.returncode == 0, tail + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    print(f"in the Pi venv: {summary}")  # shown with -rP
    assert re.search(r"\d{2,} passed", summary) and "failed" not in summary, tail
    # The API, README and command tests must have run there, not been skipped.
    for name in ("test_api.py", "test_readme_api.py", "test_cli.py"):
        assert not re.search(rf"SKIPPED \[\d+\] tests/edge/{name}", run.stdout), tail
