"""Compact embeddings: a PCA fitted on face crops, folded into the model as its last layers.

The notebook's own fix for 25,088-float embeddings ("PCA pour compression"). The
projection is fitted on the float model's L2-normalised features of face crops (what
``edge`` compares), then appended to the graph as ``UnitNormalization -> Dense(dim) ->
UnitNormalization``, so every exported artifact, INT8 TFLite and ONNX included,
outputs the compact unit embedding itself and ``edge`` needs nothing new.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from convert._quiet import progress_stream
from convert.calibration_set import collect_faces, require_images
from convert.fidelity import keras_features
from convert.models import Backbone, ModelError
from edge.base.numeric import l2_normalize
from edge.faces.detect import create_detector
from edge.model.manifest import FaceSetInfo, ProjectionInfo

FACES_PER_STEP = 64  # crops held at once while fitting (a VGG16 crop is 600 KB)
WHITEN_FLOOR = 1e-3  # whitening divides by sqrt(variance + floor x mean variance kept)


@dataclass(frozen=True)
class Projection:
    """``y = (x / |x| - mean) @ components.T * scale``: PCA, whitened when asked."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (dim, D), orthonormal rows, largest variance first
    scale: np.ndarray  # (dim,): 1, or 1 / standard deviation when whitened
    variance_kept: float  # fraction of the fitting faces' total variance
    whiten: bool

    @property
    def dim(self) -> int:
        return len(self.components)

    def apply(self, features: np.ndarray) -> np.ndarray:
        """(N, D) raw features -> (N, dim) unit embeddings, as the folded graph computes."""
        y = (l2_normalize(features) - self.mean) @ self.components.T * self.scale
        return l2_normalize(y)


def fit_pca(features: np.ndarray, dim: int, whiten: bool = False) -> Projection:
    """Fit a ``dim``-component PCA on (N, D) raw features (L2-normalised first)."""
    n, full = features.shape
    if not 0 < dim < full:
        raise ModelError(f"--embedding-dim {dim} must be between 1 and {full - 1} (the model's)")
    if n <= dim:
        raise ModelError(
            f"--embedding-dim {dim} needs more than {dim} faces to fit on, got {n}: raise "
            "--projection-count or point --projection-faces at more photos"
        )
    x = l2_normalize(features).astype(np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    variance = s**2 / (n - 1)
    kept = variance[:dim]
    scale = 1 / np.sqrt(kept + WHITEN_FLOOR * kept.mean()) if whiten else np.ones(dim)
    return Projection(
        mean=mean.astype(np.float32),
        components=vt[:dim].astype(np.float32),
        scale=scale.astype(np.float32),
        variance_kept=float(kept.sum() / variance.sum()),
        whiten=whiten,
    )


def fold(backbone: Backbone, projection: Projection) -> Backbone:
    """The backbone with the projection as its last layers (the embedding is then ``dim``-d)."""
    x = keras.layers.UnitNormalization(name="projection_input_l2")(backbone.model.output)
    dense = keras.layers.Dense(projection.dim, name="projection_pca")
    y = dense(x)
    kernel = projection.components.T * projection.scale  # (D, dim)
    dense.set_weights([kernel, -projection.mean @ kernel])
    y = keras.layers.UnitNormalization(name="projection_l2")(y)
    model = keras.Model(backbone.model.input, y, name=backbone.model.name)
    return Backbone(model=model, input_spec=backbone.input_spec, source=backbone.source)


def face_features(
    backbone: Backbone,
    folder: Path | str,
    count: int,
    exclude: Collection[Path] = (),
    seed: int = 0,
    detector: Path | str | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, FaceSetInfo]:
    """The float model's features of up to ``count`` faces under ``folder``, and their source.

    Photos in ``exclude`` (the held-out faces the threshold and fidelity are measured
    on) are skipped; faces are cut as ``edge`` cuts them, ``FACES_PER_STEP`` at a time.
    """
    root = Path(folder)
    skip = {p.resolve() for p in exclude}
    files = [p for p in require_images(root) if p.resolve() not in skip]
    random.Random(seed).shuffle(files)
    spec = backbone.input_spec
    found = None if spec.crop.kind == "whole_image" else create_detector(detector)
    features, skipped, start, got = [], Counter(), 0, 0
    bar = tqdm(
        total=count,
        desc="projection faces",
        unit="face",
        disable=None if progress else True,
        file=progress_stream(),
        leave=False,
    )
    with bar:
        while got < count and start < len(files):
            step = min(FACES_PER_STEP, count - got)
            faces, used = collect_faces(files[start:], root, spec, step, found, "", False)
            start += used
            skipped += faces.skipped
            if len(faces):
                features.append(keras_features(backbone.model, faces.batch))
                got += len(faces)
                bar.update(len(faces))
    source = FaceSetInfo(
        source=str(root),
        count=got,
        skipped=dict(skipped),
        detector=found.name if found is not None else "none (whole image)",
        shuffle_seed=seed,
    )
    if not features:
        raise ModelError(f"no usable face under {root} to fit the projection on")
    return np.concatenate(features), source


def project(
    backbone: Backbone,
    dim: int,
    folder: Path | str,
    *,
    whiten: bool = False,
    count: int = 2000,
    exclude: Collection[Path] = (),
    seed: int = 0,
    detector: Path | str | None = None,
    progress: bool = True,
) -> tuple[Backbone, ProjectionInfo]:
    """Fit a ``dim``-d PCA on faces under ``folder`` and fold it in; returns the manifest record."""
    features, fitted_on = face_features(backbone, folder, count, exclude, seed, detector, progress)
    projection = fit_pca(features, dim, whiten)
    info = ProjectionInfo(
        kind="pca-whitened" if whiten else "pca",
        from_dim=backbone.dim,
        dim=dim,
        variance_kept=round(projection.variance_kept, 4),
        fitted_on=fitted_on,
        excluded=len(set(exclude)),
        layers=("projection_input_l2", "projection_pca", "projection_l2"),
    )
    return fold(backbone, projection), info
