"""The README's command lines: every option exists, and the family tour runs as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import convert.cli
import edge.cli.main
import explain.cli

README = Path(__file__).resolve().parents[1] / "README.md"


def shell_blocks(section: str | None = None) -> list[str]:
    """The README's ```bash blocks (of one ``## section`` when given)."""
    text = README.read_text()
    if section is not None:
        text = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def facelens_commands() -> list[list[str]]:
    """Each `uv run edge|python -m convert|python -m explain` line, as its words."""
    found = []
    for block in shell_blocks():
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] == ["uv", "run"] and words[2:3] != ["pytest"]:
                found.append(words[2:])
    return found


def _parse(words: list[str]) -> None:
    if words[0] == "edge":
        edge.cli.main.build_parser().parse_args(words[1:])
    elif words[:3] == ["python", "-m", "convert"]:
        convert.cli.parse_args(words[3:])
    elif words[:3] == ["python", "-m", "explain"]:
        explain.cli.build_parser().parse_args(words[3:])
    else:
        raise AssertionError(f"the README runs something this test does not know: {words}")


def test_every_readme_command_line_parses(capsys):
    commands = facelens_commands()
    programs = {" ".join(w[:3]) if w[0] == "python" else w[0] for w in commands}
    assert programs == {"edge", "python -m convert", "python -m explain"}, programs
    refused = []
    for words in commands:
        try:
            _parse(words)
        except SystemExit:
            refused.append(f"{shlex.join(words)}\n  {capsys.readouterr().err.strip()}")
    assert refused == [], "\n".join(refused)


def test_the_parse_check_sees_an_invented_option(capsys):
    with pytest.raises(SystemExit):
        _parse(["edge", "recognize", "0", "--no-such-option"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_enrol_the_family_runs_as_written(sface_bundle, lfw_dir, tmp_path):
    (block,) = shell_blocks("Enrol the family")[:1]
    # A checkout beside ../shared, and the data folder holding the demo's bundle.
    work, home = tmp_path / "checkout", tmp_path / "home"
    work.mkdir(), home.mkdir()
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "lfw").symlink_to(lfw_dir.resolve())
    (home / "bundle").symlink_to(sface_bundle.path.resolve())
    env = {k: v for k, v in os.environ.items() if k != "FACELENS_KEY"}
    env.update(FACELENS_HOME=str(home), PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    script = 'set -e\nuv() { [ "$1" = run ] && shift; "$@"; }\n' + block
    run = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Tony Blair" in run.stdout and "Serena Williams" in run.stdout, run.stdout
    # the gallery and its key are in the data folder, nothing in the checkout
    assert list(work.iterdir()) == []
    assert {"gallery.sqlite", "gallery.sqlite.key"} <= {p.name for p in home.iterdir()}
    people = subprocess.run(
        [Path(sys.executable).parent / "edge", "people"], env=env, capture_output=True, text=True
    )
    assert "Tony Blair" in people.stdout and "Serena Williams" not in people.stdout, people
