"""``python -m explain gradcam|contrast|occlusion|filters|regions|anonymize|compare``.

Every command writes PNG figures (titles, colour bars) and a JSON file of numbers to
``--out``; bad input ends with one ``error: ...`` line and a non-zero exit status.
Parsing loads nothing heavy: TensorFlow is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edge.cli import argtypes
from edge.cli.commandline import run_command
from edge.model.bundle import RUNTIME_FORMATS
from explain.precision import PRECISIONS

FORMATS = ("keras", *RUNTIME_FORMATS)  # which model runs: keras is the float one
Subparsers = argparse._SubParsersAction


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (one of)")
    g.add_argument("--bundle", type=Path, help="a model bundle folder (uses its model_float.keras)")
    g.add_argument("--model", help="vgg16 (full VGG16 with its ImageNet top) or a .keras file")
    g.add_argument(
        "--weights", help="VGG16 weights: imagenet (default), none (seeded, untrained) or a file"
    )
    g.add_argument("--input-spec", type=Path, help="input_spec.json for --model X.keras")
    g.add_argument("--seed", type=int, default=0, help="seed for untrained weights and noise")
    _out_arg(p)
    p.add_argument(
        "--threads",
        type=argtypes.positive_int,
        default=2,
        help="runtime threads for edge artifacts",
    )


def _out_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=argtypes.output_folder, default="explain-out", help="output folder"
    )


def _photo_args(p: argparse.ArgumentParser) -> None:
    """The photos to explain and how faces are found in them."""
    p.add_argument("images", nargs="+", help="photos, or folders searched recursively")
    p.add_argument("--limit", type=argtypes.positive_int, help="use only the first N images")
    p.add_argument("--no-detect", action="store_true", help="the whole photo (the notebook's mode)")
    p.add_argument("--detector", type=Path, help="a YuNet .onnx file")


def _image_args(p: argparse.ArgumentParser) -> None:
    _photo_args(p)
    p.add_argument("--gallery", type=Path, help="an edge gallery, for --target person:NAME")
    p.add_argument(
        "--target",
        help="self (default for embeddings), person:NAME (with --gallery), a reference "
        "photo, or for classifiers top1 (default) or class:N",
    )


def _occlusion_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--patch", type=argtypes.positive_int, default=25, help="patch side in pixels (25)"
    )
    p.add_argument(
        "--stride", type=argtypes.positive_int, default=14, help="patch stride in pixels (14)"
    )
    p.add_argument(
        "--fill", type=argtypes.grey_level, default=128.0, help="grey level of the patch (128)"
    )
    p.add_argument("--batch-size", type=argtypes.positive_int, default=32)
    p.add_argument(
        "--no-incremental",
        dest="incremental",
        action="store_false",
        help="through tflite-int8, run every occluded copy whole instead of only where the "
        "patch reaches (the same map, about 3x slower on VGG16)",
    )


def _heatmap_parser(sub: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    """A command that draws heatmaps on photos: model, photos and occlusion options."""
    p = sub.add_parser(name, help=help)
    _model_args(p), _image_args(p), _occlusion_args(p)
    return p


def _gradcam(sub: Subparsers) -> None:
    p = sub.add_parser("gradcam", help="Grad-CAM at one or more layers")
    _model_args(p), _image_args(p)
    p.add_argument("--layers", nargs="+", help="layers (default: the model's Grad-CAM layers)")


def _contrast(sub: Subparsers) -> None:
    p = sub.add_parser("contrast", help="Grad-CAM of several bundles on the same photos")
    _photo_args(p)
    p.add_argument(
        "--bundles", nargs="+", type=Path, required=True, help="bundle folders, one panel each"
    )
    p.add_argument("--target", help="self (default) or a reference photo of the same person")
    _out_arg(p)


def _occlusion(sub: Subparsers) -> None:
    p = _heatmap_parser(sub, "occlusion", "occlusion sensitivity through any artifact")
    p.add_argument(
        "--format", default="keras", choices=FORMATS, help="which model runs (keras = float)"
    )
    p.add_argument(
        "--refine",
        type=float,
        help="coarse-to-fine: run a quarter of the patches, then only this fraction of the "
        "rest, where the coarse map is highest (e.g. 0.25; default: every patch)",
    )


def _regions(sub: Subparsers) -> None:
    p = _heatmap_parser(sub, "regions", "mean heatmap per landmark region")
    p.add_argument("--method", choices=("occlusion", "gradcam"), default="occlusion")
    p.add_argument("--format", default="keras", choices=FORMATS)
    p.add_argument("--layers", nargs="+", help="Grad-CAM layer (with --method gradcam)")


def _compare(sub: Subparsers) -> None:
    p = _heatmap_parser(sub, "compare", "float vs quantized occlusion maps (+ float Grad-CAM)")
    p.add_argument(
        "--formats",
        nargs="+",
        choices=RUNTIME_FORMATS,
        help="artifacts to check (default: the INT8 ones)",
    )
    p.add_argument(
        "--min-spearman", type=float, help="exit 1 when any image's Spearman is below this"
    )
    p.add_argument(
        "--min-iou", type=float, help="exit 1 when any image's top-10%% IoU is below this"
    )


def _filters(sub: Subparsers) -> None:
    p = sub.add_parser("filters", help="activation maximisation of a layer's filters")
    _model_args(p)
    p.add_argument("--layers", nargs="+", help="layers (default: three across the depth)")
    p.add_argument(
        "--filters", type=argtypes.positive_int, default=8, help="the first N filters of each layer"
    )
    p.add_argument("--steps", type=argtypes.positive_int, default=30)
    p.add_argument(
        "--step", type=argtypes.positive_number, default=1.0, help="step size in pixel units"
    )
    p.add_argument(
        "--jitter", type=argtypes.int_at_least(0), default=0, help="random shift per step, pixels"
    )
    p.add_argument(
        "--blur-every",
        type=argtypes.int_at_least(0),
        default=0,
        help="blur the pattern every N steps",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="arithmetic of the ascent: auto (bfloat16 where the CPU has it natively, "
        "else float32), float32 or bfloat16; activations are reported in float32",
    )


def _anonymize(sub: Subparsers) -> None:
    p = sub.add_parser("anonymize", help="masks vs recognition over many LFW identities")
    _model_args(p)
    p.add_argument("--lfw", required=True, help="LFW images/ folder (one folder per person)")
    p.add_argument("--people", type=argtypes.positive_int, default=50)
    p.add_argument(
        "--formats",
        nargs="*",
        choices=RUNTIME_FORMATS,
        help="artifacts besides float (default: the INT8 ones)",
    )
    p.add_argument(
        "--threshold", type=argtypes.threshold, help="cosine threshold (default: the bundle's)"
    )
    p.add_argument("--no-detect", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--detector", type=Path, help="a YuNet .onnx file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explain",
        description="Explain a facelens model: Grad-CAM, occlusion, filter visualisation, "
        "landmark regions, anonymisation masks, and the float-vs-INT8 check.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (_gradcam, _contrast, _occlusion, _regions, _filters, _anonymize, _compare):
        command(sub)  # the subparser's name is what `command` holds once parsed
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    return run_command(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; TensorFlow loads here, not when the parser is built."""
    from convert._quiet import load_tensorflow

    load_tensorflow()  # first, with its native start-up banner silenced, before Keras
    from explain import commands

    return getattr(commands, f"cmd_{args.command}")(args)
