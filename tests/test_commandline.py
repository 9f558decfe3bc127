"""One command-line convention: the same error gives the same line and exit code everywhere."""

from __future__ import annotations

import pytest

import convert.cli
import edge.cli.main
import explain.cli
from edge.base.errors import GalleryError
from edge.cli.commandline import EXIT_ERROR, EXIT_INTERRUPTED, run_command


def _raising(exc: BaseException):
    def command(*_args):
        raise exc

    return command


def _run_each(monkeypatch, exc: BaseException) -> list[int]:
    """Make one command of edge, convert and explain raise ``exc``; their exit codes."""
    monkeypatch.setitem(edge.cli.main.COMMANDS, "people", _raising(exc))
    monkeypatch.setattr(convert.cli, "_build", _raising(exc))
    monkeypatch.setattr(explain.cli, "_run", _raising(exc))
    return [
        edge.cli.main.main(["people"]),
        convert.cli.main(["--out", "b", "--calibration", "c"]),
        explain.cli.main(["filters", "--model", "vgg16"]),
    ]


@pytest.mark.parametrize(
    ("exc", "line", "code"),
    [
        (GalleryError("g.db is locked; retry"), "error: g.db is locked; retry", 1),
        (
            PermissionError(13, "Permission denied", "out"),
            "error: [Errno 13] Permission denied: 'out'",
            1,
        ),
        (KeyboardInterrupt(), "interrupted", 130),
    ],
)
def test_edge_convert_and_explain_end_alike(monkeypatch, capsys, exc, line, code):
    codes = _run_each(monkeypatch, exc)
    assert codes == [code] * 3
    lines = capsys.readouterr().err.strip().splitlines()
    # convert says after Ctrl-C that nothing was written; otherwise the lines are identical
    expected = [line, f"{line}; nothing was written" if code == 130 else line, line]
    assert lines == expected


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run_command(lambda: 1 // 0)
    assert run_command(lambda: 0) == 0 and (EXIT_ERROR, EXIT_INTERRUPTED) == (1, 130)
