"""``python -m explain gradcam|occlusion|filters|regions|anonymize|compare``.

Every command writes PNG figures (titles, colour bars) and a JSON file of numbers to
``--out``; bad input ends with one ``error: ...`` line and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge.bundle import RUNTIME_FORMATS
from edge.detect import create_detector
from edge.embedder import Embedder
from edge.errors import FacelensError, ImageError
from explain import figures
from explain.anonymize import IMAGE_SUFFIXES, MASKS, pick_people, prepare_probes, study
from explain.base import FeatureFn, HeatmapMethod, embedder_features
from explain.compare import (
    QUANTIZED_DEFAULT,
    Comparer,
    CompareSettings,
    aggregate,
    failures,
    report_markdown,
)
from explain.faces import FaceCrop, FaceLoader
from explain.filters import maximize_filters, pattern_stats
from explain.gradcam import GradCAM, conv_layers, spatial_layers
from explain.models import ExplainModel, from_bundle, load_keras_model, vgg16_classifier
from explain.occlusion import Occlusion
from explain.regions import region_masks, region_scores
from explain.targets import (
    Target,
    class_target,
    person_target,
    self_target,
    similarity_target,
    top1_target,
)

log = logging.getLogger("explain")
VGG16_FILTER_LAYERS = ("block1_conv2", "block3_conv3", "block5_conv3")


# --- shared plumbing ---------------------------------------------------------------


def load_model(args: argparse.Namespace) -> ExplainModel:
    """``--bundle DIR``, or ``--model vgg16 [--weights]``, or ``--model X.keras --input-spec``."""
    if args.bundle:
        model = from_bundle(args.bundle)
    elif args.model == "vgg16":
        model = vgg16_classifier(args.weights or "imagenet", args.seed)
    elif args.model:
        model = load_keras_model(args.model, args.input_spec)
    else:
        raise FacelensError("say which model to explain: --bundle DIR, or --model vgg16 / X.keras")
    if model.untrained:
        print(
            f"warning: {model.name} has UNTRAINED (seeded random) weights: its explanations "
            "show the architecture, not anything learned",
            file=sys.stderr,
        )
    return model


def image_paths(items: list[str], limit: int | None) -> list[Path]:
    """Files as given, folders searched recursively for images (sorted); first ``limit``."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            paths.append(p)
        else:
            raise ImageError(f"image {p} does not exist; check the path")
    if not paths:
        raise ImageError(f"no images found in {', '.join(items)}")
    return paths[:limit] if limit else paths


def loader_for(model: ExplainModel, args: argparse.Namespace) -> FaceLoader:
    detector = None if args.no_detect else create_detector(args.detector)
    return FaceLoader(model.spec, detect=not args.no_detect, detector=detector)


def each_face(loader: FaceLoader, paths: list[Path], skipped: list) -> Iterator[FaceCrop]:
    """Cut every photo's face; a photo that fails is reported and skipped, the rest go on."""
    for path in paths:
        try:
            yield loader.load(path)
        except ImageError as exc:
            if len(paths) == 1:
                raise
            print(f"warning: skipped: {exc}", file=sys.stderr)
            skipped.append({"image": str(path), "reason": str(exc)})


def make_target(
    name: str | None,
    model: ExplainModel,
    fn: FeatureFn,
    crop: FaceCrop,
    loader: FaceLoader,
    gallery: Path | None = None,
) -> Target:
    """``self`` or ``person:NAME`` or a reference photo (embeddings); ``top1`` / ``class:N``."""
    name = name or ("top1" if model.classifier else "self")
    outputs = fn(crop.pixels[None])
    if name in ("top1",) or name.startswith("class:"):
        if not model.classifier:
            raise FacelensError(
                f"--target {name} needs a classifier: use --model vgg16 (VGG16 with its "
                "ImageNet top); embedding models take --target self or a reference image"
            )
        if name == "top1":
            return top1_target(outputs)
        try:
            index = int(name.split(":", 1)[1])
        except ValueError:
            raise FacelensError(f"--target {name}: write class:N with N a number") from None
        if not 0 <= index < outputs.shape[1]:
            raise FacelensError(f"--target {name}: classes are 0..{outputs.shape[1] - 1}")
        return class_target(index, outputs.shape[1])
    if name == "self":
        return self_target(outputs)
    if name.startswith("person:"):
        if model.bundle is None or gallery is None:
            raise FacelensError(f"--target {name} needs --bundle DIR and --gallery FILE")
        return person_target(gallery, model.bundle, name.split(":", 1)[1])
    reference = loader.load(name)
    return similarity_target(fn(reference.pixels[None])[0], Path(name).name)


