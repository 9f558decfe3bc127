"""Helpers for the hardening tests: run a real command, measure it, make hostile folders."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MEASURE = Path(__file__).with_name("_measure.py")
# Module-scoped fixtures run before the autouse one that points FACELENS_YUNET at
# ../shared, so commands get the verified shared copy here too (never a download).
YUNET = (
    Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared"))
    / "models/yunet/face_detection_yunet_2023mar.onnx"
)


@dataclass
class Run:
    """A finished command: exit code, output, and its peak resident memory."""

    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float

    def error_line(self) -> str:
        """The one ``error:`` line (argparse's ``PROG: error:`` too); fails on a traceback."""
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.splitlines()
        errors = [ln for ln in lines if ln.startswith("error:") or ": error: " in ln]
        assert self.returncode != 0, (self.stdout, self.stderr)
        assert len(errors) == 1, self.stderr
        return errors[0]


def limit_file_size(nbytes: int) -> Callable[[], None]:
    """preexec_fn: a disk that fills after ``nbytes`` (writes fail with EFBIG, no signal)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.RLIM_INFINITY))

    return apply


def run(
    module: str,
    *args: str | bytes | Path,
    home: Path,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
    timeout: float = 300,
) -> Run:
    """``python -m MODULE ARGS`` with its data folder at ``home``, and its peak RSS."""
    full_env = {k: v for k, v in os.environ.items() if k != "FACELENS_KEY"}
    full_env.update(FACELENS_HOME=str(home), PYTHONPATH=str(REPO), **(env or {}))
    if YUNET.is_file():
        full_env.setdefault("FACELENS_YUNET", str(YUNET))
    argv = [*(a if isinstance(a, bytes) else str(a) for a in args)]
    with tempfile.TemporaryDirectory() as tmp:
        rss = Path(tmp) / "rss"
        measure = [sys.executable, str(MEASURE), str(rss), "-m", module]
        proc = subprocess.Popen(
            [*measure, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
            cwd=REPO, preexec_fn=preexec, start_new_session=True,
        )  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the wrapper and the command it runs
            proc.communicate()
            raise AssertionError(f"{module} {argv} hung for {timeout} s") from None
        return Run(
            proc.returncode,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            int(rss.read_text()) / 1024 if rss.exists() else float("nan"),
        )


@pytest.fixture
def edge(tmp_path: Path) -> Callable[..., Run]:
    """Run the ``edge`` command with a fresh data folder (``home=`` to share one)."""

    def call(*args: str | bytes | Path, home: Path | None = None, **kw) -> Run:
        return run("edge.cli.main", *args, home=home or tmp_path / "home", **kw)

    return call


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """``make(src)``: a read-only copy of the folder ``src`` that even root cannot write.

    As a normal user, chmod does it; root ignores modes, so there a tmpfs is mounted
    and remounted read-only (skipped where mounting is not allowed).
    """
    mounts: list[Path] = []

    def make(src: Path) -> Path:
        dest = tmp_path / f"readonly-{len(mounts)}-{src.name}"
        dest.mkdir()
        if os.geteuid() != 0:
            shutil.copytree(src, dest, dirs_exist_ok=True)
            for p in [dest, *dest.rglob("*")]:
                p.chmod(0o555 if p.is_dir() else 0o444)
            mounts.append(dest)
            return dest
        mount = ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(dest)]
        if subprocess.run(mount, capture_output=True).returncode:
            pytest.skip("running as root and cannot mount a read-only tmpfs to test with")
        mounts.append(dest)
        shutil.copytree(src, dest, dirs_exist_ok=True)
        subprocess.run(["mount", "-o", "remount,ro", str(dest)], check=True)
        return dest

    yield make
    for path in mounts:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(path)], check=False)
        else:
            for p in [path, *path.rglob("*")]:
                p.chmod(0o755 if p.is_dir() else 0o644)
