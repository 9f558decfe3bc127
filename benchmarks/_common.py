"""Helpers every benchmark shares: machine info, timing statistics, tables, files, errors.

The benchmark scripts are run as ``python benchmarks/<name>.py``, so this folder is on
``sys.path`` and they import this module as ``_common``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge.base.errors import DetectorError, FacelensError
from edge.cli.commandline import run_command
from edge.faces.detect import find_yunet

HERE = Path(__file__).resolve().parent
# Scripts here are run as ``python benchmarks/NAME.py``, which puts this folder first on
# sys.path; benchmarks/explain.py would then shadow the explain package. Look here last.
if str(HERE) in sys.path:
    sys.path.remove(str(HERE))
    sys.path.append(str(HERE))

REPO = HERE.parent
SHARED = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared"))
LFW = SHARED / "data" / "lfw"
RESULTS = HERE / "results"

NOISE_NOTE = (
    "this machine may be shared with other work: medians and ratios come from one run, "
    "absolute numbers move with the load average"
)
_DISTRIBUTIONS = (
    "numpy",
    "opencv-python-headless",
    "onnxruntime",
    "ai-edge-litert",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "neon", "asimd")
                return [f for f in wanted if f in flags]
    except OSError:
        pass
    return []


def versions() -> dict[str, str]:
    """Installed versions of the runtimes a benchmark may use (read without importing them)."""
    found = {}
    for dist in _DISTRIBUTIONS:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def machine_info() -> dict[str, Any]:
    """What a reader needs to judge a number: CPU, cores, OS, Python, runtime versions, load."""
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": NOISE_NOTE,
    }


def machine_line(info: dict[str, Any]) -> str:
    """One line for the top of a report."""
    vers = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    flags = "/".join(info["cpu_flags"]) or "-"
    return (
        f"{info['cpu']} ({flags}), {info['cores']} cores, {info['machine']}, "
        f"Python {info['python']}; {vers}; load average {info['load_average_at_start']} "
        f"at start ({info['note']})"
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    return kb / 1024


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit] if lines else ''}".rstrip(": ")


def time_ms(fn: Callable[[], Any], runs: int) -> list[float]:
    """Wall time of ``runs`` calls of ``fn``, in milliseconds each."""
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def summarize_ms(samples: Sequence[float]) -> dict[str, float]:
    """Median, p95, p99 and mean of latency samples (ms)."""
    a = np.asarray(samples, np.float64)
    return {
        "median": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "n": len(a),
    }


def progress(iterable: Iterable, desc: str, total: int | None = None) -> Iterable:
    """A progress bar on stderr (silent when stderr is not a terminal)."""
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, disable=None, leave=False)


def fmt_num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if np.isnan(value):
            return "-"
        if value != 0 and abs(value) < 10**-digits:  # tiny numbers keep 2 significant digits
            return f"{value:.2g}"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, int]]) -> str:
    """A markdown table; ``columns`` is (key, header, digits) per column."""
    lines = [
        "| " + " | ".join(h for _, h, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(fmt_num(row.get(k), d) for k, _, d in columns) + " |")
    return "\n".join(lines)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (np.ndarray, Path)):
        return obj.tolist() if isinstance(obj, np.ndarray) else str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def parse_threads(text: str) -> list[int]:
    """``"1,2,all"`` -> ``[1, 2]`` on a 2-core machine (deduplicated, in order)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        n = (os.cpu_count() or 1) if part == "all" else (int(part) if part.isdigit() else 0)
        if n < 1:
            raise FacelensError(
                f"--threads {text!r}: give positive integers or 'all', e.g. 1,2,all"
            )
        if n not in out:
            out.append(n)
    return out


def out_dir(args: argparse.Namespace, name: str) -> Path:
    """Where a benchmark writes its files (``--out`` or ``benchmarks/results/<name>``)."""
    path = Path(args.out) if args.out else RESULTS / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_parser(
    doc: str | None, bundle_help: str = "model bundle folder"
) -> argparse.ArgumentParser:
    """A benchmark's parser: its docstring as help, ``--bundle``, ``--out``, ``--detector``."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", required=True, type=Path, help=bundle_help)
    parser.add_argument(
        "--out", help="folder for the JSON, CSV and PNG files (default: benchmarks/results/NAME)"
    )
    parser.add_argument(
        "--detector",
        type=Path,
        default=shared_yunet(),
        help="YuNet .onnx file (default: $FACELENS_YUNET, the cache, ../shared's copy, a download)",
    )
    return parser


def shared_yunet() -> Path | None:
    """YuNet as edge finds it, or the verified copy in ../shared (the benchmarks' own choice)."""
    try:
        return find_yunet(download=False, search=[SHARED / "models" / "yunet"])
    except DetectorError:
        return None  # edge's own search (and download) then decides


def add_pair_args(parser: argparse.ArgumentParser) -> None:
    """``--pairs FILE`` (default LFW devtest) and ``--images ROOT`` its paths are relative to."""
    parser.add_argument(
        "--pairs",
        type=Path,
        default=LFW / "pairs_devtest.csv",
        help="CSV img_a,img_b,same to report on (default: LFW pairs_devtest.csv)",
    )
    parser.add_argument(
        "--images", type=Path, help="root the pair paths are relative to (default: PAIRS/../images)"
    )


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend, imported when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run a benchmark's ``main``, ending as every facelens command does (one error line)."""
    sys.exit(run_command(lambda: main(argv)))
