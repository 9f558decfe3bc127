"""Which format to ship: every artifact of a bundle x every runtime that runs it x threads.

For each combination, in a process of its own: file size, load time, first inference,
latency median/p95/p99 after warm-up, throughput at batch 1 and 8, peak RSS, and the
cosine of its embeddings to the float reference's on held-out faces. Prints a markdown
table and writes formats.json, formats.csv and formats.png (latency vs size).

    uv run python benchmarks/formats.py --bundle /work/bundles/vgg16-untrained
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    HERE,
    LFW,
    machine_info,
    machine_line,
    markdown_table,
    new_parser,
    out_dir,
    parse_threads,
    progress,
    pyplot,
    run_cli,
    save_figure,
    write_csv,
    write_json,
)
from _faces import prepare_photos
from _formats_worker import RESULT_PREFIX
from _runners import REFERENCE_FORMATS, runtimes_for

from edge.base.errors import FacelensError
from edge.base.numeric import l2_normalize
from edge.faces.detect import create_detector
from edge.media.images import list_images
from edge.model.bundle import Bundle

COLUMNS = [
    ("format", "format", 0),
    ("runtime", "runtime", 0),
    ("threads", "thr", 0),
    ("size_mb", "MB", 1),
    ("load_ms", "load ms", 0),
    ("first_ms", "first ms", 0),
    ("median_ms", "median ms", 1),
    ("p95_ms", "p95 ms", 1),
    ("p99_ms", "p99 ms", 1),
    ("ips_b1", "img/s b1", 1),
    ("ips_b8", "img/s b8", 1),
    ("peak_rss_mb", "peak RSS MB", 0),
    ("cos_mean", "cos mean", 4),
    ("cos_min", "cos min", 4),
    ("load1", "load", 1),
    ("error", "error", 0),
]
# The ratios the README quotes: (name, faster combination, slower combination).
RATIOS = [
    ("INT8 TFLite vs float Keras", ("tflite-int8", "litert"), ("keras", "tensorflow")),
    ("INT8 TFLite vs float ONNX", ("tflite-int8", "litert"), ("onnx", "onnxruntime")),
    ("INT8 ONNX vs float ONNX", ("onnx-int8", "onnxruntime"), ("onnx", "onnxruntime")),
]


def held_out_photos(folder: Path | None, count: int) -> list[Path]:
    """``count`` photos from ``folder``, or by default from LFW's devtest pairs (held out)."""
    if folder is not None:
        if not folder.is_dir():
            raise FacelensError(f"--faces {folder} is not a folder; give a folder of face photos")
        photos = list_images(folder)
    else:
        pairs = LFW / "pairs_devtest.csv"
        if not pairs.is_file():
            raise FacelensError(
                f"no held-out faces: {pairs} is missing; pass --faces DIR (a folder of face photos)"
            )
        names = sorted(
            {n for line in pairs.read_text().splitlines()[1:] for n in line.split(",")[:2]}
        )
        photos = [LFW / "images" / n for n in names]
    if not photos:
        raise FacelensError(f"no images in {folder}; give a folder of .jpg/.png face photos")
    step = max(1, len(photos) // count)  # spread over identities, not the first few
    return photos[::step][:count]


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(f.stat().st_size for f in files) / 1e6


def run_one(args: argparse.Namespace, combo: dict[str, Any], faces: Path, emb: Path) -> dict:
    """Measure one combination in a fresh Python process; its failure becomes the row's error."""
    cmd = [
        sys.executable,
        str(HERE / "_formats_worker.py"),
        f"--bundle={args.bundle}",
        f"--format={combo['format']}",
        f"--runtime={combo['runtime']}",
        f"--threads={combo['threads']}",
        f"--runs={args.runs}",
        f"--warmup={args.warmup}",
        f"--batches={args.batches}",
        f"--faces={faces}",
        f"--embeddings={emb}",
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(combo["threads"]), TF_CPP_MIN_LOG_LEVEL="2")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"worker exited with {proc.returncode}: {tail[:300]}"}


