"""Activation maximisation must raise the target filter's activation, for all filters at once."""

import keras
import numpy as np
import pytest

from edge.base.errors import FacelensError
from explain.filters import (
    LayerActivation,
    _in_precision,
    maximize_filters,
    pattern_agreement,
    pattern_stats,
)
from explain.precision import fastest_safe_precision, resolve_precision


@pytest.fixture(scope="module")
def small_cnn(toys):
    keras.utils.set_random_seed(3)
    x = keras.Input((toys.SIZE, toys.SIZE, 3))
    y = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(x)
    y = keras.layers.Conv2D(6, 3, activation="relu", name="conv2")(y)
    return keras.Model(x, keras.layers.GlobalAveragePooling2D()(y))


def test_each_filter_is_driven_up_by_its_own_pattern(small_cnn, toys):
    result = maximize_filters(small_cnn, toys.SPEC, "conv2", [0, 2, 5], steps=20, step=4.0)
    assert result.patterns.shape == (3, toys.SIZE, toys.SIZE, 3)
    assert result.patterns.dtype == np.uint8
    assert np.all(result.final_activation > result.start_activation + 1e-3)
    # The patterns differ: filter 0's pattern is not filter 5's.
    assert np.abs(result.patterns[0].astype(int) - result.patterns[2]).mean() > 1


def test_jitter_and_blur_still_ascend(small_cnn, toys):
    result = maximize_filters(
        small_cnn, toys.SPEC, "conv1", range(4), steps=12, step=4.0, jitter=2, blur_every=4
    )
    assert np.all(result.final_activation > result.start_activation)


def test_bad_filter_index_and_layer_are_refused(small_cnn, toys):
    with pytest.raises(FacelensError, match=r"filters 0\.\.5"):
        maximize_filters(small_cnn, toys.SPEC, "conv2", [6])
    with pytest.raises(FacelensError, match="choose one of: conv1, conv2"):
        maximize_filters(small_cnn, toys.SPEC, "conv9", [0])


def test_pattern_stats_on_known_patterns():
    rng = np.random.default_rng(0)
    flat = np.full((3, 16, 16, 3), 5.0)
    noise = rng.normal(0, 10, (3, 16, 16, 3))
    same = np.repeat(noise[:1], 3, axis=0)
    assert pattern_stats(flat)["entropy"] == 0.0
    assert pattern_stats(flat)["spatial_variance"] == 0.0
    assert pattern_stats(noise)["entropy"] > 4
    # Grey is the mean of 3 channels of std 10: variance 100 / 3.
    assert pattern_stats(noise)["spatial_variance"] == pytest.approx(100 / 3, rel=0.2)
    assert pattern_stats(same)["mean_abs_correlation"] == pytest.approx(1.0)
    assert pattern_stats(noise)["mean_abs_correlation"] < 0.2


def plain_ascent(model, spec, layer, filters, steps, step, seed=0):
    """The figure the old way: the full layer output, one gradient per step, no shortcuts."""
    import tensorflow as tf

    sub = keras.Model(model.inputs, model.get_layer(layer).output)
    pixel = float(np.mean(spec.scale))
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(0, 2 * pixel, (len(filters), *model.input.shape[1:])), tf.float32)
    onehot = np.eye(int(sub.output.shape[-1]), dtype=np.float32)[filters][:, None, None, :]
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x)
            act = tf.reduce_mean(tf.reduce_sum(sub(x) * onehot, -1), (1, 2))
        grad = tape.gradient(act, x)
        x = x + step * pixel * grad / (tf.sqrt(tf.reduce_mean(grad**2, (1, 2, 3), True)) + 1e-5)
    return x.numpy() / np.float32(spec.scale[0]), act.numpy()


@pytest.fixture(scope="module")
def relu_cnn(toys):
    """A model whose visualised layer is not a convolution (the whole-layer path)."""
    keras.utils.set_random_seed(4)
    x = keras.Input((toys.SIZE, toys.SIZE, 3))
    y = keras.layers.Conv2D(6, 3, name="conv")(x)
    y = keras.layers.ReLU(name="relu")(y)
    return keras.Model(x, keras.layers.GlobalAveragePooling2D()(y))


