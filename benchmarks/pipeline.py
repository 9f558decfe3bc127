"""End-to-end edge recognition on generated 640x480 clips, and gallery search at scale.

Part 1 runs edge's own recognition loop (video decode -> detect -> align -> embed ->
match, as ``edge recognize`` does) on three generated clips with 0, 1 and 4 faces per
frame (LFW photos pasted on a background, the people enrolled from *other* photos of
them into an encrypted gallery): FPS and per-stage latency, per frame as for photos.
The clips with faces are then run as a video is (``edge.video.recognizer.VideoRecognizer``): full
detection every ``--detect-every`` frames, tracks followed in between, with the faces
missed against full-frame detection on every frame.

Part 2 times edge's brute-force matcher (one matrix product) against galleries of
random unit embeddings (default: the bundle's embedding size): search time per face
and memory, and the gallery size where brute force stops being enough. Sizes whose
matrix exceeds --max-gallery-gb are extrapolated linearly and marked so.

    uv run python benchmarks/pipeline.py --bundle bundles/dlib-resnet --threads 2
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import (
    LFW,
    SHARED,
    machine_info,
    machine_line,
    markdown_table,
    new_parser,
    out_dir,
    progress,
    pyplot,
    rss_mb,
    run_cli,
    save_figure,
    summarize_ms,
    time_ms,
    write_csv,
    write_json,
)

from edge.api import FaceLens
from edge.base.errors import FacelensError
from edge.base.numeric import l2_normalize
from edge.gallery.matching import Matcher
from edge.media.images import read_image
from edge.media.sources import VideoSource
from edge.model.bundle import DEFAULT_FORMAT, Bundle
from edge.results import STAGES
from edge.video.loop import recognize_frame, run_to_end
from edge.video.recognizer import VideoRecognizer
from edge.video.stats import RunStats
from edge.video.track import iou

FRAME_W, FRAME_H = 640, 480
FACE_COUNTS = (0, 1, 4)
BACKGROUND = SHARED / "data" / "nonface" / "opencv_samples" / "building.jpg"


# -- the clips ------------------------------------------------------------------------


def people_pairs(count: int) -> list[tuple[str, Path, Path]]:
    """``count`` LFW people, each with a photo to enrol and another to appear in the clip."""
    pairs_file = LFW / "pairs_devtest.csv"
    if not pairs_file.is_file():
        raise FacelensError(
            f"the clips paste LFW faces, and {pairs_file} is missing: put ../shared in place "
            "or set FACELENS_SHARED to its folder"
        )
    people: dict[str, tuple[Path, Path]] = {}
    with open(pairs_file, newline="") as f:
        for row in csv.DictReader(f):
            name = row["img_a"].split("/")[0]
            if row["same"] == "1" and name not in people:
                people[name] = (LFW / "images" / row["img_a"], LFW / "images" / row["img_b"])
    spread = list(people.items())[:: max(1, len(people) // count)][:count]
    return [(name, a, b) for name, (a, b) in spread]


def background() -> np.ndarray:
    """A face-free 640x480 background: an OpenCV sample photo, or a plain gradient."""
    if BACKGROUND.is_file():
        return cv2.resize(read_image(BACKGROUND), (FRAME_W, FRAME_H))
    ramp = np.linspace(40, 200, FRAME_W, dtype=np.float32)
    return np.repeat(np.tile(ramp, (FRAME_H, 1))[..., None], 3, axis=2).astype(np.uint8)


def write_clip(path: Path, photos: list[np.ndarray], frames: int, base: np.ndarray) -> None:
    """An MJPG clip whose frames hold ``photos`` (0, 1 or 4), drifting a little each frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (FRAME_W, FRAME_H))
    if not writer.isOpened():
        raise FacelensError(f"OpenCV cannot write an MJPG video to {path}")
    side = 250 if len(photos) <= 1 else 200
    tiles = [cv2.resize(p, (side, side)) for p in photos]
    # one centred photo, or a 2x2 grid
    anchors = (
        [((FRAME_W - side) // 2, (FRAME_H - side) // 2)]
        if len(tiles) == 1
        else [(40 + 340 * (i % 2), 20 + 240 * (i // 2)) for i in range(len(tiles))]
    )
    for t in range(frames):
        frame = base.copy()
        dx, dy = int(12 * np.sin(t / 5)), int(8 * np.cos(t / 7))
        for tile, (x, y) in zip(tiles, anchors, strict=True):
            x0 = min(max(x + dx, 0), FRAME_W - side)
            y0 = min(max(y + dy, 0), FRAME_H - side)
            frame[y0 : y0 + side, x0 : x0 + side] = tile
        writer.write(frame)
    writer.release()


def run_clips(args: argparse.Namespace, bundle: Bundle, tmp: Path) -> tuple[list, list]:
    """Enrol four people, then recognise each clip through edge's own loop, per frame
    (``edge recognize`` on photos) and following tracks (on a video)."""
    lens = FaceLens(
        bundle,
        tmp / "gallery.db",
        fmt=args.format,
        threads=args.threads,
        detector=args.detector,
        flip=args.flip,
    )
    people = people_pairs(max(FACE_COUNTS))
    for name, enrol_photo, _ in people:
        lens.enroll(name, [enrol_photo])
    base = background()
    rows, tracking = [], []
    for count in progress(FACE_COUNTS, "clips"):
        clip = tmp / f"faces{count}.avi"
        shown = people[:count]
        write_clip(clip, [read_image(p) for _, _, p in shown], args.frames, base)
        expected = {name for name, _, _ in shown}
        named = right = 0

        def tally(result, expected=expected) -> None:
            nonlocal named, right
            for face in result.faces:
                named += face.name is not None
                right += face.name in expected

        with VideoSource(clip) as source:
            recognize_frame(lens, next(iter(source)))  # warm-up frame, untimed
            stats = run_to_end(lens, source, on_result=tally).summary()
        lat = stats["latency_ms"]
        rows.append(
            {
                "faces_per_frame": count,
                "frames": stats["frames"],
                "faces_found_per_frame": stats["faces"] / max(stats["frames"], 1),
                "fps": stats["fps"],
                **{f"{s}_p50": lat[s].get("p50") for s in (*STAGES, "total")},
                "total_p90": lat["total"].get("p90"),
                "named_right_pct": 100 * right / stats["faces"] if stats["faces"] else None,
                "named_wrong": named - right,
            }
        )
        if count:
            tracking += run_tracking(args, lens, clip, count)
    lens.close()
    return rows, tracking


# -- following faces between detections ---------------------------------------------


def reference_boxes(lens: FaceLens, clip: Path) -> list[list[tuple[float, ...]]]:
    """Every frame's faces by full-frame detection: what a skipped detection may miss."""
    with VideoSource(clip) as source:
        return [[f.box for f in lens.faces(frame.image)] for frame in source]


def run_tracking(
    args: argparse.Namespace, lens: FaceLens, clip: Path, count: int
) -> list[dict[str, Any]]:
    """FPS and missed faces of the tracking recognizer for each ``--detect-every``."""
    reference = reference_boxes(lens, clip)
    rows = []
    for every in args.detect_every:
        missed = total = 0

        def tally(result, reference=reference) -> None:
            nonlocal missed, total
            for box in reference[result.frame.index]:
                total += 1
                missed += not any(iou(box, f.box) >= 0.5 for f in result.faces)

        stats = None
        with VideoSource(clip) as source:
            recognizer = VideoRecognizer(lens, detect_every=every, fps=source.fps)
            for frame in source:
                result = recognizer(frame)
                if stats is None:  # the first frame warms up, untimed
                    stats = RunStats(STAGES)
                    continue
                stats.add(result.ms, len(result.faces))
                tally(result)
        stats = stats.summary()
        lat = stats["latency_ms"]
        rows.append(
            {
                "faces_per_frame": count,
                "detect_every": every,
                "frames": stats["frames"],
                "fps": stats["fps"],
                **{f"{s}_p50": lat[s].get("p50") for s in (*STAGES, "total")},
                "missed_faces": missed,
                "reference_faces": total,
                "missed_pct": 100 * missed / total if total else None,
            }
        )
    return rows


# -- gallery search -------------------------------------------------------------------


def gallery_search(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Search time per face and memory of brute-force matching at each gallery size."""
    rng = np.random.default_rng(0)
    rows, measured = [], []
    for n in progress(args.gallery_sizes, "gallery sizes"):
        matrix_gb = n * args.dim * 4 / 1e9
        row: dict[str, Any] = {"embeddings": n, "dim": args.dim, "matrix_gb": matrix_gb}
        if matrix_gb > args.max_gallery_gb:
            if not measured:
                row["how"] = "skipped (over --max-gallery-gb, nothing measured to scale from)"
            else:  # brute force is linear in n: scale the largest measured size
                n0, ms0 = measured[-1]
                row.update(search_ms=ms0 * n / n0, how=f"extrapolated from {n0:,}")
            rows.append(row)
            continue
        before = rss_mb()
        matrix = rng.standard_normal((n, args.dim), dtype=np.float32)
        query = l2_normalize(matrix[:1] + 0.1 * rng.standard_normal((1, args.dim), np.float32))
        matcher = Matcher([f"p{i}" for i in range(n)], matrix, threshold=0.5)
        del matrix  # the matcher keeps its own normalised copy
        matcher.match(query)
        runs = max(3, min(50, int(2e9 / (n * args.dim))))
        stats = summarize_ms(time_ms(lambda q=query, m=matcher: m.match(q), runs))
        row.update(search_ms=stats["median"], search_p95_ms=stats["p95"], how="measured")
        row["rss_growth_mb"] = rss_mb() - before
        measured.append((n, stats["median"]))
        rows.append(row)
        del matcher
    return rows


def brute_force_limit(rows: list[dict[str, Any]], budget_ms: float, dim: int) -> int | None:
    """The gallery size whose search alone takes ``budget_ms`` (linear fit, largest measured)."""
    measured = [r for r in rows if r.get("how") == "measured" and r["embeddings"] >= 1000]
    if not measured:
        return None
    r = measured[-1]
    return int(budget_ms / r["search_ms"] * r["embeddings"])


# -- report ---------------------------------------------------------------------------

CLIP_COLUMNS = [
    ("faces_per_frame", "faces/frame", 0),
    ("faces_found_per_frame", "found/frame", 2),
    ("fps", "FPS", 1),
    ("decode_p50", "decode ms", 2),
    ("detect_p50", "detect ms", 2),
    ("align_p50", "align ms", 2),
    ("embed_p50", "embed ms", 2),
    ("match_p50", "match ms", 3),
    ("total_p50", "total p50 ms", 1),
    ("total_p90", "total p90 ms", 1),
    ("named_right_pct", "named right %", 1),
    ("named_wrong", "named wrong", 0),
]
TRACKING_COLUMNS = [
    ("faces_per_frame", "faces/frame", 0),
    ("detect_every", "detect every", 0),
    ("fps", "FPS", 1),
    ("detect_p50", "detect ms", 2),
    ("embed_p50", "embed ms", 2),
    ("total_p50", "total p50 ms", 1),
    ("missed_faces", "missed", 0),
    ("reference_faces", "of faces", 0),
    ("missed_pct", "missed %", 2),
]
GALLERY_COLUMNS = [
    ("embeddings", "embeddings", 0),
    ("dim", "dims", 0),
    ("matrix_gb", "matrix GB", 3),
    ("rss_growth_mb", "RSS growth MB", 0),
    ("search_ms", "search ms/face", 3),
    ("search_p95_ms", "p95 ms", 3),
    ("how", "how", 0),
]


def plot(clips: list[dict], gallery: list[dict], path: Path, title: str) -> None:
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    bottom = np.zeros(len(clips))
    labels = [str(c["faces_per_frame"]) for c in clips]
    for stage in STAGES:
        values = np.array([c[f"{stage}_p50"] or 0.0 for c in clips])
        left.bar(labels, values, bottom=bottom, label=stage)
        bottom += values
    left.set_xlabel("faces per 640x480 frame")
    left.set_ylabel("median ms per frame (stacked stages)")
    left.legend(fontsize=8)
    left.set_title("per-stage latency", fontsize=9)
    for how, marker, fill in (("measured", "o", "C0"), ("extrapolated", "o", "none")):
        pts = [g for g in gallery if g.get("how", "").startswith(how) and g.get("search_ms")]
        if pts:
            right.plot(
                [g["embeddings"] for g in pts],
                [g["search_ms"] for g in pts],
                marker,
                mfc=fill,
                color="C0",
                ms=8,
                label=how,
            )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("enrolled embeddings")
    right.set_ylabel("brute-force search ms per face")
    right.set_title(f"gallery search, {gallery[0]['dim']} dims", fontsize=9)
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__)
    parser.add_argument(
        "--format", default=DEFAULT_FORMAT, help=f"artifact (default {DEFAULT_FORMAT})"
    )
    parser.add_argument("--threads", type=int, help="inference threads (default: the runtime's)")
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (default 60)")
    parser.add_argument(
        "--gallery-sizes",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[10, 1_000, 10_000, 100_000],
        help="enrolled embeddings to search (default 10,1000,10000,100000)",
    )
    parser.add_argument(
        "--dim",
        type=int,
        help="embedding dims to search (default: the bundle's, e.g. 128 for dlib)",
    )
    parser.add_argument(
        "--max-gallery-gb",
        type=float,
        default=1.5,
        help="largest float32 matrix to really build; bigger sizes are extrapolated (default 1.5)",
    )
    parser.add_argument(
        "--detect-every",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[1, 3, 5],
        help="tracking runs: full detection every N frames, following tracks in between "
        "(default 1,3,5)",
    )
    parser.add_argument("--skip-clips", action="store_true", help="only the gallery search")
    parser.add_argument(
        "--flip", action="store_true", help="embed every face with its mirror image too"
    )
    args = parser.parse_args(argv)
    if args.frames < 2 or (args.dim is not None and args.dim < 1) or min(args.gallery_sizes) < 1:
        parser.error("--frames must be >= 2; --dim and gallery sizes >= 1")
    if min(args.detect_every) < 1:
        parser.error("--detect-every values must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bundle = Bundle.load(args.bundle)
    args.dim = args.dim or bundle.embedding_dim
    info = machine_info()
    print(f"# pipeline: {bundle.name}, {args.format}\n\nmachine: {machine_line(info)}\n")
    clips: list[dict[str, Any]] = []
    tracking: list[dict[str, Any]] = []
    if not args.skip_clips:
        with tempfile.TemporaryDirectory(prefix="facelens-pipeline-") as tmp:
            clips, tracking = run_clips(args, bundle, Path(tmp))
        print(f"## {FRAME_W}x{FRAME_H} clips, {args.frames} frames each (median ms per frame)\n")
        print(markdown_table(clips, CLIP_COLUMNS))
        print(
            "\n## following tracks between full detections (video): FPS and faces missed "
            "against full detection on every frame\n"
        )
        print(markdown_table(tracking, TRACKING_COLUMNS))
    gallery = gallery_search(args)
    print(f"\n## brute-force gallery search ({args.dim} dims, float32, one face per query)\n")
    print(markdown_table(gallery, GALLERY_COLUMNS))
    embed_ms = next((c["embed_p50"] for c in clips if c["faces_per_frame"] == 1), None)
    limits = {"10 ms": brute_force_limit(gallery, 10.0, args.dim)}
    if embed_ms:
        limits[f"one face's embedding ({embed_ms:.1f} ms)"] = brute_force_limit(
            gallery, embed_ms, args.dim
        )
    for what, n in limits.items():
        if n:
            print(
                f"- search alone takes {what} at ~{n:,} embeddings "
                f"({n * args.dim * 4 / 1e9:.1f} GB of float32): beyond that, compress the "
                "embeddings (PCA / int8) or use an index (FAISS)"
            )
    dest = out_dir(args, "pipeline")
    write_json(
        dest / "pipeline.json",
        {
            "bundle": {"path": str(bundle.path), "name": bundle.name, "format": args.format},
            "machine": info,
            "settings": {k: str(v) for k, v in vars(args).items()},
            "clips": clips,
            "tracking": tracking,
            "gallery": gallery,
            "brute_force_limit": limits,
        },
    )
    write_csv(dest / "pipeline_clips.csv", clips, [k for k, _, _ in CLIP_COLUMNS])
    write_csv(dest / "pipeline_gallery.csv", gallery, [k for k, _, _ in GALLERY_COLUMNS])
    if tracking:
        write_csv(dest / "pipeline_tracking.csv", tracking, [k for k, _, _ in TRACKING_COLUMNS])
    if clips:
        plot(clips, gallery, dest / "pipeline.png", f"{bundle.name} ({args.format}), {info['cpu']}")
    print(f"\nwrote {dest / 'pipeline.json'}, CSVs, pipeline.png")
    return 0


if __name__ == "__main__":
    run_cli(main)
