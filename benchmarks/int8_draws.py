"""INT8 TFLite over several calibration draws: how far one build's accuracy moves with
the faces it was calibrated on, and what narrowing the activation ranges changes.

On 1,000 pairs one pair is 0.1 point, and which pairs an INT8 build gets wrong depends
on its calibration faces. This rebuilds the bundle's INT8 TFLite ``--draws`` times, each
on ``--count`` faces drawn from ``--calibration`` (photos of the pair lists left out),
with TFLite's min/max ranges and narrowed to each of ``--percentiles``
(:mod:`convert.ranges`), keeping the bundle's float layers and ops. Per build: accuracy
(k folds; with ``--train-pairs`` also at that list's threshold), cosine to float (mean,
min over the photos) and the std of the change INT8 makes to a pair's cosine; then the
mean, min and max of each over the draws. Writes int8_draws.json and int8_draws.csv.

    uv run python benchmarks/int8_draws.py --bundle bundles/sface \\
        --train-pairs ../shared/data/lfw/pairs_devtrain.csv
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    LFW,
    add_pair_args,
    machine_info,
    machine_line,
    markdown_table,
    new_parser,
    out_dir,
    run_cli,
    write_csv,
    write_json,
)
from _faces import crop_photos
from _runners import embed_all, load_runner
from _verification import Pairs, kfold, read_pairs

from convert.formats import QuantCalibration, tflite_int8
from edge.base.errors import FacelensError
from edge.faces.detect import create_detector
from edge.media.images import list_images
from edge.model.backends import load_backend
from edge.model.bundle import Bundle
from edge.model.preprocess import InputSpec

COLUMNS = [
    ("ranges", "activation ranges", 0),
    ("builds", "builds", 0),
    ("acc_pct", "accuracy % (mean)", 2),
    ("acc_min", "min", 2),
    ("acc_max", "max", 2),
    ("gap_pts", "points under float (mean)", 2),
    ("train_acc_pct", "at --train-pairs' threshold (mean)", 2),
    ("cos_mean", "cos to float, mean", 4),
    ("cos_min", "cos to float, worst photo (mean)", 4),
    ("noise", "std of INT8's change to a pair's cosine", 4),
]


class PairScores:
    """Cosine per pair of one list, from embeddings of all its photos."""

    def __init__(self, pairs: Pairs) -> None:
        self.pairs = pairs
        index = {p: i for i, p in enumerate(pairs.photos)}
        self.a = np.array([index[p] for p in pairs.a])
        self.b = np.array([index[p] for p in pairs.b])

    def __call__(self, emb: np.ndarray) -> np.ndarray:
        return np.sum(emb[self.a] * emb[self.b], axis=1)


def embed_lists(
    runner: Any, crops: dict[str, np.ndarray], spec: InputSpec, what: str
) -> dict[str, np.ndarray]:
    """Unit embeddings of each list's crops, 8 faces a run."""
    return {k: embed_all(runner, v, spec, 8, f"{what} {k}") for k, v in crops.items()}


@dataclass
class Evaluation:
    """What every build is scored on: the pair lists' crops, the float model's embeddings
    of them, and how to run and fold."""

    test: PairScores
    train: PairScores | None
    crops: dict[str, np.ndarray]  # "test" (and "train"): one crop per photo of the list
    reference: dict[str, np.ndarray]  # the float model's embeddings of those crops
    spec: InputSpec
    threads: int
    folds: int

    def float_accuracy(self) -> float:
        scores = self.test(self.reference["test"])
        return 100 * kfold(scores, self.test.pairs.same, self.folds)["mean"]

    def score(self, model: bytes) -> dict[str, Any]:
        """Accuracy and fidelity to float of one INT8 TFLite file."""
        with tempfile.TemporaryDirectory(prefix="int8-draw-") as scratch:
            path = Path(scratch) / "model.tflite"
            path.write_bytes(model)
            runner = load_backend(path, "litert", self.threads)
            emb = embed_lists(runner, self.crops, self.spec, "embed")
        same = self.test.pairs.same
        scores = self.test(emb["test"])
        cos = np.sum(emb["test"] * self.reference["test"], axis=1)
        row = {
            "acc_pct": 100 * kfold(scores, same, self.folds)["mean"],
            "cos_mean": float(cos.mean()),
            "cos_min": float(cos.min()),
            "noise": float(np.std(scores - self.test(self.reference["test"]))),
        }
        if self.train is not None:
            fixed = (self.train(emb["train"]), self.train.pairs.same)
            row["train_acc_pct"] = 100 * kfold(scores, same, self.folds, fixed)["mean"]
        return row


def summary(builds: list[dict[str, Any]], float_acc: float) -> list[dict[str, Any]]:
    """One row per range scheme: means over the draws, and the accuracy's min and max."""
    rows = []
    for ranges in dict.fromkeys(b["ranges"] for b in builds):
        mine = [b for b in builds if b["ranges"] == ranges]
        metrics = [k for k in mine[0] if k not in ("draw", "ranges")]
        mean = {k: float(np.mean([b[k] for b in mine])) for k in metrics}
        acc = [b["acc_pct"] for b in mine]
        rows.append(
            {
                **mean,
                "ranges": ranges,
                "builds": len(mine),
                "acc_min": min(acc),
                "acc_max": max(acc),
                "gap_pts": float_acc - mean["acc_pct"],
            }
        )
    return rows


