"""``python -m convert``: build a model bundle from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from convert.report import format_table
from edge.cli import argtypes
from edge.cli.commandline import run_command
from edge.model.bundle import ARTIFACT_FILES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m convert",
        description=(
            "Build a facelens model bundle: the float model exported to SavedModel, .keras, "
            "INT8/fp16/dynamic TFLite and float/INT8 ONNX, each checked against the float model."
        ),
    )
    p.add_argument(
        "--model",
        default="vgg16",
        help="`vgg16` (default), `dlib-resnet` (dlib's public-domain face ResNet, from the "
        "face_recognition_models package) or a .keras file",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="VGG16: imagenet (default; downloads), none (seeded, untrained) or a .h5/.keras "
        "weights file; dlib-resnet: a dlib .dat network (default: face_recognition_models')",
    )
    p.add_argument("--layer", default=None, help="output layer (VGG16 default: block5_pool)")
    p.add_argument("--input-spec", type=Path, default=None, help="input_spec.json of --model")
    p.add_argument("--seed", type=int, default=0, help="seed for untrained weights and sampling")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument(
        "--formats",
        default=",".join(ARTIFACT_FILES),
        help=f"comma-separated, default all: {','.join(ARTIFACT_FILES)}",
    )
    p.add_argument(
        "--calibration", type=Path, required=True, help="folder of face photos (recursive)"
    )
    p.add_argument("--calibration-count", type=argtypes.positive_int, default=200)
    p.add_argument(
        "--eval",
        type=Path,
        default=None,
        help="held-out face photos (default: a disjoint slice of --calibration)",
    )
    p.add_argument("--eval-count", type=argtypes.positive_int, default=100)
    p.add_argument(
        "--detector",
        type=Path,
        default=None,
        help="YuNet .onnx file (default: $FACELENS_YUNET, the cache, else a download)",
    )
    p.add_argument(
        "--min-cosine", type=argtypes.cosine, default=0.98, help="fidelity floor on cosine min"
    )
    p.add_argument(
        "--no-detect",
        action="store_true",
        help="the notebook's mode: whole photos resized, no face detection (comparison only)",
    )
    p.add_argument(
        "--embedding-dim",
        type=int,
        default=None,
        help="compact embeddings: fold a PCA to N dims into the model (e.g. 512, 256, 128)",
    )
    p.add_argument("--whiten", action="store_true", help="with --embedding-dim: whitened PCA")
    p.add_argument(
        "--projection-faces",
        type=Path,
        default=None,
        help="face photos the PCA is fitted on (default: --calibration; held-out faces excluded)",
    )
    p.add_argument("--projection-count", type=int, default=2000, help="faces to fit the PCA on")
    p.add_argument("--name", default=None, help="bundle name (default from model and layer)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    p.add_argument(
        "--allow-failures",
        action="store_true",
        help="keep the bundle when formats fail or fall under --min-cosine (exit 0)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m convert``; see :mod:`edge.cli.commandline` for exit codes."""
    args = parse_args(argv)
    return run_command(lambda: _build(args), interrupted="nothing was written")


def _build(args: argparse.Namespace) -> int:
    from convert.build import ConversionFailed, build_bundle  # TensorFlow: only past --help

    try:
        bundle = build_bundle(
            args.out,
            calibration=args.calibration,
            model=args.model,
            weights=args.weights,
            layer=args.layer,
            input_spec=args.input_spec,
            formats=[f.strip() for f in args.formats.split(",") if f.strip()],
            calibration_count=args.calibration_count,
            eval_dir=args.eval,
            eval_count=args.eval_count,
            min_cosine=args.min_cosine,
            seed=args.seed,
            name=args.name,
            embedding_dim=args.embedding_dim,
            whiten=args.whiten,
            projection_faces=args.projection_faces,
            projection_count=args.projection_count,
            detector=args.detector,
            no_detect=args.no_detect,
            force=args.force,
            allow_failures=args.allow_failures,
            progress=not args.no_progress,
        )
    except ConversionFailed as exc:
        print(exc.table)  # what did convert, and how well, before the error line
        raise
    m = bundle.manifest
    print(format_table(m.artifacts, m.failed, args.min_cosine))
    cal, held = m.calibration, m.eval
    print(
        f"calibration: {cal.count} faces from {cal.source} (skipped {cal.skipped}); "
        f"held-out: {held.count} faces (skipped {held.skipped})"
    )
    if m.embedding_projection is not None:
        pca = m.embedding_projection
        print(
            f"embedding: {pca.dim}-d {pca.kind} of the {pca.from_dim}-d features (variance "
            f"kept {pca.variance_kept:.3f}, fitted on {pca.fitted_on.count} faces from "
            f"{pca.fitted_on.source})"
        )
    print(f"threshold: cosine {m.threshold.cosine} ({m.threshold.how})")
    if m.threshold.warning:
        print(f"warning: {m.threshold.warning}")
    if m.open_set is not None:
        print(
            f"open set: {m.open_set.how}" if m.open_set.file else f"warning: {m.open_set.warning}"
        )
    print(f"bundle: {bundle.path}  (model_id {m.model_id[:12]}, fingerprint {bundle.fingerprint})")
    if m.warning:
        print(m.warning)
    return 0