def write_json(out: Path, name: str, data: Any) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return path


def stem(i: int, crop: FaceCrop) -> str:
    return f"{i:03d}_{Path(crop.source).stem}"


def regions_of(crop: FaceCrop, heatmap: np.ndarray) -> dict[str, float | None] | None:
    if crop.landmarks is None:
        return None
    return region_scores(heatmap, region_masks(crop.landmarks, heatmap.shape))


def drop_label(target: Target) -> str:
    return "drop in " + ("probability" if target.kind == "dot" else "cosine")


def feature_fn(model: ExplainModel, fmt: str, threads: int | None) -> FeatureFn:
    """The float Keras model (``keras``) or an edge artifact of the bundle."""
    if fmt == "keras":
        return model.features()
    if model.bundle is None:
        raise FacelensError(f"--format {fmt} needs --bundle DIR (it runs the bundle's artifact)")
    return embedder_features(Embedder(model.bundle, fmt, threads=threads))


# --- commands ------------------------------------------------------------------------


def cmd_gradcam(args: argparse.Namespace) -> int:
    model = load_model(args)
    layers = args.layers or list(model.gradcam_layers)
    if not layers:
        raise FacelensError(
            f"no default Grad-CAM layer: pass --layers (one of {spatial_layers(model.model)})"
        )
    cams = {layer: GradCAM(model.model, layer, model.spec) for layer in layers}
    loader, fn, skipped, results = loader_for(model, args), model.features(), [], []
    for i, crop in enumerate(each_face(loader, image_paths(args.images, args.limit), skipped)):
        target = make_target(args.target, model, fn, crop, loader, args.gallery)
        maps, rows = {}, {}
        for layer, cam in cams.items():
            maps[f"Grad-CAM {layer}"] = heatmap = cam.explain(crop.pixels[None], target)[0]
            rows[layer] = {
                "target_score": float(cam.last_scores[0]),
                "regions": regions_of(crop, heatmap),
            }
        title = model.title(f"Grad-CAM, target: {target.label}")
        png = figures.heatmap_row(
            args.out / f"gradcam_{stem(i, crop)}.png", crop, maps, title, "Grad-CAM (max = 1)"
        )
        results.append(
            {"image": crop.source, "target": target.label, "layers": rows, "figure": str(png)}
        )
        print(png)
    return _finish(
        args, "gradcam.json", {"model": model.source, "results": results, "skipped": skipped}
    )


def cmd_occlusion(args: argparse.Namespace) -> int:
    model = load_model(args)
    fn = feature_fn(model, args.format, args.threads)
    occ = Occlusion(fn, args.patch, args.stride, args.fill, args.batch_size, progress="occlusion")
    loader, skipped, results = loader_for(model, args), [], []
    for i, crop in enumerate(each_face(loader, image_paths(args.images, args.limit), skipped)):
        target = make_target(args.target, model, fn, crop, loader, args.gallery)
        heatmap = occ.explain(crop.pixels[None], target)[0]
        label = drop_label(target)
        title = model.title(
            f"Occlusion {args.patch}px/{args.stride}, {args.format}, target: {target.label}"
        )
        png = figures.heatmap_row(
            args.out / f"occlusion_{stem(i, crop)}.png", crop, {"occlusion": heatmap}, title, label
        )
        results.append(
            {
                "image": crop.source,
                "target": target.label,
                "max_drop": float(heatmap.max()),
                "regions": regions_of(crop, heatmap),
                "figure": str(png),
            }
        )
        print(png)
    return _finish(
        args,
        "occlusion.json",
        {"model": model.source, "format": args.format, "results": results, "skipped": skipped},
    )


