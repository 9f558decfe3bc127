"""Filter visualisation by activation maximisation, all filters of a layer in one batch.

Gradient ascent in the model's (normalised) input space from faint noise, with the
gradient divided by its root-mean-square (Chollet's L2 normalisation, as in the
notebook) so every step moves pixels by about ``step``. Optional jitter (a random
roll each step) and Gaussian blur (every few steps) regularise the patterns.

Only the work the figure needs is done: the network is cut at the visualised layer,
that layer computes just the visualised filters (when it is a plain convolution), one
compiled step ascends every filter of the batch at once, and where the CPU computes
bfloat16 natively the ascent runs in it (``precision="auto"``). Reported activations
are always measured in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from edge.base.errors import FacelensError
from edge.model.preprocess import InputSpec
from explain.gradcam import check_layer, conv_layers, spatial_layers
from explain.metrics import spearman, ssim
from explain.precision import fastest_safe_precision, resolve_precision

# The notebook's layers: early, middle and late in VGG16.
VGG16_FILTER_LAYERS = ("block1_conv2", "block3_conv3", "block5_conv3")
# Layers under which bfloat16 changed the figure visibly: on faceres (a MobileNet with
# BatchNorm and depthwise convolutions) the deepest patterns fell to SSIM 0.21 against
# float32, and ran slower; plain convolution stacks (VGG16) kept their figure.
_NOT_IN_BFLOAT16 = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
)


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
    start_activation: np.ndarray  # (F,) float32 mean activation of each filter on its start
    final_activation: np.ndarray  # (F,) ... on its optimised pattern
    precision: str = "float32"  # the arithmetic the ascent ran in

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


def _in_precision(model: keras.Model, precision: str) -> keras.Model:
    """``model`` itself for float32; for bfloat16 a clone computing in it (float32 weights)."""
    if precision == "float32":
        return model

    def relayer(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        # functional ops in the graph (dlib's channel pad is keras.ops.pad) take no dtype
        if isinstance(layer, keras.layers.Layer) and not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=relayer)
    clone.set_weights(model.get_weights())
    return clone


def ascent_precision(network: keras.Model, precision: str = "auto") -> str:
    """The precision to ascend ``network`` (cut at the visualised layer) in.

    ``auto``: bfloat16 where the CPU has it natively and the network holds no layer that
    bfloat16 was measured to change the figure under (normalisation, depthwise
    convolutions), else float32. ``float32`` / ``bfloat16``: as asked.
    """
    if precision != "auto":
        return resolve_precision(precision)
    if any(isinstance(layer, _NOT_IN_BFLOAT16) for layer in network.layers):
        return "float32"
    return fastest_safe_precision()


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of ``model``, those of nested models in their place."""
    return [
        leaf
        for layer in model.layers
        for leaf in (_leaf_layers(layer) if isinstance(layer, keras.Model) else [layer])
    ]


def _kernel_flops(layer: keras.layers.Layer) -> int:
    """2 x the multiply-adds of ``layer``'s kernels at each output position (0: no kernel)."""
    kernels = [w for w in layer.weights if w.name.endswith("kernel")]
    if not kernels:
        return 0
    positions = int(np.prod(layer.output.shape[1:-1]))
    return 2 * positions * sum(int(np.prod(k.shape)) for k in kernels)


