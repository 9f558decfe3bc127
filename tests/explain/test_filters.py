"""Activation maximisation must raise the target filter's activation, for all filters at once."""

import keras
import numpy as np
import pytest

from edge.errors import FacelensError
from explain.filters import maximize_filters, pattern_stats


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