def flatten(combo: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    row = dict(combo)
    lat = result.get("latency_ms", {})
    tput = result.get("throughput", {})
    row.update(
        load_ms=result.get("load_ms"),
        first_ms=result.get("first_ms"),
        median_ms=lat.get("median"),
        p95_ms=lat.get("p95"),
        p99_ms=lat.get("p99"),
        ips_b1=tput.get("1"),
        ips_b8=tput.get("8"),
        base_rss_mb=result.get("base_rss_mb"),
        load1=result.get("load1"),
        peak_rss_mb=result.get("peak_rss_mb"),
        error=result.get("error", ""),
        notes="; ".join(result.get("notes", [])),
    )
    return row


def add_fidelity(rows: list[dict[str, Any]], embeddings: dict[int, Path]) -> str | None:
    """Cosine of every row's embeddings to the float reference's; returns the reference used."""
    loaded = {i: np.load(p) for i, p in embeddings.items() if p.is_file()}
    reference = next(
        (
            (fmt, loaded[i])
            for fmt in REFERENCE_FORMATS
            for i, r in enumerate(rows)
            if r["format"] == fmt and i in loaded
        ),
        None,
    )
    if reference is None:
        return None
    ref = l2_normalize(reference[1])
    for i, emb in loaded.items():
        cos = np.sum(ref * l2_normalize(emb), axis=1)
        rows[i]["cos_mean"], rows[i]["cos_min"] = float(cos.mean()), float(cos.min())
    return reference[0]


def ratios(rows: list[dict[str, Any]], threads: list[int]) -> list[dict[str, Any]]:
    """Speed-ups (slower median / faster median) at each thread count, from this one run."""
    median = {
        (r["format"], r["runtime"], r["threads"]): r["median_ms"]
        for r in rows
        if r.get("median_ms")
    }
    out = []
    for name, fast, slow in RATIOS:
        for t in threads:
            a, b = median.get((*fast, t)), median.get((*slow, t))
            out.append({"ratio": name, "threads": t, "speedup": b / a if a and b else None})
    return out


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib.ticker

    plt = pyplot()

    markers = {"litert": "o", "onnxruntime": "s", "opencv": "^", "tensorflow": "D"}
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for runtime, marker in markers.items():
        for t, color in zip(
            sorted({r["threads"] for r in rows}), ("C0", "C1", "C2", "C3"), strict=False
        ):
            pts = [
                r for r in rows if r["runtime"] == runtime and r["threads"] == t and r["median_ms"]
            ]
            if pts:
                ax.scatter(
                    [r["size_mb"] for r in pts],
                    [r["median_ms"] for r in pts],
                    marker=marker,
                    color=color,
                    s=60,
                    label=f"{runtime}, {t} thread{'s' if t > 1 else ''}",
                )
                for r in pts:
                    ax.annotate(
                        r["format"],
                        (r["size_mb"], r["median_ms"]),
                        fontsize=7,
                        xytext=(4, 3),
                        textcoords="offset points",
                    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # ticks at 1-2-5 steps, as plain numbers
        axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("artifact size (MB, log)")
    ax.set_ylabel("median latency per image, batch 1 (ms, log)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__)
    parser.add_argument("--formats", help="comma-separated formats (default: all in the bundle)")
    parser.add_argument(
        "--runtimes", help="comma-separated: litert,onnxruntime,opencv,tensorflow (default: all)"
    )
    parser.add_argument("--threads", default="1,2,all", help="thread counts (default 1,2,all)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs at batch 1 (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    parser.add_argument("--batches", default="1,8", help="batch sizes for throughput (default 1,8)")
    parser.add_argument(
        "--faces", type=Path, help="folder of held-out face photos (default: LFW devtest)"
    )
    parser.add_argument("--num-faces", type=int, default=16, help="held-out faces (default 16)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per combination")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.num_faces < 1:
        parser.error("--runs and --num-faces must be >= 1, --warmup >= 0")
    sizes = args.batches.split(",")
    if not all(b.isdigit() and int(b) > 0 for b in sizes) or "1" not in sizes:
        parser.error("--batches takes positive batch sizes including 1, e.g. 1,8")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bundle = Bundle.load(args.bundle)
    formats = args.formats.split(",") if args.formats else bundle.formats
    for fmt in formats:
        bundle.artifact(fmt)  # an unknown format is an error before any work
    wanted = set(args.runtimes.split(",")) if args.runtimes else None
    combos = [
        {
            "format": f,
            "runtime": rt,
            "threads": t,
            "size_mb": size_mb(bundle.path / bundle.artifact(f).file),
        }
        for f in formats
        for rt in runtimes_for(f)
        if wanted is None or rt in wanted
        for t in parse_threads(args.threads)
    ]
    if not combos:
        raise FacelensError(f"no runtime in --runtimes {args.runtimes} runs {', '.join(formats)}")
    info = machine_info()
    print(
        f"# formats: {bundle.name} ({bundle.path})\n\nmachine: {machine_line(info)}\n", flush=True
    )

    photos = held_out_photos(args.faces, args.num_faces)
    faces, how = prepare_photos(photos, bundle.input_spec, create_detector(args.detector))
    rows, embeddings = [], {}
    with tempfile.TemporaryDirectory(prefix="facelens-formats-") as tmp:
        faces_file = Path(tmp) / "faces.npy"
        np.save(faces_file, faces)
        for i, combo in enumerate(progress(combos, "formats x runtimes x threads")):
            embeddings[i] = Path(tmp) / f"emb{i}.npy"
            rows.append(flatten(combo, run_one(args, combo, faces_file, embeddings[i])))
        reference = add_fidelity(rows, embeddings)

    threads = parse_threads(args.threads)
    speedups = ratios(rows, threads)
    print(markdown_table(rows, COLUMNS))
    print(
        f"\ncosine: to {reference or 'no float reference (none ran)'} on {len(photos)} held-out "
        f"faces ({', '.join(f'{k} {v}' for k, v in how.items())}); latency per image at batch 1, "
        f"{args.runs} runs after {args.warmup} warm-up; peak RSS of a process running only that "
        f"combination; load = the 1-minute load average when it started ({info['cores']} cores)."
    )
    for r in speedups:
        s = r["speedup"]
        val = "n/a" if not s else f"{s:.2f}x faster" if s >= 1 else f"{1 / s:.2f}x slower"
        print(f"- {r['ratio']} ({r['threads']} thread{'s' if r['threads'] > 1 else ''}): {val}")
    for r in rows:
        if r["notes"]:
            print(f"- note: {r['format']}/{r['runtime']}/{r['threads']}: {r['notes']}")

    dest = out_dir(args, "formats")
    report = {
        "bundle": {
            "path": str(bundle.path),
            "name": bundle.name,
            "source": bundle.manifest.source.to_dict() if bundle.manifest.source else None,
        },
        "machine": info,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "held_out_faces": {"count": len(photos), "chosen": dict(how), "reference": reference},
        "rows": rows,
        "ratios": speedups,
    }
    write_json(dest / "formats.json", report)
    write_csv(dest / "formats.csv", rows, [k for k, _, _ in COLUMNS] + ["base_rss_mb", "notes"])
    plot(
        rows,
        dest / "formats.png",
        f"{bundle.name}: latency vs size\n{info['cpu']}, {info['cores']} cores",
    )
    print(f"\nwrote {dest / 'formats.json'}, formats.csv, formats.png")
    return 0


if __name__ == "__main__":
    run_cli(main)
