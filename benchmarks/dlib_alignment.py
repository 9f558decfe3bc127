"""What cutting faces from YuNet's landmarks costs dlib's face ResNet, against dlib's own chips.

Each photo's dominant YuNet face is cut twice: as the bundle's manifest says (YuNet's
5 points onto the fitted template, what edge does), and as dlib does (HOG box, its
5-point landmarks, ``get_face_chip`` 150 px padding 0.25; needs ``dlib-bin``). Both
go through the same artifacts; verification accuracy as in accuracy.py (threshold
from the other folds, or from --train-pairs), plus dlib's own rule (euclidean
distance < 0.6 on raw descriptors) and the bundle's default cosine threshold.
Writes dlib_alignment.json and .csv.

    uv run python benchmarks/dlib_alignment.py --bundle bundles/dlib-resnet \\
        --train-pairs ../shared/data/lfw/pairs_devtrain.csv
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    LFW,
    machine_info,
    machine_line,
    markdown_table,
    new_parser,
    out_dir,
    progress,
    run_cli,
    write_csv,
    write_json,
)
from _faces import crop_photos
from _runners import load_runner, runtimes_for
from _verification import accuracy, read_pairs
from accuracy import evaluate

from convert.dlib_chips import DlibChipper
from edge.base.errors import FacelensError
from edge.base.numeric import l2_normalize
from edge.faces.detect import create_detector
from edge.faces.dominant import rank_faces
from edge.media.images import read_image
from edge.model.bundle import Bundle

COLUMNS = [
    ("chips", "faces cut by", 0),
    ("format", "format", 0),
    ("acc_pct", "accuracy %", 2),
    ("std_pct", "± std", 2),
    ("threshold", "cosine threshold", 3),
    ("default_acc_pct", "acc % at bundle threshold", 2),
    ("dlib_rule_acc_pct", "acc % at dlib's 0.6", 2),
    ("tar_pct", "TAR % @ FAR", 2),
    ("auc", "AUC", 4),
]


def dlib_chips(paths: list[Path], detector) -> tuple[np.ndarray, Counter]:
    """dlib's own 150-px chip of each photo's dominant YuNet face (BGR uint8)."""
    chipper = DlibChipper()
    chips, how = [], Counter()
    for path in progress(paths, "dlib chips"):
        image = read_image(path)
        faces = rank_faces(detector.detect(image), image.shape)
        if not faces:
            raise FacelensError(f"no face in {path}: dlib's chip needs one")
        chip, _, box = chipper.chip(image, faces[0])
        chips.append(chip)
        how[box] += 1
    return np.stack(chips), how


def raw_embeddings(runner: Any, crops: np.ndarray, spec, batch: int, desc: str) -> np.ndarray:
    out = []
    for i in progress(range(0, len(crops), batch), desc, total=-(-len(crops) // batch)):
        out.append(runner.run(np.stack([spec.normalize(c) for c in crops[i : i + batch]])))
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    parser = new_parser(__doc__, "a dlib-resnet bundle (python -m convert --model dlib-resnet)")
    parser.add_argument("--pairs", type=Path, default=LFW / "pairs_devtest.csv")
    parser.add_argument("--images", type=Path, help="default: PAIRS/../images")
    parser.add_argument("--train-pairs", type=Path, help="choose thresholds here, not by folds")
    parser.add_argument("--formats", default="keras,tflite-int8", help="comma-separated")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--far", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, help="inference threads (default: the runtime's)")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    bundle = Bundle.load(args.bundle)
    source = bundle.manifest.source
    dlib_info = source.extra.get("dlib") if source is not None else None
    if dlib_info is None:
        raise FacelensError(f"{args.bundle} is not a dlib-resnet bundle; build one first")
    native = float(dlib_info["loss"]["distance_threshold"])
    images = args.images or args.pairs.parent / "images"
    pairs = read_pairs(args.pairs, images)
    train = read_pairs(args.train_pairs, images) if args.train_pairs else None
    photos = sorted(set(pairs.photos) | set(train.photos if train else []))
    info = machine_info()
    print(f"# dlib alignment: {bundle.name} on {args.pairs}\n\nmachine: {machine_line(info)}\n")

    detector = create_detector(args.detector)
    cut = {"yunet template (edge)": crop_photos(photos, bundle.input_spec, detector)}
    cut["dlib get_face_chip"] = dlib_chips(photos, detector)
    index = {p: i for i, p in enumerate(photos)}
    rows, results = [], {}
    for fmt in args.formats.split(","):
        runner = load_runner(bundle, fmt, runtimes_for(fmt)[0], args.threads)
        for chips, (crops, how) in cut.items():
            raw = raw_embeddings(runner, crops, bundle.input_spec, args.batch, f"{fmt} {chips}")
            emb = l2_normalize(raw)
            r = evaluate(pairs, train, dict(zip(photos, emb, strict=True)), args)
            ia = np.array([index[p] for p in pairs.a])
            ib = np.array([index[p] for p in pairs.b])
            cosine = np.sum(emb[ia] * emb[ib], axis=1)
            dist = np.linalg.norm(raw[ia] - raw[ib], axis=1)
            rows.append(
                {
                    "chips": chips,
                    "format": fmt,
                    "acc_pct": 100 * r["mean"],
                    "std_pct": 100 * r["std"],
                    "threshold": float(np.mean(r["thresholds"])),
                    "default_acc_pct": 100 * accuracy(cosine, pairs.same, bundle.threshold),
                    "dlib_rule_acc_pct": 100 * accuracy(-dist, pairs.same, -native),
                    "tar_pct": 100 * r["tar_at_far"]["tar"],
                    "auc": r["auc"],
                }
            )
            results[f"{chips} / {fmt}"] = {**r, "faces": dict(how)}
    print(markdown_table(rows, COLUMNS))
    print(
        f"\n{len(pairs.same)} pairs, {len(photos)} photos; bundle threshold cosine "
        f"{bundle.threshold:.3f}; dlib's rule: euclidean < {native:g} on raw descriptors; "
        f"thresholds from {'--train-pairs' if train else f'{args.folds - 1} other folds'}."
    )
    dest = out_dir(args, "dlib_alignment")
    write_json(
        dest / "dlib_alignment.json",
        {
            "bundle": {"path": str(bundle.path), "name": bundle.name},
            "machine": info,
            "settings": {k: str(v) for k, v in vars(args).items()},
            "faces": {k: dict(v[1]) for k, v in cut.items()},
            "rows": rows,
            "results": results,
        },
    )
    write_csv(dest / "dlib_alignment.csv", rows, [k for k, _, _ in COLUMNS])
    print(f"\nwrote {dest / 'dlib_alignment.json'} and dlib_alignment.csv")
    return 0


if __name__ == "__main__":
    run_cli(main)
