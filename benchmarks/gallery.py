"""Large galleries: enrol, open (decrypt) and search through each index, up to a million.

Per gallery size: an encrypted gallery of that many people (one embedding each:
the worst case for the chunked layout) is written with ``Gallery.add_many``,
reopened and decrypted (``open``), then each index is built over it (``build``) and
searched one face at a time (p50/p99 ms) with ``--queries`` faces of enrolled people;
recall@1 is the share of faces whose nearest person is the one brute force finds.

Synthetic data: identities are uniform random unit vectors (no cluster structure:
the hardest case for an inverted-file index); a query is another "photo" of an
enrolled person, a unit vector at ``--query-cosine`` to their enrolled one. Memory
is the matcher's float matrix plus what the index holds besides. With
``--bundle``, real LFW faces are embedded through it and searched the same way
(gallery: all but one photo of each person; queries: the photo left out).

    uv run python benchmarks/gallery.py --sizes 1000,100000,1000000 --dim 128 --out DIR
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    LFW,
    machine_info,
    machine_line,
    markdown_table,
    out_dir,
    progress,
    pyplot,
    run_cli,
    save_figure,
    shared_yunet,
    write_json,
)

from edge.base.errors import FacelensError
from edge.base.numeric import l2_normalize
from edge.gallery.index import KINDS, set_threads
from edge.gallery.matching import Matcher
from edge.gallery.store import Gallery
from edge.media.images import read_image
from edge.model.bundle import Bundle
from edge.model.pipeline import Pipeline

FP = "benchmark0000000"
SIZE_LIMITS = {"hnsw": 200_000, "flat": 10_000_000}  # HNSW's build is minutes past this
COLUMNS = [
    ("data", "data", 0),
    ("embeddings", "embeddings", 0),
    ("index", "index", 0),
    ("search_p50_ms", "search p50 ms", 3),
    ("search_p99_ms", "p99 ms", 3),
    ("recall_at_1", "recall@1", 3),
    ("build_s", "index build s", 2),
    ("open_s", "open + decrypt s", 2),
    ("matcher_mb", "search MB", 0),
    ("gallery_mb", "gallery file MB", 0),
]


def unit_near(rng: np.random.Generator, vectors: np.ndarray, cosine: float) -> np.ndarray:
    """A unit vector at ``cosine`` to each row of ``vectors``: another photo of that person."""
    noise = rng.standard_normal(vectors.shape, np.float32)
    noise = l2_normalize(noise - np.sum(noise * vectors, axis=1, keepdims=True) * vectors)
    return l2_normalize(cosine * vectors + np.sqrt(1 - cosine**2) * noise)


def synthetic(n: int, dim: int, queries: int, cosine: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    matrix = l2_normalize(rng.standard_normal((n, dim), np.float32))
    who = rng.choice(n, min(queries, n), replace=False)
    return {
        "names": [f"p{i:07d}" for i in range(n)],
        "matrix": matrix,
        "queries": unit_near(rng, matrix[who], cosine),
    }


def real_faces(
    bundle_path: Path, photos: int, threads: int, detector: Path | None
) -> dict[str, Any]:
    """LFW photos through the bundle: all but one photo per person enrolled, that one queried."""
    bundle = Bundle.load(bundle_path)
    pipeline = Pipeline.create(bundle, threads=threads, detector=detector)
    by_person: dict[str, list[Path]] = defaultdict(list)
    for path in sorted((LFW / "images").glob("*/*.jpg")):
        by_person[path.parent.name].append(path)
    chosen = [p for files in by_person.values() if len(files) > 1 for p in files][:photos]
    names, vectors = [], []
    for path in progress(chosen, "embedding LFW photos"):
        embedding = pipeline.photo_embedding(read_image(path))
        if embedding is not None:
            names.append(path.parent.name)
            vectors.append(embedding)
    last = {name: i for i, name in enumerate(names)}  # each person's last photo is the query
    held = set(last.values())
    keep = [i for i in range(len(names)) if i not in held]
    enrolled = {names[i] for i in keep}
    asked = [i for i in sorted(held) if names[i] in enrolled]
    matrix = np.stack(vectors)
    return {
        "names": [names[i] for i in keep],
        "matrix": matrix[keep],
        "queries": matrix[asked],
        "bundle": bundle.name,
    }


def open_gallery(data: dict[str, Any], folder: Path) -> tuple[dict[str, Any], Any]:
    """Write the gallery, then time reopening and decrypting it; returns times and contents."""
    path = folder / "gallery.sqlite"
    t0 = time.perf_counter()
    with Gallery(path) as gallery:
        gallery.add_many(data["names"], data["matrix"], FP, "benchmark")
    enrol_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with Gallery(path) as gallery:
        enrolled = gallery.load(FP)
    open_s = time.perf_counter() - t0
    size = path.stat().st_size / 1e6
    path.unlink()
    return {"enrol_s": enrol_s, "open_s": open_s, "gallery_mb": size}, enrolled


def search_one_by_one(matcher: Matcher, queries: np.ndarray) -> tuple[list[str], list[float]]:
    matcher.match(queries[:1])  # warm-up
    nearest, ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        (m,) = matcher.match(q[None, :])
        ms.append((time.perf_counter() - t0) * 1000)
        nearest.append(m.nearest)
    return nearest, ms


def measure(data: dict[str, Any], kinds: list[str], label: str, tmp: Path) -> list[dict]:
    """Every index over one gallery: build time, memory, search latency and recall@1."""
    gallery, enrolled = open_gallery(data, tmp)
    n, queries = len(enrolled.names), data["queries"]
    del data["matrix"]
    truth = None
    rows = []
    for kind in kinds:
        if n > SIZE_LIMITS.get(kind, n):
            continue
        gc.collect()
        t0 = time.perf_counter()
        matcher = Matcher(enrolled.names, enrolled.matrix, 0.5, index=kind)
        build_s = time.perf_counter() - t0
        memory = (enrolled.matrix.nbytes + matcher.index.nbytes()) / 1e6
        nearest, ms = search_one_by_one(matcher, queries)
        if truth is None:  # the first kind is exact: brute force is the reference
            truth = nearest
        rows.append(
            {
                "data": label,
                "embeddings": n,
                "dim": enrolled.matrix.shape[1],
                "index": kind,
                "index_settings": matcher.index.describe(),
                "search_p50_ms": float(np.median(ms)),
                "search_p99_ms": float(np.percentile(ms, 99)),
                "queries": len(queries),
                "recall_at_1": float(np.mean(np.asarray(nearest) == np.asarray(truth))),
                "build_s": build_s,
                "matcher_mb": memory,
                **gallery,
            }
        )
        print(
            f"  {label} {n:>9,} {kind:>6}: p50 {rows[-1]['search_p50_ms']:.3f} ms, "
            f"recall@1 {rows[-1]['recall_at_1']:.3f}, build {build_s:.1f} s, "
            f"open {gallery['open_s']:.1f} s",
            flush=True,
        )
        del matcher
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    synthetic_rows = [r for r in rows if r["data"] == "synthetic"]
    for i, kind in enumerate(dict.fromkeys(r["index"] for r in synthetic_rows)):
        pts = [r for r in synthetic_rows if r["index"] == kind]
        x = [r["embeddings"] for r in pts]
        left.plot(x, [r["search_p50_ms"] for r in pts], "o-", color=f"C{i}", label=kind)
        right.plot(x, [r["build_s"] for r in pts], "o-", color=f"C{i}", label=f"{kind} build")
    opened = {r["embeddings"]: r["open_s"] for r in synthetic_rows}
    right.plot(list(opened), list(opened.values()), "s--", color="k", label="open + decrypt")
    left.axhline(5, color="grey", ls=":", lw=1, label="5 ms target")
    for ax, ylabel in ((left, "search ms per face (p50)"), (right, "seconds")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("enrolled embeddings")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    left.set_title("one face against the gallery", fontsize=9)
    right.set_title("opening a gallery: decrypt, then build the index", fontsize=9)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    parser.add_argument("--sizes", type=ints, default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128, help="synthetic embedding dims")
    parser.add_argument(
        "--indexes",
        default="exact,flat,ivf,hnsw",
        help=f"comma-separated, exact first (the reference); of {','.join(KINDS[1:])}",
    )
    parser.add_argument("--queries", type=int, default=300, help="faces searched per size")
    parser.add_argument("--query-cosine", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=2, help="FAISS threads (default 2)")
    parser.add_argument("--bundle", type=Path, help="also search real LFW faces through it")
    parser.add_argument("--real-photos", type=int, default=3000, help="LFW photos (--bundle)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector", type=Path, default=shared_yunet(), help="YuNet .onnx file")
    parser.add_argument("--out", help="output folder (default benchmarks/results/gallery)")
    args = parser.parse_args(argv)
    args.indexes = args.indexes.split(",")
    if args.indexes[0] != "exact" or not set(args.indexes) <= set(KINDS[1:]):
        parser.error(f"--indexes must start with exact and name only {','.join(KINDS[1:])}")
    if not 0 < args.query_cosine < 1 or min(args.sizes) < 2 or args.queries < 1:
        parser.error("--query-cosine must be in (0, 1); sizes >= 2; --queries >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    info = machine_info()
    print(f"# gallery: sizes {args.sizes}, {args.dim} dims\n\nmachine: {machine_line(info)}\n")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="facelens-gallery-") as tmp:
        for n in args.sizes:
            data = synthetic(n, args.dim, args.queries, args.query_cosine, args.seed)
            rows += measure(data, args.indexes, "synthetic", Path(tmp))
        if args.bundle is not None:
            if not LFW.is_dir():
                raise FacelensError(f"--bundle needs LFW photos at {LFW}; set FACELENS_SHARED")
            data = real_faces(args.bundle, args.real_photos, args.threads, args.detector)
            rows += measure(data, args.indexes, f"LFW ({data['bundle']})", Path(tmp))
    print("\n" + markdown_table(rows, COLUMNS))
    dest = out_dir(args, "gallery")
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    write_json(dest / "gallery.json", {"machine": info, "settings": settings, "rows": rows})
    load = info["load_average_at_start"][0]
    plot(rows, dest / "gallery.png", f"{info['cpu']}, FAISS threads {args.threads}, load {load}")
    print(f"\nwrote {dest / 'gallery.json'} and gallery.png")
    return 0


if __name__ == "__main__":
    run_cli(main)
