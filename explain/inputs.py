"""From command-line arguments to what the methods need: a model, face crops, a target.

Shared by every ``python -m explain`` command (see :mod:`explain.commands`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.detect import create_detector
from edge.embedder import Embedder
from edge.errors import FacelensError, ImageError
from edge.images import list_images
from explain.base import FeatureFn, embedder_features
from explain.faces import FaceCrop, FaceLoader
from explain.models import ExplainModel, from_bundle, load_keras_model, vgg16_classifier
from explain.regions import region_masks, region_scores
from explain.targets import (
    Target,
    class_target,
    person_target,
    self_target,
    similarity_target,
    top1_target,
)


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
            paths += list_images(p)
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
