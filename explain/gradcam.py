"""Grad-CAM (Selvaraju et al. 2017) on a float Keras model, at any layers with spatial maps.

One compiled ``tf.function`` runs one forward and one backward pass of a batch for all
the layers at once (the notebook shows three); it is traced once and reused for every
batch of images of the same size.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from edge.base.errors import FacelensError
from edge.base.numeric import l2_normalize
from edge.model.preprocess import InputSpec
from explain.base import HeatmapMethod
from explain.targets import Target


def spatial_layers(model: keras.Model) -> list[str]:
    """Names of the layers whose output is a (N, h, w, c) map: Grad-CAM's candidates."""
    return [
        layer.name
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) == 4
    ]


def conv_layers(model: keras.Model) -> list[str]:
    """Names of the convolution layers (plain, depthwise, separable), in order."""
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
    return [layer.name for layer in model.layers if isinstance(layer, kinds)]


def check_layer(model: keras.Model, layer: str) -> None:
    """Raise a :class:`FacelensError` naming the valid layers when ``layer`` is not one."""
    valid = spatial_layers(model)
    if layer not in valid:
        raise FacelensError(
            f"layer {layer!r} is not a spatial layer of model {model.name!r}; "
            f"choose one of: {', '.join(valid)}"
        )


class GradCAM(HeatmapMethod):
    """ReLU of the gradient-weighted sum of a layer's feature maps, upsampled to the input.

    ``layers`` is one layer or several; :meth:`explain_layers` gives every layer's maps
    from one pass, :meth:`explain` the last given layer's. Maps are scaled so
    each image's maximum is 1; ``last_scores`` keeps the target scores.
    """

    name = "gradcam"

    def __init__(self, model: keras.Model, layers: str | Sequence[str], spec: InputSpec) -> None:
        self.layers = (layers,) if isinstance(layers, str) else tuple(layers)
        if not self.layers:
            raise FacelensError(f"Grad-CAM needs a layer: one of {spatial_layers(model)}")
        for layer in self.layers:
            check_layer(model, layer)
        self.spec = spec
        maps = [model.get_layer(layer).output for layer in self.layers]
        self._model = keras.Model(model.inputs, [*maps, model.output])
        self.last_scores: np.ndarray | None = None

    @property
    def layer(self) -> str:
        """The layer :meth:`explain` maps: the last one given."""
        return self.layers[-1]

    @tf.function(reduce_retracing=True)
    def _cams(
        self, x: tf.Tensor, weights: tf.Tensor, cosine: bool
    ) -> tuple[list[tf.Tensor], tf.Tensor]:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)  # records the forward pass; only the maps' gradients are taken
            *maps, out = self._model(x, training=False)
            f = tf.reshape(out, (tf.shape(out)[0], -1))
            w = tf.broadcast_to(weights, tf.shape(f))
            if cosine:
                score = tf.reduce_sum(tf.math.l2_normalize(f, 1) * tf.math.l2_normalize(w, 1), 1)
            else:
                score = tf.reduce_sum(f * w, 1)
        cams = []
        for fmap, grads in zip(maps, tape.gradient(score, maps), strict=True):
            alpha = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(alpha * fmap, axis=-1, keepdims=True))
            cam = tf.image.resize(cam, (self.spec.height, self.spec.width), method="bilinear")
            peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
            cams.append(tf.math.divide_no_nan(cam, peak)[..., 0])
        return cams, score

    def explain_layers(self, pixels: np.ndarray, target: Target) -> dict[str, np.ndarray]:
        """(N, H, W, 3) BGR pixels -> {layer: (N, H, W) heatmaps}, all from one pass."""
        x = np.stack([self.spec.normalize(p) for p in pixels])
        weights = np.asarray(target.weights, np.float32)
        cosine = target.kind == "cosine" and not target.self_reference
        if target.self_reference:  # project onto the reference direction (see Target)
            weights = l2_normalize(weights)
        cams, scores = self._cams(tf.constant(x), tf.constant(weights), cosine)
        self.last_scores = scores.numpy()
        return {layer: cam.numpy() for layer, cam in zip(self.layers, cams, strict=True)}

    def explain(self, pixels: np.ndarray, target: Target) -> np.ndarray:
        return self.explain_layers(pixels, target)[self.layer]
