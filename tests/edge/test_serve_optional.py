"""The edge runtime without the `serve` extra: everything else runs, `edge serve` says why not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_edge_runs_without_the_serve_extra(tmp_path: Path):
    """With FastAPI, uvicorn and paho unimportable, edge works and `edge serve` says why not."""
    code = (
        "import sys\n"
        "for m in ('fastapi', 'uvicorn', 'starlette', 'python_multipart', 'paho'):\n"
        "    sys.modules[m] = None\n"
        "from edge.cli.main import main\n"
        "assert main(['people']) == 0\n"  # the default gallery, not made yet
        "sys.exit(main(['serve']))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FACELENS_HOME": str(tmp_path)},
    )
    assert "no one is enrolled" in run.stdout
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "pip install 'facelens[serve]'" in run.stderr