@pytest.mark.parametrize("which", ["conv2", "relu"])
def test_float32_draws_what_the_plain_ascent_draws(small_cnn, relu_cnn, toys, which):
    model, filters = (small_cnn, [0, 2, 5]) if which == "conv2" else (relu_cnn, [1, 3])
    ours = maximize_filters(
        model, toys.SPEC, which, filters, steps=8, step=4.0, precision="float32"
    )
    inputs, _ = plain_ascent(model, toys.SPEC, which, filters, steps=8, step=4.0)
    assert ours.precision == "float32"
    np.testing.assert_allclose(ours.inputs, inputs, atol=1e-2 * np.abs(inputs).max())
    for a, b in zip(ours.inputs, inputs, strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999


def test_flops_count_the_cut_network_and_only_the_chosen_filters(small_cnn, relu_cnn, toys):
    conv1 = 2 * (toys.SIZE - 2) ** 2 * 3 * 3 * 3 * 8  # every filter of the layer before
    conv2_one = 2 * (toys.SIZE - 4) ** 2 * 3 * 3 * 8  # one filter of the visualised layer
    assert LayerActivation(small_cnn, "conv2", [0, 5], "float32").flops == conv1 + 2 * conv2_one
    assert LayerActivation(small_cnn, "conv1", [1], "bfloat16").flops == conv1 // 8
    # a layer that is not a convolution: the whole network up to it, with all filters
    assert LayerActivation(relu_cnn, "relu", [1], "float32").flops == conv1 // 8 * 6


def test_bfloat16_draws_the_same_figure_as_float32(small_cnn, toys):
    filters = list(range(6))
    runs = {
        p: maximize_filters(small_cnn, toys.SPEC, "conv2", filters, steps=15, step=4.0, precision=p)
        for p in ("float32", "bfloat16")
    }
    assert runs["bfloat16"].precision == "bfloat16"
    agree = pattern_agreement(small_cnn, toys.SPEC, runs["float32"], runs["bfloat16"])
    assert agree["top3_same"] and agree["strongest_filter_agreement"] == 1.0
    assert agree["ssim_min"] > 0.8 and agree["activation_deviation"] < 0.1
    # against a different start, the same filters draw other patterns: SSIM is not trivially high
    other = maximize_filters(small_cnn, toys.SPEC, "conv2", filters, 15, 4.0, seed=1)
    assert pattern_agreement(small_cnn, toys.SPEC, runs["float32"], other)["ssim_mean"] < 0.5


def test_bfloat16_clone_keeps_functional_ops_in_the_graph(toys):
    # dlib's rebuilt ResNet pads channels with keras.ops.pad: an op, not a layer, which
    # takes no dtype (the bfloat16 clone once failed on it with a TypeError)
    keras.utils.set_random_seed(4)
    x = keras.Input((toys.SIZE, toys.SIZE, 3))
    y = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(x)
    y = keras.ops.pad(y, [[0, 0], [0, 0], [0, 0], [0, 2]])
    model = keras.Model(x, keras.layers.Conv2D(5, 3, name="conv2")(y))
    clone = _in_precision(model, "bfloat16")
    assert clone.get_layer("conv2").dtype_policy.compute_dtype == "bfloat16"
    image = np.random.default_rng(0).normal(size=(1, toys.SIZE, toys.SIZE, 3)).astype("float32")
    want, got = np.asarray(model(image)), np.asarray(clone(image), np.float32)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_auto_keeps_float32_under_layers_bfloat16_changes(small_cnn, toys):
    x = keras.Input((toys.SIZE, toys.SIZE, 3))
    y = keras.layers.BatchNormalization(name="bn")(keras.layers.Conv2D(4, 3, name="c")(x))
    normalised = keras.Model(x, keras.layers.Conv2D(4, 3, name="after")(y))
    assert maximize_filters(normalised, toys.SPEC, "after", [0], 1).precision == "float32"
    plain = maximize_filters(small_cnn, toys.SPEC, "conv2", [0], 1)
    assert plain.precision == fastest_safe_precision()
    assert (
        maximize_filters(normalised, toys.SPEC, "after", [0], 1, precision="bfloat16").precision
        == "bfloat16"
    )


def test_auto_precision_is_bfloat16_only_where_the_cpu_has_it(tmp_path):
    with_bf16, without = tmp_path / "a", tmp_path / "b"
    with_bf16.write_text("flags\t: fpu avx512f avx512_bf16 avx512_vnni\n")
    without.write_text("flags\t: fpu avx2 fma\n")
    assert fastest_safe_precision(with_bf16) == "bfloat16"
    assert fastest_safe_precision(without) == "float32"
    assert fastest_safe_precision(tmp_path / "missing") == "float32"
    assert resolve_precision("float32") == "float32"
    assert resolve_precision("auto") in ("float32", "bfloat16")
    with pytest.raises(FacelensError, match="use one of auto, float32, bfloat16"):
        resolve_precision("fp8")
