"""The float Keras model an explanation runs on: a bundle's ``model_float.keras``, or VGG16.

VGG16 comes from ``convert``'s builder (with its ImageNet top, for class Grad-CAM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from convert.models import load_backbone
from edge.base.errors import BundleError
from edge.model.bundle import Bundle
from edge.model.manifest import Source
from edge.model.preprocess import InputSpec
from explain.base import Features

# The notebook's Grad-CAM layers for VGG16.
VGG16_LAYERS = ("block3_conv3", "block4_conv3", "block5_conv3")


@dataclass
class ExplainModel:
    """A float Keras model, how its input is prepared, and where its weights came from."""

    model: keras.Model
    spec: InputSpec
    source: Source | None  # the manifest's record of the weights (None: not known)
    name: str
    classifier: bool = False  # outputs ImageNet class probabilities
    bundle: Bundle | None = None
    _forward: Any = field(default=None, repr=False)

    @property
    def untrained(self) -> bool:
        return self.source is not None and self.source.untrained

    @property
    def backbone(self) -> str | None:
        """``vgg16``, or what the manifest calls a user's model (None: not known)."""
        return self.source.backbone if self.source else None

    @property
    def gradcam_layers(self) -> tuple[str, ...]:
        """The default layers: the notebook's three for VGG16, else the bundle's own."""
        if self.backbone == "vgg16":
            return VGG16_LAYERS
        layer = self.source.gradcam_layer if self.source else None
        return (layer,) if layer else ()

    def source_record(self) -> dict[str, Any]:
        """The source as the manifest writes it, for the JSON files beside the figures."""
        return self.source.to_dict() if self.source else {}

    def title(self, text: str) -> str:
        """A figure title that says which model, and loudly when its weights are untrained."""
        suffix = " — untrained weights" if self.untrained else ""
        return f"{text} ({self.name}{suffix})"

    def features(self, batch_size: int = 16) -> Features:
        """Feature function: BGR pixels at the model's size -> (N, D) float outputs."""
        if self._forward is None:
            self._forward = tf.function(
                lambda x: self.model(x, training=False), reduce_retracing=True
            )

        def run(x: np.ndarray) -> np.ndarray:
            return np.asarray(self._forward(tf.constant(x))).reshape(len(x), -1)

        return Features(run, self.spec, batch_size)


def from_bundle(path: Path | str | Bundle) -> ExplainModel:
    """The bundle's float Keras model (``model_float.keras``); BundleError when it has none."""
    bundle = path if isinstance(path, Bundle) else Bundle.load(path)
    if "keras" not in bundle.formats:
        raise BundleError(
            f"bundle {bundle.path} has no float Keras model (model_float.keras), which "
            "explanations need: rebuild it with `python -m convert --formats keras ...`"
        )
    file = bundle.artifact_path("keras")
    try:
        model = keras.saving.load_model(file, compile=False)
    except Exception as exc:  # a corrupt file fails in many ways
        raise BundleError(f"cannot load {file} ({type(exc).__name__}: {exc})") from exc
    return ExplainModel(
        model, bundle.input_spec, bundle.manifest.source, bundle.name, bundle=bundle
    )


def vgg16_classifier(weights: str = "none", seed: int = 0) -> ExplainModel:
    """The full VGG16 with its ImageNet top (``weights``: imagenet, none or a file)."""
    backbone = load_backbone("vgg16", weights=weights, include_top=True, seed=seed)
    source = Source.from_dict(backbone.source)
    return ExplainModel(backbone.model, backbone.input_spec, source, "VGG16", True)


def load_keras_model(path: Path | str, input_spec: Path | str | None) -> ExplainModel:
    """A user's ``.keras`` embedding model with its ``input_spec.json``."""
    backbone = load_backbone(path, input_spec=input_spec)
    source = Source.from_dict(backbone.source)
    return ExplainModel(backbone.model, backbone.input_spec, source, Path(path).stem)
