"""Toy Keras models whose right answers are known by construction (the ``toys`` fixture)."""

from __future__ import annotations

import sys

import keras
import numpy as np
import pytest

from edge.model.preprocess import CropRule, InputSpec

SIZE = 48
# Pixels in, pixels out: mean 0, scale 1/255, so the models see 0..1.
SPEC = InputSpec(
    height=SIZE,
    width=SIZE,
    mean=(0.0, 0.0, 0.0),
    scale=(1 / 255, 1 / 255, 1 / 255),
    crop=CropRule(kind="whole_image"),
)


def colour_detector() -> keras.Model:
    """Two outputs: the mean 'redness' and 'blueness' of the image.

    A 1x1 conv (``detect``) turns BGR into a red map and a blue map; global pooling
    averages them. Grad-CAM of output 0 must light up red things, of output 1 blue ones.
    """
    x = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(2, 1, activation="relu", name="detect")
    y = keras.layers.GlobalAveragePooling2D(name="pool")(conv(x))
    model = keras.Model(x, y, name="colour_detector")
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, :, 0] = [-1, -1, 2]  # red minus the others (BGR order)
    kernel[0, 0, :, 1] = [2, -1, -1]  # blue minus the others
    conv.set_weights([kernel, np.zeros(2, np.float32)])
    return model


def window_model(y0: int, y1: int, x0: int, x1: int) -> keras.Model:
    """Outputs (N, 3): the mean colour inside one window; the rest of the image is ignored."""
    x = keras.Input((SIZE, SIZE, 3))
    crop = keras.layers.Cropping2D(((y0, SIZE - y1), (x0, SIZE - x1)), name="window")(x)
    y = keras.layers.GlobalAveragePooling2D(name="pool")(crop)
    return keras.Model(x, keras.layers.Dense(3, name="mix")(y), name="window_model")


def blobs(red_at: tuple[int, int], blue_at: tuple[int, int], radius: int = 6) -> np.ndarray:
    """A grey image with one red and one blue disc, as BGR pixels (H, W, 3) float32."""
    image = np.full((SIZE, SIZE, 3), 100.0, np.float32)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    for (cy, cx), colour in ((red_at, (0, 0, 255)), (blue_at, (255, 0, 0))):
        image[(ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2] = colour
    return image


@pytest.fixture(scope="session")
def toys():
    """This module: the toy models, images and input spec, for tests to call."""
    return sys.modules[__name__]
