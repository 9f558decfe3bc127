"""One artifact x runtime x thread count, measured in a process of its own.

Run by ``formats.py`` (never by hand): a fresh process per combination, so one
runtime's memory or thread pool does not hide another's. Prints one ``RESULT {json}``
line; the embeddings of the held-out faces go to an ``.npy`` file for the cosine check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import numpy as np
from _common import one_line, peak_rss_mb, rss_mb, summarize_ms, time_ms
from _runners import load_runner

from edge.model.bundle import Bundle

RESULT_PREFIX = "RESULT "


def measure(args: argparse.Namespace) -> dict:
    bundle = Bundle.load(args.bundle)
    bundle.artifact_path(args.format)  # sha256 check outside the timed load
    faces = np.load(args.faces)
    # the machine may be shared: the load when this row ran says how far to trust it
    out: dict = {"base_rss_mb": rss_mb(), "load1": os.getloadavg()[0]}

    t0 = time.perf_counter()
    model = load_runner(bundle, args.format, args.runtime, args.threads)
    out["load_ms"] = (time.perf_counter() - t0) * 1000

    one = faces[:1]
    out["first_ms"] = time_ms(lambda: model.run(one), 1)[0]
    time_ms(lambda: model.run(one), args.warmup)
    out["latency_ms"] = summarize_ms(time_ms(lambda: model.run(one), args.runs))
    out["throughput"] = {"1": 1000.0 / out["latency_ms"]["median"]}

    chunk = 1
    for size in args.batches:
        if size == 1:
            continue
        batch = np.resize(faces, (size, *faces.shape[1:]))
        try:
            model.run(batch)  # warm-up (and the shape change) outside the timing
            stats = summarize_ms(time_ms(lambda b=batch: model.run(b), max(3, args.runs // 4)))
            out["throughput"][str(size)] = size * 1000.0 / stats["median"]
            chunk = size
        except Exception as exc:  # a runtime that cannot take this batch is a result
            out["throughput"][str(size)] = None
            out.setdefault("notes", []).append(f"batch {size}: {one_line(exc)}")

    embeddings = np.concatenate(
        [model.run(faces[i : i + chunk]) for i in range(0, len(faces), chunk)]
    )
    np.save(args.embeddings, embeddings)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--format", required=True)
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 8])
    parser.add_argument("--faces", required=True, help=".npy of prepared faces")
    parser.add_argument("--embeddings", required=True, help=".npy to write")
    args = parser.parse_args()
    try:
        result = measure(args)
    except Exception as exc:  # reported as the row's error, not a crash of the benchmark
        traceback.print_exc(file=sys.stderr)
        result = {"error": one_line(exc)}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
