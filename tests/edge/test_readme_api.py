"""The README's "Python API" snippets run as written, against SFace's bundle and LFW photos."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_api_snippets() -> list[str]:
    section = README.read_text().split("## The Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_python_api_section_runs(sface_bundle, lfw_dir, tmp_path):
    snippets = python_api_snippets()
    assert len(snippets) >= 2
    # The snippets use the README's paths: bundles/sface and ../shared beside the checkout.
    work = tmp_path / "work"
    (work / "bundles").mkdir(parents=True)
    (work / "bundles" / "sface").symlink_to(sface_bundle.path.resolve())
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "lfw").symlink_to(lfw_dir.resolve())
    script = tmp_path / "readme_api.py"
    script.write_text("\n".join(snippets))
    temp = tmp_path / "temp"  # where the snippet's tempfile.mkdtemp() lands
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "FACELENS_KEY"}
    env["TMPDIR"] = str(temp)
    before = sorted(p.name for p in work.iterdir())
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "[('Tony Blair', 1)]" in run.stdout and "'embed'" in run.stdout
    # The gallery and its key went to the temporary folder, nothing into the checkout.
    assert sorted(p.name for p in work.iterdir()) == before
    written = {p.name for p in temp.rglob("*") if p.is_file()}
    assert {"people.db", "people.db.key"} <= written, written
