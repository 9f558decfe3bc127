"""The ``python -m explain`` commands: each writes PNG figures and a JSON file to ``--out``.

Each ``cmd_*`` turns parsed arguments into typed calls of explain's functions; imported
by :func:`explain.cli.main` only once a command runs (it loads TensorFlow).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge.base.errors import FacelensError, ImageError
from edge.base.numeric import l2_normalize
from edge.faces.detect import create_detector
from explain import figures
from explain.anonymize import MASKS, pick_people, prepare_probes, study
from explain.base import FeatureFn, HeatmapMethod
from explain.compare import (
    QUANTIZED_DEFAULT,
    Comparer,
    CompareSettings,
    aggregate,
    failures,
    report_markdown,
)
from explain.crops import FaceCrop, FaceLoader
from explain.filters import default_filter_layers, maximize_filters, pattern_stats
from explain.gradcam import GradCAM, spatial_layers
from explain.inputs import (
    drop_label,
    each_face,
    face_loader,
    feature_fn,
    image_paths,
    load_model,
    make_target,
    regions_of,
    stem,
    write_json,
)
from explain.models import ExplainModel
from explain.occlusion import Occlusion
from explain.regions import region_masks, region_scores


def cmd_gradcam(args: argparse.Namespace) -> int:
    """Grad-CAM at each layer for each face: one figure per photo, gradcam.json."""
    model = _model(args)
    layers = args.layers or list(model.gradcam_layers)
    if not layers:
        raise FacelensError(
            f"no default Grad-CAM layer: pass --layers (one of {spatial_layers(model.model)})"
        )
    cam = GradCAM(model.model, layers, model.spec)  # every layer from one compiled pass
    loader, fn, skipped, results = _loader(model, args), model.features(), [], []
    for i, crop in enumerate(each_face(loader, image_paths(args.images, args.limit), skipped)):
        target = make_target(args.target, model, fn, crop, loader, args.gallery)
        maps, rows = {}, {}
        for layer, heatmaps in cam.explain_layers(crop.pixels[None], target).items():
            maps[f"Grad-CAM {layer}"] = heatmaps[0]
            rows[layer] = {
                "target_score": float(cam.last_scores[0]),
                "regions": regions_of(crop, heatmaps[0]),
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
        args,
        "gradcam.json",
        {"model": model.source_record(), "results": results, "skipped": skipped},
    )


def cmd_contrast(args: argparse.Namespace) -> int:
    """Grad-CAM of several bundles on the same photos, side by side: figures, contrast.json.

    Each model sees the photo cut as its own manifest says and is explained at its own
    last Grad-CAM layer with the same kind of target (similarity, default ``self``).
    """
    detector = None if args.no_detect else create_detector(args.detector)
    explainers = []
    for bundle in args.bundles:
        model = load_model(bundle)
        if not model.gradcam_layers:
            raise FacelensError(f"bundle {bundle} names no Grad-CAM layer in its manifest")
        layer = model.gradcam_layers[-1]
        loader = FaceLoader(model.spec, detect=not args.no_detect, detector=detector)
        explainers.append((model, layer, GradCAM(model.model, layer, model.spec), loader))
    results = []
    for i, path in enumerate(image_paths(args.images, args.limit)):
        panels, rows = [], []
        for model, layer, cam, loader in explainers:
            crop = loader.load(path)
            target = make_target(args.target, model, model.features(), crop, loader)
            heatmap = cam.explain(crop.pixels[None], target)[0]
            name = f"{model.name}: UNTRAINED weights" if model.untrained else model.name
            panels.append((crop, heatmap, f"{name}\n{layer}, {target.label}"))
            rows.append({"model": model.source_record(), "layer": layer, "target": target.label,
                         "regions": regions_of(crop, heatmap)})  # fmt: skip
        png = figures.models_row(
            args.out / f"contrast_{i:03d}_{Path(path).stem}.png",
            panels,
            f"Grad-CAM on the same photo, each model's own crop: {Path(path).name}",
        )
        results.append({"image": str(path), "models": rows, "figure": str(png)})
        print(png)
    return _finish(args, "contrast.json", {"results": results})


def cmd_occlusion(args: argparse.Namespace) -> int:
    """Occlusion map of each face through any format: one figure per photo, occlusion.json."""
    model = _model(args)
    fn = feature_fn(model, args.format, args.threads, args.batch_size, args.incremental)
    occ = Occlusion(
        fn, args.patch, args.stride, args.fill, args.batch_size, "occlusion", args.refine
    )
    loader, skipped, results = _loader(model, args), [], []
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
        {
            "model": model.source_record(),
            "format": args.format,
            "refine": args.refine,
            "results": results,
            "skipped": skipped,
        },
    )


def cmd_regions(args: argparse.Namespace) -> int:
    """Mean occlusion / Grad-CAM value per landmark region: figures, regions.json."""
    if args.no_detect:
        raise FacelensError("regions are placed from detected landmarks: drop --no-detect")
    model = _model(args)
    fn = feature_fn(model, args.format, args.threads, args.batch_size, args.incremental)
    method: HeatmapMethod
    if args.method == "gradcam":
        layers = args.layers or list(model.gradcam_layers)
        if not layers:
            raise FacelensError("no default Grad-CAM layer: pass --layers")
        method = GradCAM(model.model, layers[-1], model.spec)
    else:
        method = Occlusion(fn, args.patch, args.stride, args.fill, args.batch_size)
    loader, skipped, results = _loader(model, args), [], []
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
        args,
        "regions.json",
        {"model": model.source_record(), "results": results, "skipped": skipped},
    )


def cmd_filters(args: argparse.Namespace) -> int:
    """Activation maximisation of the first filters of three layers: filters.png/json."""
    model = _model(args)
    layers = args.layers or default_filter_layers(model.model, model.backbone)
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
            precision=args.precision,
        )
        stats = pattern_stats(result.inputs)
        shown[layer] = (result.patterns, result.filters, stats)
        numbers[layer] = {
            "stats": stats,
            "filters": result.filters,
            "start_activation": result.start_activation.tolist(),
            "final_activation": result.final_activation.tolist(),
            "precision": result.precision,
        }
    precisions = sorted({n["precision"] for n in numbers.values()})
    title = model.title(f"Activation maximisation, {args.steps} steps, {'/'.join(precisions)}")
    png = figures.filters_figure(args.out / "filters.png", shown, title)
    print(png)
    return _finish(
        args,
        "filters.json",
        {"model": model.source_record(), "layers": numbers, "figure": str(png)},
    )


def cmd_anonymize(args: argparse.Namespace) -> int:
    """The anonymisation study over LFW identities: masks.png, anonymize.json, a table."""
    model = _model(args)
    loader = _loader(model, args)
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
    return _finish(
        args, "anonymize.json", {"model": model.source_record(), **result, "figure": str(png)}
    )


def cmd_compare(args: argparse.Namespace) -> int:
    """Float vs quantized maps per face: figures, report.json, report.md; exit 1 below a floor."""
    model = _model(args)
    settings = CompareSettings(
        args.patch,
        args.stride,
        args.fill,
        threads=args.threads,
        batch_size=args.batch_size,
        incremental=args.incremental,
    )
    comparer = Comparer(model, args.formats, settings)
    loader, skipped, results, float_maps = _loader(model, args), [], [], []
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
        "model": model.source_record(),
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


def _model(args: argparse.Namespace) -> ExplainModel:
    return load_model(args.bundle, args.model, args.weights, args.input_spec, args.seed)


def _loader(model: ExplainModel, args: argparse.Namespace) -> FaceLoader:
    return face_loader(model, detect=not args.no_detect, detector=args.detector)


def _default_quantized(model: ExplainModel) -> list[str]:
    if model.bundle is None:
        return []
    return [f for f in QUANTIZED_DEFAULT if f in model.bundle.formats]


def _units(fn: FeatureFn, a: FaceCrop, b: FaceCrop) -> np.ndarray:
    e = fn(np.stack([a.pixels, b.pixels]))
    return l2_normalize(e)


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