def cmd_regions(args: argparse.Namespace) -> int:
    if args.no_detect:
        raise FacelensError("regions are placed from detected landmarks: drop --no-detect")
    model = load_model(args)
    fn = feature_fn(model, args.format, args.threads)
    method: HeatmapMethod
    if args.method == "gradcam":
        layers = args.layers or list(model.gradcam_layers)
        if not layers:
            raise FacelensError("no default Grad-CAM layer: pass --layers")
        method = GradCAM(model.model, layers[-1], model.spec)
    else:
        method = Occlusion(fn, args.patch, args.stride, args.fill, args.batch_size)
    loader, skipped, results = loader_for(model, args), [], []
    for i, crop in enumerate(each_face(loader, image_paths(args.images, args.limit), skipped)):
        if crop.landmarks is None:
            raise ImageError(f"{crop.source}: the detector gave no landmarks; regions need YuNet")
        target = make_target(args.target, model, fn, crop, loader, args.gallery)
        heatmap = method.explain(crop.pixels[None], target)[0]
        label = "Grad-CAM (max = 1)" if args.method == "gradcam" else drop_label(target)
        masks = region_masks(crop.landmarks, heatmap.shape)
        scores = region_scores(heatmap, masks)
        title = model.title(f"Region scores ({args.method}, target: {target.label})")
        png = figures.regions_figure(
            args.out / f"regions_{stem(i, crop)}.png", crop, heatmap, masks, scores, title, label
        )
        results.append(
            {"image": crop.source, "method": args.method, "regions": scores, "figure": str(png)}
        )
        print(png)
    return _finish(
        args, "regions.json", {"model": model.source, "results": results, "skipped": skipped}
    )


def cmd_filters(args: argparse.Namespace) -> int:
    model = load_model(args)
    if args.layers:
        layers = args.layers
    elif model.source.get("backbone") == "vgg16":
        layers = list(VGG16_FILTER_LAYERS)
    else:  # three convolutions spread over the network's depth
        convs = conv_layers(model.model) or spatial_layers(model.model)
        layers = list(dict.fromkeys(convs[round(k * (len(convs) - 1) / 2)] for k in range(3)))
    shown, numbers = {}, {}
    for layer in layers:
        result = maximize_filters(
            model.model,
            model.spec,
            layer,
            range(args.filters),
            args.steps,
            args.step,
            args.jitter,
            args.blur_every,
            seed=args.seed,
            progress=f"filters {layer}",
        )
        stats = pattern_stats(result.inputs)
        shown[layer] = (result.patterns, result.filters, stats)
        numbers[layer] = {
            "stats": stats,
            "filters": result.filters,
            "start_activation": result.start_activation.tolist(),
            "final_activation": result.final_activation.tolist(),
        }
    title = model.title(f"Activation maximisation, {args.steps} steps")
    png = figures.filters_figure(args.out / "filters.png", shown, title)
    print(png)
    return _finish(
        args, "filters.json", {"model": model.source, "layers": numbers, "figure": str(png)}
    )


