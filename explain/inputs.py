"""What the methods need, from plain values: a model, face crops, a target.

Shared by every ``python -m explain`` command (see :mod:`explain.commands`) and usable
from Python: every function takes typed values, never parsed command-line arguments.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.base.errors import FacelensError, ImageError
from edge.faces.detect import create_detector
from edge.media.images import list_images
from edge.model.embedder import Embedder
from explain.base import FeatureFn, Features, embedder_features
from explain.crops import FaceCrop, FaceLoader
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


def load_model(
    bundle: Path | str | None = None,
    model: str | None = None,
    weights: str | None = None,
    input_spec: Path | str | None = None,
    seed: int = 0,
) -> ExplainModel:
    """A bundle's float model, or ``model="vgg16"`` (``weights``: imagenet, none or a
    file; ``seed`` for untrained ones), or a ``.keras`` file with its ``input_spec``."""
    if bundle:
        loaded = from_bundle(bundle)
    elif model == "vgg16":
        loaded = vgg16_classifier(weights or "imagenet", seed)
    elif model:
        loaded = load_keras_model(model, input_spec)
    else:
        raise FacelensError("say which model to explain: --bundle DIR, or --model vgg16 / X.keras")
    if loaded.untrained:
        print(
            f"warning: {loaded.name} has UNTRAINED (seeded random) weights: its explanations "
            "show the architecture, not anything learned",
            file=sys.stderr,
        )
    return loaded


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


def face_loader(
    model: ExplainModel, detect: bool = True, detector: Path | str | None = None
) -> FaceLoader:
    """Cuts faces as ``model`` expects; ``detect=False`` takes whole photos (the notebook)."""
    found = create_detector(detector) if detect else None
    return FaceLoader(model.spec, detect=detect, detector=found)


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


def feature_fn(
    model: ExplainModel,
    fmt: str,
    threads: int | None,
    batch_size: int | None = None,
    incremental: bool = True,
) -> Features:
    """The float Keras model (``keras``) or an edge artifact of the bundle.

    ``batch_size``: images per model call (default: the model's or runtime's own).
    ``incremental``: INT8 TFLite runs occluded copies only where the patch reaches.
    """
    if fmt == "keras":
        return model.features(batch_size or 16)
    if model.bundle is None:
        raise FacelensError(f"--format {fmt} needs --bundle DIR (it runs the bundle's artifact)")
    return embedder_features(Embedder(model.bundle, fmt, threads=threads), batch_size, incremental)
