"""What compact embeddings cost: LFW verification and nearest-neighbour agreement per PCA size.

The float model's features of every photo of a pair list are compared in full and
through PCAs fitted (exactly as ``convert --embedding-dim`` fits them, with
:func:`convert.projection.fit_pca`) on LFW photos of *other* people: verification
accuracy (10 folds, threshold from the other folds), AUC, and for every photo
whether its nearest other photo is the same one as with the full embedding
(``nn_agree``) and of the same person (``nn_same_person``).

    uv run python benchmarks/projection.py --model vgg16 --weights none --dims 512,256,128
    uv run python benchmarks/projection.py --model ../shared/models/faceres/faceres.keras \\
        --input-spec ../shared/models/faceres/input_spec.json --dims 512,256,128
"""

from __future__ import annotations

import argparse
import random
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
    run_cli,
    shared_yunet,
    write_json,
)
from _faces import crop_photos
from _verification import Pairs, auc, kfold, read_pairs

from convert.fidelity import keras_features
from convert.models import load_backbone
from convert.projection import fit_pca
from edge.base.numeric import l2_normalize
from edge.faces.detect import create_detector
from edge.media.images import list_images

COLUMNS = [
    ("embedding", "embedding", 0),
    ("dim", "dims", 0),
    ("variance_kept", "variance kept", 3),
    ("acc_pct", "LFW accuracy %", 2),
    ("std_pct", "± std", 2),
    ("auc", "AUC", 4),
    ("nn_agree_pct", "same nearest photo as full %", 1),
    ("nn_same_person_pct", "nearest is same person %", 1),
]


def features(
    model: Any, spec: Any, paths: list[Path], batch: int, desc: str, detector: Any
) -> np.ndarray:
    crops, _ = crop_photos(paths, spec, detector)
    out = [
        keras_features(model, np.stack([spec.normalize(c) for c in crops[i : i + batch]]))
        for i in progress(range(0, len(crops), batch), desc, total=-(-len(crops) // batch))
    ]
    return np.concatenate(out)


def neighbours(emb: np.ndarray) -> np.ndarray:
    """Each row's nearest other row by cosine."""
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    return sims.argmax(axis=1)


def evaluate(emb: np.ndarray, index: dict[Path, int], pairs: Any, folds: int) -> dict[str, float]:
    a = emb[[index[p] for p in pairs.a]]
    b = emb[[index[p] for p in pairs.b]]
    scores = np.sum(a * b, axis=1)
    result = kfold(scores, pairs.same, folds)
    return {
        "acc_pct": 100 * result["mean"],
        "std_pct": 100 * result["std"],
        "auc": auc(scores, pairs.same),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="vgg16", help="vgg16 or a .keras file")
    parser.add_argument("--weights", help="VGG16: imagenet, none or a file")
    parser.add_argument("--input-spec", type=Path, help="input_spec.json of --model")
    parser.add_argument("--dims", type=lambda s: [int(v) for v in s.split(",")], default=[512])
    parser.add_argument("--pairs", type=Path, default=LFW / "pairs_devtest.csv")
    parser.add_argument("--fit-count", type=int, default=2000, help="photos the PCA is fitted on")
    parser.add_argument(
        "--pair-limit", type=int, help="first N same and N different pairs only (slow models)"
    )
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector", type=Path, default=shared_yunet(), help="YuNet .onnx file")
    parser.add_argument("--out", help="output folder (default benchmarks/results/projection)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    images = args.pairs.parent / "images"
    pairs = read_pairs(args.pairs, images)
    if args.pair_limit:
        keep = np.concatenate(
            [np.flatnonzero(pairs.same == s)[: args.pair_limit] for s in (True, False)]
        )
        pairs = Pairs([pairs.a[i] for i in keep], [pairs.b[i] for i in keep], pairs.same[keep])
    backbone = load_backbone(args.model, args.weights, None, args.input_spec, args.seed)
    info = machine_info()
    name = f"{Path(backbone.source['backbone']).stem} ({backbone.source['weights']})"
    print(f"# projection: {name}, {backbone.dim} dims\n\nmachine: {machine_line(info)}\n")
    asked = {p.parent.name for p in pairs.photos}
    others = [p for p in list_images(images) if p.parent.name not in asked]
    random.Random(args.seed).shuffle(others)
    fit_on = others[: args.fit_count]
    photos = pairs.photos
    spec = backbone.input_spec
    detector = create_detector(args.detector)
    fit = features(backbone.model, spec, fit_on, args.batch, "features: PCA photos", detector)
    full = features(backbone.model, spec, photos, args.batch, "features: pair photos", detector)
    index = {p: i for i, p in enumerate(photos)}
    person = np.asarray([p.parent.name for p in photos])
    reference = l2_normalize(full)
    nn_full = neighbours(reference)
    variants = [("full", None, False)] + [
        (kind, d, kind == "pca-whitened") for d in args.dims for kind in ("pca", "pca-whitened")
    ]
    rows = []
    for kind, dim, whiten in variants:
        if dim is None:
            emb, kept = reference, 1.0
        else:
            projection = fit_pca(fit, dim, whiten)
            emb, kept = projection.apply(full), projection.variance_kept
        nn = neighbours(emb)
        rows.append(
            {
                "embedding": kind,
                "dim": dim or backbone.dim,
                "variance_kept": kept,
                **evaluate(emb, index, pairs, args.folds),
                "nn_agree_pct": 100 * float(np.mean(nn == nn_full)),
                "nn_same_person_pct": 100 * float(np.mean(person[nn] == person)),
            }
        )
        print(f"  {kind} {dim or backbone.dim}: acc {rows[-1]['acc_pct']:.2f} %", flush=True)
    print("\n" + markdown_table(rows, COLUMNS))
    print(
        f"\n{len(pairs.same)} pairs over {len(photos)} photos; PCA fitted on {len(fit_on)} "
        f"photos of {len({p.parent.name for p in fit_on})} other people; nearest photo among "
        f"the {len(photos)} pair photos."
    )
    if backbone.untrained:
        print("UNTRAINED weights: accuracy here says nothing about recognition, only agreement")
    dest = out_dir(args, "projection")
    stem = Path(backbone.source["backbone"]).stem
    write_json(
        dest / f"projection-{stem}.json",
        {
            "model": backbone.source,
            "machine": info,
            "settings": {k: str(v) for k, v in vars(args).items()},
            "fit_photos": len(fit_on),
            "pair_photos": len(photos),
            "rows": rows,
        },
    )
    print(f"\nwrote {dest / f'projection-{stem}.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
