"""The edge runtime without the `serve` extra: everything else runs, `edge serve` says why not."""

from __future__ import annotations

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
        "assert main(['people', '--gallery', sys.argv[1]]) == 0\n"
        "sys.exit(main(['serve', '--gallery', sys.argv[1]]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "g.sqlite")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "no one is enrolled" in run.stdout
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "pip install 'facelens[serve]'" in run.stderr