def calibration_pool(args: argparse.Namespace, leave_out: set[Path]) -> list[Path]:
    photos = [p for p in list_images(args.calibration) if p not in leave_out]
    if len(photos) < args.count:
        raise FacelensError(
            f"{args.calibration} has {len(photos)} photos outside the pair lists, fewer than "
            f"--count {args.count}; give a larger --calibration folder or a smaller --count"
        )
    rng = np.random.default_rng(args.seed)
    return sorted(rng.choice(photos, min(args.pool, len(photos)), replace=False).tolist())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__, "model bundle with savedmodel, keras and tflite-int8")
    add_pair_args(parser)
    parser.add_argument("--train-pairs", type=Path, help="pair list a fixed threshold comes from")
    parser.add_argument(
        "--calibration", type=Path, default=LFW / "images", help="face photos to draw from"
    )
    parser.add_argument("--draws", type=int, default=5, help="calibration draws (default 5)")
    parser.add_argument("--count", type=int, default=200, help="faces per draw (default 200)")
    parser.add_argument("--pool", type=int, default=1000, help="photos drawn from (default 1000)")
    parser.add_argument(
        "--percentiles",
        default="99.9999,99.999",
        help="narrowed ranges to compare with min/max (default 99.9999,99.999)",
    )
    parser.add_argument("--folds", type=int, default=10, help="folds (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pool and the draws")
    args = parser.parse_args(argv)
    try:
        args.percentiles = [float(p) for p in args.percentiles.split(",") if p]
    except ValueError:
        parser.error(f"--percentiles takes numbers like 99.9999,99.999, not {args.percentiles}")
    if min(args.draws, args.count, args.threads) < 1 or args.pool < args.count:
        parser.error("--draws, --count and --threads must be >= 1, and --pool >= --count")
    if not all(50 < p < 100 for p in args.percentiles):
        parser.error("each of --percentiles must be above 50 and below 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bundle = Bundle.load(args.bundle)
    spec, int8 = bundle.input_spec, bundle.artifact("tflite-int8").quantization
    layers, ops = int8.get("float_layers", []), int8.get("float_ops", [])
    images = args.images or args.pairs.parent / "images"  # the root of both pair lists
    lists = {"test": read_pairs(args.pairs, images)}
    if args.train_pairs:
        lists["train"] = read_pairs(args.train_pairs, images)
    info = machine_info()
    print(f"# int8 draws: {bundle.name} on {args.pairs}\n\nmachine: {machine_line(info)}\n")

    detector = create_detector(args.detector)
    crops = {k: crop_photos(p.photos, spec, detector)[0] for k, p in lists.items()}
    leave_out = {photo for p in lists.values() for photo in p.photos}
    pool = crop_photos(calibration_pool(args, leave_out), spec, detector)[0]
    float_model = load_runner(bundle, "keras", "tensorflow", args.threads)
    ev = Evaluation(
        test=PairScores(lists["test"]),
        train=PairScores(lists["train"]) if "train" in lists else None,
        crops=crops,
        reference=embed_lists(float_model, crops, spec, "float"),
        spec=spec,
        threads=args.threads,
        folds=args.folds,
    )
    float_acc = ev.float_accuracy()

    builds = []
    rng = np.random.default_rng(args.seed)
    for draw in range(args.draws):
        chosen = pool[rng.choice(len(pool), args.count, replace=False)]
        batch = np.stack([spec.normalize(c) for c in chosen])
        calibration = QuantCalibration(batch, f"draw {draw}: {args.count} faces", progress=False)
        for p in (None, *args.percentiles):
            model = tflite_int8(bundle.artifact_path("savedmodel"), calibration, layers, ops, p)
            ranges = "min/max" if p is None else f"{p}th percentile"
            builds.append({"draw": draw, "ranges": ranges, **ev.score(model)})
            print(f"draw {draw}, {ranges}: {builds[-1]['acc_pct']:.2f} %", flush=True)

    rows = summary(builds, float_acc)
    print("\n" + markdown_table(rows, COLUMNS))
    print(
        f"\nfloat (keras): {float_acc:.2f} %; {args.draws} draws of {args.count} faces from "
        f"{len(pool)} photos of {args.calibration} outside the pair lists; bundle's float "
        f"layers {layers or 'none'}, float ops {ops or 'none'}; accuracy over {args.folds} "
        f"folds of {args.pairs.name}; LiteRT {args.threads} thread(s)."
    )
    dest = out_dir(args, "int8_draws")
    write_json(
        dest / "int8_draws.json",
        {"machine": info, "float_acc_pct": float_acc, "builds": builds, "summary": rows},
    )
    write_csv(dest / "int8_draws.csv", builds, list(builds[0]))
    print(f"\nwrote {dest / 'int8_draws.json'}, int8_draws.csv")
    return 0


if __name__ == "__main__":
    run_cli(main)