def cmd_anonymize(args: argparse.Namespace) -> int:
    model = load_model(args)
    loader = loader_for(model, args)
    if not loader.detect:
        raise FacelensError("masks are placed from detected landmarks: drop --no-detect")
    people = pick_people(Path(args.lfw), args.people, args.seed)
    probes, skipped = prepare_probes(people, loader)
    models: dict[str, FeatureFn] = {"float": model.features()}
    formats = args.formats if args.formats is not None else _default_quantized(model)
    for fmt in formats:
        models[fmt] = feature_fn(model, fmt, args.threads)
    threshold = (
        args.threshold
        if args.threshold is not None
        else (model.bundle.threshold if model.bundle else 0.5)
    )
    result = study(probes, models, threshold)
    result["skipped"] = skipped
    first = probes[0]
    sims = {
        m: float(np.dot(*_units(models["float"], first.enrolled, first.masked[m]))) for m in MASKS
    }
    notes = {m: f"cosine to enrolled {sims[m]:.3f}" for m in MASKS}
    crops = {"enrolled": first.enrolled, **first.masked}
    title = model.title(f"Masks on {first.name} (float model)")
    png = figures.masks_figure(args.out / "masks.png", crops, notes, title)
    print(png)
    _print_anonymize(result)
    return _finish(args, "anonymize.json", {"model": model.source, **result, "figure": str(png)})


def cmd_compare(args: argparse.Namespace) -> int:
    model = load_model(args)
    settings = CompareSettings(
        args.patch, args.stride, args.fill, threads=args.threads, batch_size=args.batch_size
    )
    comparer = Comparer(model, args.formats, settings)
    loader, skipped, results, float_maps = loader_for(model, args), [], [], []
    paths = image_paths(args.images, args.limit)
    for i, crop in enumerate(
        tqdm(list(each_face(loader, paths, skipped)), desc="compare", leave=False, disable=None)
    ):
        maps, result = comparer.face(crop)
        fmt = "Spearman {spearman:.3f}  SSIM {ssim:.3f}  IoU10 {top10_iou:.3f}"
        notes = {f"{f} occlusion": fmt.format(**m) for f, m in result["formats"].items()}
        title = model.title(f"float vs quantized: {Path(crop.source).name}")
        result["figure"] = str(
            figures.compare_figure(
                args.out / f"compare_{stem(i, crop)}.png", crop, maps, notes, title
            )
        )
        results.append(result)
        float_maps.append(maps["float occlusion"])
    if not results:
        raise ImageError("no image had a usable face; nothing to compare")
    summary = aggregate(results, comparer.formats, float_maps)
    summary["floors"] = {"spearman": args.min_spearman, "top10_iou": args.min_iou}
    summary["failed"] = failed = failures(summary, summary["floors"])
    report = {
        "model": model.source,
        "bundle": str(model.bundle.path),
        "summary": summary,
        "results": results,
        "skipped": skipped,
    }
    write_json(args.out, "report.json", report)
    md = report_markdown(summary, results, model.title("float vs quantized explanations"))
    (args.out / "report.md").write_text(md)
    print(md.split("\n\nFaithfulness")[0])
    print(f"report: {args.out / 'report.md'}")
    for line in failed:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if failed else 0


def _default_quantized(model: ExplainModel) -> list[str]:
    if model.bundle is None:
        return []
    return [f for f in QUANTIZED_DEFAULT if f in model.bundle.formats]


def _units(fn: FeatureFn, a: FaceCrop, b: FaceCrop) -> np.ndarray:
    e = fn(np.stack([a.pixels, b.pixels]))
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _print_anonymize(result: dict) -> None:
    print(f"{result['people']} people, threshold {result['threshold']:.3f}")
    print(
        f"{'model':<14}{'mask':<11}{'cosine':>8}{'drop':>8}{'rank-1':>8}{'named':>8}{'detected':>10}"
    )
    for label, per_mask in result["models"].items():
        for mask, r in per_mask.items():
            print(
                f"{label:<14}{mask:<11}{r['similarity_mean']:>8.3f}{r['similarity_drop_mean']:>8.3f}"
                f"{r['rank1_rate']:>8.0%}{r['named_rate']:>8.0%}{r['detected_rate']:>10.0%}"
            )


def _finish(args: argparse.Namespace, name: str, data: dict) -> int:
    print(write_json(args.out, name, data))
    return 0


