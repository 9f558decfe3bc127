"""The benchmark scripts live in benchmarks/ (not a package): import and run them from there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# appended, not prepended: benchmarks/explain.py must not shadow the explain package
sys.path.append(str(BENCHMARKS))


def _run_script(name: str, *args: object, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _read_report(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}.json").read_text())


@pytest.fixture
def run_script():
    """Run ``benchmarks/<name>.py ARGS...`` as a user would, capturing its output."""
    return _run_script


@pytest.fixture
def read_report():
    """The ``<name>.json`` a benchmark wrote into a folder."""
    return _read_report


@pytest.fixture
def assert_clean_error():
    """A bad input ends as one ``error:`` line and exit 1, never a traceback."""

    def check(proc: subprocess.CompletedProcess, *words: str) -> None:
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ")
        for word in words:
            assert word in last

    return check