class LayerActivation:
    """Mean activation of filter ``filters[i]`` of ``layer`` on image ``i``, for a batch.

    The network is cut at the layer. When the layer is a plain convolution, only the
    chosen filters of it are computed (the rest of its output is never looked at),
    from the cut network's output at the layer's input.
    """

    def __init__(
        self, model: keras.Model, layer: str, filters: Sequence[int], precision: str
    ) -> None:
        check_layer(model, layer)
        self.layer = model.get_layer(layer)
        n_filters = int(self.layer.output.shape[-1])
        bad = [f for f in filters if not 0 <= f < n_filters]
        if bad:
            raise FacelensError(
                f"layer {layer} has filters 0..{n_filters - 1}; got {bad}: pick from those"
            )
        self.filters = tf.constant(list(filters), tf.int32)
        conv = type(self.layer) is keras.layers.Conv2D and self.layer.groups == 1
        self._selective = conv
        cut = keras.Model(model.inputs, self.layer.input if conv else self.layer.output)
        self.network = _in_precision(cut, precision)

    @property
    def flops(self) -> int:
        """FLOPs (two per multiply-add) of :meth:`matrix` on one image, about.

        Counts the layers with kernels (convolutions, dense): the cut network in full and,
        of a plain convolution at the cut, only the chosen filters. A gradient's backward
        pass to the input costs as many again.
        """
        total = sum(_kernel_flops(layer) for layer in _leaf_layers(self.network))
        if self._selective:
            n_filters = int(self.layer.output.shape[-1])
            total += _kernel_flops(self.layer) * len(self.filters) // n_filters
        return total

    def matrix(self, x: tf.Tensor) -> tf.Tensor:
        """(N, H, W, C) model inputs -> (N, F) float32 mean activation of every chosen filter."""
        y = self.network(x, training=False)
        if self._selective:
            conv = self.layer
            kernel = tf.cast(tf.gather(conv.kernel, self.filters, axis=-1), y.dtype)
            y = conv.convolution_op(y, kernel)
            if conv.use_bias:
                y = y + tf.cast(tf.gather(conv.bias, self.filters), y.dtype)
            y = conv.activation(y)
        else:
            y = tf.gather(y, self.filters, axis=-1)
        return tf.reduce_mean(tf.cast(y, tf.float32), axis=(1, 2))

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """(F, H, W, C) model inputs -> (F,): image i's activation of filter i."""
        return tf.linalg.diag_part(self.matrix(x))


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
    precision: str = "auto",
) -> FilterPatterns:
    """Optimise one input per filter so that filter's mean activation grows.

    ``step`` and the start noise (std 2) are in pixel units, converted with ``spec.scale``;
    faint noise leaves what the optimisation drew, not the start, on the pattern.
    ``precision``: ``auto`` (see :func:`ascent_precision`), ``float32`` or ``bfloat16``;
    the activations reported are float32 either way.
    """
    filters = [int(f) for f in filters]
    measure = LayerActivation(model, layer, filters, "float32")
    precision = ascent_precision(measure.network, precision)
    ascend_on = (
        measure if precision == "float32" else LayerActivation(model, layer, filters, precision)
    )
    pixel = float(np.mean(spec.scale))  # one pixel unit in the model's input space
    no_shift = tf.zeros(2, tf.int32)
    ascend = _ascent_step(ascend_on, step * pixel, blur_sigma)
    activation = tf.function(measure.__call__, reduce_retracing=True)
    rng = np.random.default_rng(seed)
    shape = (len(filters), *model.input.shape[1:])
    x = tf.constant(rng.normal(0.0, 2.0 * pixel, shape).astype(np.float32))
    start = activation(x)
    bar = tqdm(range(steps), desc=progress, leave=False, disable=True if progress is None else None)
    for i in bar:
        shift = tf.constant(rng.integers(-jitter, jitter + 1, 2), tf.int32) if jitter else no_shift
        blur = bool(blur_every and (i + 1) % blur_every == 0 and i + 1 < steps)
        x = ascend(x, shift, tf.constant(blur))
    final = activation(x)
    return FilterPatterns(
        layer,
        filters,
        x.numpy() / np.asarray(spec.scale, np.float32),
        start.numpy(),
        final.numpy(),
        precision,
    )


def _ascent_step(
    ascend_on: LayerActivation, size: float, blur_sigma: float
) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
    """One gradient-ascent step of ``size`` (input units), after a shift, then maybe a blur."""

    # Measured on VGG16 (AVX-512 BF16 CPU): the step runs at the CPU's peak in oneDNN's
    # convolutions. XLA (jit_compile) took 1.3x the CPU time in float32 and 2.6x in
    # bfloat16; the whole loop in one function, weights kept in bfloat16 or other thread
    # counts changed nothing: there is no per-step overhead left to save.
    @tf.function(reduce_retracing=True)
    def ascend(x: tf.Tensor, shift: tf.Tensor, blur: tf.Tensor) -> tf.Tensor:
        x = tf.roll(x, shift, axis=(1, 2))
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            act = tf.reduce_sum(ascend_on(x))
        grad = tape.gradient(act, x)
        rms = tf.sqrt(tf.reduce_mean(tf.square(grad), axis=(1, 2, 3), keepdims=True))
        x = x + size * grad / (rms + 1e-5)
        return tf.cond(blur, lambda: _blur(x, blur_sigma), lambda: x)

    return ascend


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


def pattern_agreement(
    model: keras.Model, spec: InputSpec, reference: FilterPatterns, other: FilterPatterns
) -> dict[str, float | bool]:
    """How alike two runs over the same filters are (say bfloat16 against float32).

    ``ssim_mean`` / ``ssim_min``: SSIM of the displayed patterns (grey levels).
    ``top3_same``: the same three filters respond most (final activation, float32), and
    ``activation_spearman`` ranks all of them alike.
    ``strongest_filter_agreement``: the fraction of patterns that excite the same shown
    filter most in both runs. ``activation_deviation``: the largest difference of a
    filter's final activation, over the largest activation of ``reference``.
    """
    if (reference.layer, reference.filters) != (other.layer, other.filters):
        raise FacelensError("pattern_agreement compares two runs of the same layer and filters")
    grey = [to_display(p.inputs).mean(axis=-1) for p in (reference, other)]
    scores = [ssim(a, b) for a, b in zip(*grey, strict=True)]
    measure = LayerActivation(model, reference.layer, reference.filters, "float32")
    scale = np.asarray(spec.scale, np.float32)
    strongest = [  # per pattern: which shown filter it excites most, in float32
        np.argmax(measure.matrix(tf.constant(p.inputs * scale)), axis=1) for p in (reference, other)
    ]
    top = min(3, len(reference.filters))
    spread = max(float(np.max(np.abs(reference.final_activation))), 1e-12)
    return {
        "ssim_mean": float(np.mean(scores)),
        "ssim_min": float(np.min(scores)),
        "top3_same": set(np.argsort(-reference.final_activation)[:top])
        == set(np.argsort(-other.final_activation)[:top]),
        "activation_spearman": spearman(reference.final_activation, other.final_activation),
        "strongest_filter_agreement": float(np.mean(strongest[0] == strongest[1])),
        "activation_deviation": float(
            np.max(np.abs(other.final_activation - reference.final_activation)) / spread
        ),
    }
