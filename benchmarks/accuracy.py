"""Verification accuracy of each artifact of a bundle on a pair list (img_a,img_b,same).

One embedding per photo, from its dominant face cut out as the manifest says; cosine
per pair; k-fold protocol (threshold from the other folds, or from --train-pairs);
mean ± std, true-accept rate at FAR 1e-3, AUC, and a ROC plot with one curve per
artifact. Writes accuracy.json, accuracy.csv and roc.png.

    uv run python benchmarks/accuracy.py --bundle bundles/dlib-resnet \\
        --train-pairs ../shared/data/lfw/pairs_devtrain.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    add_pair_args,
    machine_info,
    machine_line,
    markdown_table,
    new_parser,
    one_line,
    out_dir,
    pyplot,
    run_cli,
    save_figure,
    write_csv,
    write_json,
)
from _faces import crop_photos
from _runners import REFERENCE_FORMATS, embed_all, load_runner, runtimes_for
from _verification import Pairs, auc, kfold, read_pairs, roc, tar_at_far

from edge.base.errors import FacelensError
from edge.faces.detect import create_detector
from edge.model.bundle import Bundle

DEFAULT_FORMATS = ("tflite-int8", "onnx-int8")
COLUMNS = [
    ("format", "format", 0),
    ("runtime", "runtime", 0),
    ("acc_pct", "accuracy %", 2),
    ("std_pct", "± std", 2),
    ("threshold", "threshold", 3),
    ("tar_pct", "TAR % @ FAR", 2),
    ("auc", "AUC", 4),
    ("cos_mean", "cos to float mean", 4),
    ("cos_min", "cos min", 4),
    ("drop_pts", "drop vs float (pts)", 2),
    ("error", "error", 0),
]


def choose_formats(bundle: Bundle, requested: str | None) -> list[str]:
    """The float reference first, then the requested formats (default: both INT8 ones)."""
    if requested == "all":
        return bundle.formats
    if requested:
        names = requested.split(",")
        for name in names:
            bundle.artifact(name)  # unknown -> a clear error before any work
        return names
    reference = [f for f in REFERENCE_FORMATS if f in bundle.formats][:1]
    return reference + [f for f in DEFAULT_FORMATS if f in bundle.formats]


def evaluate(pairs: Pairs, train: Pairs | None, emb: dict[Path, np.ndarray], args) -> dict:
    def scores(p: Pairs) -> np.ndarray:
        return np.array([float(emb[a] @ emb[b]) for a, b in zip(p.a, p.b, strict=True)])

    s = scores(pairs)
    train_scores = (scores(train), train.same) if train is not None else None
    result = kfold(s, pairs.same, args.folds, train_scores)
    far, tar = roc(s, pairs.same)
    result.update(
        tar_at_far=tar_at_far(s, pairs.same, args.far),
        auc=auc(s, pairs.same),
        roc={"far": far, "tar": tar},
    )
    return result


def plot_roc(curves: dict[str, dict], path: Path, title: str, far_target: float) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.5, 5))
    for label, r in curves.items():
        far = np.maximum(np.asarray(r["roc"]["far"]), 1e-4)  # log axis: 0 drawn at the floor
        ax.plot(far, r["roc"]["tar"], label=f"{label} (acc {100 * r['mean']:.2f} %)")
    ax.axvline(far_target, color="grey", ls=":", lw=1, label=f"FAR {far_target:g}")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate (log)")
    ax.set_ylabel("true accept rate")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__)
    add_pair_args(parser)
    parser.add_argument(
        "--train-pairs", type=Path, help="choose the threshold on this pairs file instead of folds"
    )
    parser.add_argument(
        "--train-images", type=Path, help="image root of --train-pairs (default: --images)"
    )
    parser.add_argument(
        "--formats",
        help="comma-separated formats, or 'all' (default: the float reference, tflite-int8, "
        "onnx-int8)",
    )
    parser.add_argument("--folds", type=int, default=10, help="folds (default 10)")
    parser.add_argument("--far", type=float, default=1e-3, help="FAR for the TAR (default 1e-3)")
    parser.add_argument("--threads", type=int, help="inference threads (default: the runtime's)")
    parser.add_argument("--batch", type=int, default=8, help="faces per inference (default 8)")
    args = parser.parse_args(argv)
    if args.folds < 2 or args.batch < 1 or not 0 < args.far < 1:
        parser.error("--folds must be >= 2, --batch >= 1 and 0 < --far < 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bundle = Bundle.load(args.bundle)
    formats = choose_formats(bundle, args.formats)
    images = args.images or args.pairs.parent / "images"
    pairs = read_pairs(args.pairs, images)
    train = read_pairs(args.train_pairs, args.train_images or images) if args.train_pairs else None
    if pairs.same.sum() < args.folds or (~pairs.same).sum() < args.folds:
        raise FacelensError(
            f"{args.pairs} has too few pairs of one kind for {args.folds} folds; lower --folds"
        )
    info = machine_info()
    print(f"# accuracy: {bundle.name} on {args.pairs}\n\nmachine: {machine_line(info)}\n")

    photos = sorted(set(pairs.photos) | set(train.photos if train else []))
    crops, how = crop_photos(photos, bundle.input_spec, create_detector(args.detector))
    rows, results, reference = [], {}, None
    for fmt in formats:
        runtime = runtimes_for(fmt)[0]
        row: dict[str, Any] = {"format": fmt, "runtime": runtime, "error": ""}
        try:
            runner = load_runner(bundle, fmt, runtime, args.threads)
            emb = embed_all(runner, crops, bundle.input_spec, args.batch, f"embed {fmt}")
        except Exception as exc:  # one failing artifact is a row, not the end of the run
            rows.append({**row, "error": one_line(exc)})
            continue
        if reference is None and fmt in REFERENCE_FORMATS:
            reference = (fmt, emb)
        if reference is not None:
            cos = np.sum(emb * reference[1], axis=1)
            row.update(cos_mean=float(cos.mean()), cos_min=float(cos.min()))
        r = evaluate(pairs, train, dict(zip(photos, emb, strict=True)), args)
        results[f"{fmt} ({runtime})"] = r
        row.update(
            acc_pct=100 * r["mean"],
            std_pct=100 * r["std"],
            threshold=float(np.mean(r["thresholds"])),
            tar_pct=100 * r["tar_at_far"]["tar"],
            auc=r["auc"],
        )
        rows.append(row)
    if reference is not None:
        float_acc = next(r["acc_pct"] for r in rows if r["format"] == reference[0])
        for row in rows:
            if row.get("acc_pct") is not None:
                row["drop_pts"] = float_acc - row["acc_pct"]

    print(markdown_table(rows, COLUMNS))
    n_neg = int((~pairs.same).sum())
    print(
        f"\n{len(pairs.same)} pairs ({int(pairs.same.sum())} same), {len(photos)} photos; "
        f"faces: {', '.join(f'{k} {v}' for k, v in how.items())}; threshold from "
        f"{'--train-pairs ' + str(args.train_pairs) if train else f'{args.folds - 1} other folds'}"
        f", accuracy over {args.folds} held-out folds; TAR at FAR {args.far:g} over all "
        f"{n_neg} different pairs (FAR resolution 1/{n_neg})."
    )
    dest = out_dir(args, "accuracy")
    write_json(
        dest / "accuracy.json",
        {
            "bundle": {"path": str(bundle.path), "name": bundle.name},
            "machine": info,
            "settings": {k: str(v) for k, v in vars(args).items()},
            "pairs": {
                "count": len(pairs.same),
                "same": int(pairs.same.sum()),
                "photos": len(photos),
            },
            "faces_chosen": dict(how),
            "rows": rows,
            "results": results,
        },
    )
    write_csv(dest / "accuracy.csv", rows, [k for k, _, _ in COLUMNS])
    if results:
        plot_roc(results, dest / "roc.png", f"{bundle.name} on {args.pairs.name}", args.far)
    print(f"\nwrote {dest / 'accuracy.json'}, accuracy.csv, roc.png")
    return 0 if results else 1


if __name__ == "__main__":
    run_cli(main)
