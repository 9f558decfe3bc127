"""Filter visualisation by activation maximisation, many filters of one layer in one batch.

Gradient ascent in the model's (normalised) input space from faint noise, with the
gradient divided by its root-mean-square (Chollet's L2 normalisation, as in the
notebook) so every step moves pixels by about ``step``. Optional jitter (a random
roll each step) and Gaussian blur (every few steps) regularise the patterns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from edge.errors import FacelensError
from edge.preprocess import InputSpec
from explain.gradcam import check_layer, conv_layers, spatial_layers

# The notebook's layers: early, middle and late in VGG16.
VGG16_FILTER_LAYERS = ("block1_conv2", "block3_conv3", "block5_conv3")


def default_filter_layers(model: keras.Model, backbone: str | None = None) -> list[str]:
    """The notebook's three VGG16 layers, else three convolutions spread over the depth."""
    if backbone == "vgg16":
        return list(VGG16_FILTER_LAYERS)
    convs = conv_layers(model) or spatial_layers(model)
    return list(dict.fromkeys(convs[round(k * (len(convs) - 1) / 2)] for k in range(3)))


@dataclass
class FilterPatterns:
    """What :func:`maximize_filters` found: one pattern per filter, and proof it worked."""

    layer: str
    filters: list[int]
    inputs: np.ndarray  # (F, H, W, 3) float32: the optimised inputs, in pixel units
    start_activation: np.ndarray  # (F,) mean activation of each filter on its start image
    final_activation: np.ndarray  # (F,) ... on its optimised pattern

    @property
    def patterns(self) -> np.ndarray:
        """(F, H, W, 3) uint8 BGR, contrast-stretched for display."""
        return to_display(self.inputs)


def _blur(x: tf.Tensor, sigma: float) -> tf.Tensor:
    radius = max(1, round(2 * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    channels = int(x.shape[-1])
    kx = np.tile(k[None, :, None, None], (1, 1, channels, 1))
    ky = np.tile(k[:, None, None, None], (1, 1, channels, 1))
    x = tf.nn.depthwise_conv2d(x, kx, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(x, ky, [1, 1, 1, 1], "SAME")


def to_display(x: np.ndarray) -> np.ndarray:
    """Chollet's deprocessing: per image, centre, scale to std 0.1, shift to 0.5, 0..255."""
    x = x - x.mean(axis=(1, 2, 3), keepdims=True)
    x = x / (x.std(axis=(1, 2, 3), keepdims=True) + 1e-5) * 0.1 + 0.5
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def maximize_filters(
    model: keras.Model,
    spec: InputSpec,
    layer: str,
    filters: Sequence[int],
    steps: int = 30,
    step: float = 1.0,
    jitter: int = 0,
    blur_every: int = 0,
    blur_sigma: float = 1.0,
    seed: int = 0,
    progress: str | None = None,
) -> FilterPatterns:
    """Optimise one input per filter so that filter's mean activation grows.

    ``step`` and the start noise (std 2) are in pixel units, converted with ``spec.scale``;
    faint noise leaves what the optimisation drew, not the start, on the pattern.
    """
    check_layer(model, layer)
    out = model.get_layer(layer).output
    n_filters = int(out.shape[-1])
    bad = [f for f in filters if not 0 <= f < n_filters]
    if bad:
        raise FacelensError(
            f"layer {layer} has filters 0..{n_filters - 1}; got {bad}: pick from those"
        )
    sub = keras.Model(model.inputs, out)
    onehot = tf.constant(np.eye(n_filters, dtype=np.float32)[list(filters)][:, None, None, :])

    @tf.function
    def activation_and_grad(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            act = tf.reduce_mean(tf.reduce_sum(sub(x, training=False) * onehot, -1), (1, 2))
        grad = tape.gradient(act, x)
        rms = tf.sqrt(tf.reduce_mean(tf.square(grad), axis=(1, 2, 3), keepdims=True))
        return act, grad / (rms + 1e-5)

    rng = np.random.default_rng(seed)
    shape = (len(filters), *model.input.shape[1:])
    pixel = float(np.mean(spec.scale))  # one pixel unit in the model's input space
    x = tf.Variable(rng.normal(0.0, 2.0 * pixel, shape).astype(np.float32))
    start, _ = activation_and_grad(x)
    bar = tqdm(range(steps), desc=progress, leave=False, disable=True if progress is None else None)
    for i in bar:
        if jitter:
            dy, dx = rng.integers(-jitter, jitter + 1, 2)
            x.assign(tf.roll(x, (int(dy), int(dx)), axis=(1, 2)))
        _, grad = activation_and_grad(x)
        x.assign_add(step * pixel * grad)
        if blur_every and (i + 1) % blur_every == 0 and i + 1 < steps:
            x.assign(_blur(x, blur_sigma))
    final, _ = activation_and_grad(x)
    return FilterPatterns(
        layer,
        [int(f) for f in filters],
        x.numpy() / np.asarray(spec.scale, np.float32),
        start.numpy(),
        final.numpy(),
    )


def pattern_stats(inputs: np.ndarray) -> dict[str, float]:
    """The notebook's per-layer statistics over a layer's optimised inputs (F, H, W, 3).

    ``entropy``: mean Shannon entropy (bits, 64 bins over each pattern's own range) of
    the grey levels: how rich the texture is. ``mean_abs_correlation``: mean |Pearson
    r| between different filters' patterns: how redundant the filters are.
    ``spatial_variance``: mean variance of each pattern's grey level over positions,
    in pixel units squared: how strongly the filter wants the image to vary.
    """
    grey = np.asarray(inputs, np.float64).mean(axis=-1).reshape(len(inputs), -1)
    entropies = []
    for g in grey:
        if np.ptp(g) == 0:
            entropies.append(0.0)
            continue
        counts, _ = np.histogram(g, bins=64)
        p = counts[counts > 0] / counts.sum()
        entropies.append(float(-np.sum(p * np.log2(p))))
    with np.errstate(invalid="ignore", divide="ignore"):  # a flat pattern has no r
        corr = np.corrcoef(grey) if len(grey) > 1 else np.ones((1, 1))
    off = corr[~np.eye(len(grey), dtype=bool)]
    return {
        "entropy": float(np.mean(entropies)),
        "mean_abs_correlation": float(np.mean(np.abs(np.nan_to_num(off)))) if off.size else 0.0,
        "spatial_variance": float(np.mean(np.var(grey, axis=1))),
    }