# --- argument parsing ------------------------------------------------------------------


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (one of)")
    g.add_argument("--bundle", type=Path, help="a model bundle folder (uses its model_float.keras)")
    g.add_argument("--model", help="vgg16 (full VGG16 with its ImageNet top) or a .keras file")
    g.add_argument(
        "--weights", help="VGG16 weights: imagenet (default), none (seeded, untrained) or a file"
    )
    g.add_argument("--input-spec", type=Path, help="input_spec.json for --model X.keras")
    g.add_argument("--seed", type=int, default=0, help="seed for untrained weights and noise")
    p.add_argument("--out", type=Path, default=Path("explain-out"), help="output folder")
    p.add_argument("--threads", type=int, default=2, help="runtime threads for edge artifacts")


def _image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="photos, or folders searched recursively")
    p.add_argument("--limit", type=int, help="use only the first N images")
    p.add_argument("--no-detect", action="store_true", help="the whole photo (the notebook's mode)")
    p.add_argument("--detector", type=Path, help="a YuNet .onnx file")
    p.add_argument("--gallery", type=Path, help="an edge gallery, for --target person:NAME")
    p.add_argument(
        "--target",
        help="self (default for embeddings), person:NAME (with --gallery), a reference "
        "photo, or for classifiers top1 (default) or class:N",
    )


def _occlusion_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patch", type=int, default=25, help="patch side in pixels (25)")
    p.add_argument("--stride", type=int, default=14, help="patch stride in pixels (14)")
    p.add_argument("--fill", type=float, default=128.0, help="grey level of the patch (128)")
    p.add_argument("--batch-size", type=int, default=32)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explain", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    formats = ("keras", *RUNTIME_FORMATS)

    p = sub.add_parser("gradcam", help="Grad-CAM at one or more layers")
    _model_args(p), _image_args(p)
    p.add_argument("--layers", nargs="+", help="layers (default: the model's Grad-CAM layers)")
    p.set_defaults(func=cmd_gradcam)

    p = sub.add_parser("occlusion", help="occlusion sensitivity through any artifact")
    _model_args(p), _image_args(p), _occlusion_args(p)
    p.add_argument(
        "--format", default="keras", choices=formats, help="which model runs (keras = float)"
    )
    p.set_defaults(func=cmd_occlusion)

    p = sub.add_parser("regions", help="mean heatmap per landmark region")
    _model_args(p), _image_args(p), _occlusion_args(p)
    p.add_argument("--method", choices=("occlusion", "gradcam"), default="occlusion")
    p.add_argument("--format", default="keras", choices=formats)
    p.add_argument("--layers", nargs="+", help="Grad-CAM layer (with --method gradcam)")
    p.set_defaults(func=cmd_regions)

    p = sub.add_parser("filters", help="activation maximisation of a layer's filters")
    _model_args(p)
    p.add_argument("--layers", nargs="+", help="layers (default: three across the depth)")
    p.add_argument("--filters", type=int, default=8, help="the first N filters of each layer")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--step", type=float, default=1.0, help="step size in pixel units")
    p.add_argument("--jitter", type=int, default=0, help="random shift per step, pixels")
    p.add_argument("--blur-every", type=int, default=0, help="blur the pattern every N steps")
    p.set_defaults(func=cmd_filters)

    p = sub.add_parser("anonymize", help="masks vs recognition over many LFW identities")
    _model_args(p)
    p.add_argument("--lfw", required=True, help="LFW images/ folder (one folder per person)")
    p.add_argument("--people", type=int, default=50)
    p.add_argument(
        "--formats",
        nargs="*",
        choices=RUNTIME_FORMATS,
        help="artifacts besides float (default: the INT8 ones)",
    )
    p.add_argument("--threshold", type=float, help="cosine threshold (default: the bundle's)")
    p.add_argument("--no-detect", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--detector", type=Path, help="a YuNet .onnx file")
    p.set_defaults(func=cmd_anonymize)

    p = sub.add_parser("compare", help="float vs quantized occlusion maps (+ float Grad-CAM)")
    _model_args(p), _image_args(p), _occlusion_args(p)
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
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        return args.func(args)
    except FacelensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
