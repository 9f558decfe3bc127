"""INT8 ranges narrowed to a percentile: one outlier no longer sets everyone's INT8 step."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="convert needs TensorFlow")

from convert.ranges import clip_calibrated_ranges  # noqa: E402


def _ranges(model: bytes) -> dict[str, tuple[float, float]]:
    from tensorflow.lite.python import schema_py_generated as schema

    graph = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0)).subgraphs[0]
    return {
        t.name.decode(): (float(t.quantization.min[0]), float(t.quantization.max[0]))
        for t in graph.tensors
        if t.quantization is not None and t.quantization.min is not None
    }


def _int8_error(model: bytes, inputs: np.ndarray, expected: np.ndarray) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    feed, fetch = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    errors = []
    for x, y in zip(inputs, expected, strict=True):
        interpreter.set_tensor(feed["index"], x[None])
        interpreter.invoke()
        errors.append(np.abs(interpreter.get_tensor(fetch["index"])[0] - y).max())
    return float(np.mean(errors))


def test_one_outlier_no_longer_sets_the_range_and_int8_gets_closer_to_float():
    import keras

    rng = np.random.default_rng(0)
    inputs = keras.Input((16,))
    # an identity first layer: the outlier stays one value of its tensor, not sixteen
    hidden = keras.layers.Dense(16, activation="relu", kernel_initializer="identity")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4)(hidden))
    calibration = rng.uniform(0, 1, (100, 16)).astype(np.float32)
    calibration[7, 3] = 1000.0  # one photo far outside the rest: 1 % of the output values
    samples = [calibration[i : i + 1] for i in range(len(calibration))]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x] for x in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    debug = tf.lite.experimental.QuantizationDebugger(converter=converter)
    minmax = debug.calibrated_model
    clipped = clip_calibrated_ranges(minmax, iter(samples), len(samples), 99.0)

    before, after = _ranges(minmax), _ranges(clipped)
    assert before.keys() == after.keys() and before
    for name, (low, high) in after.items():  # a range only narrows
        assert before[name][0] <= low <= high <= before[name][1], name
    input_name = next(n for n in before if before[n][1] >= 999)
    assert after[input_name][1] < 1.0  # the outlier is in the 1 % left out

    quantized = {}
    for name, calibrated in (("minmax", minmax), ("clipped", clipped)):
        debug.calibrated_model = calibrated
        quantized[name] = debug.get_nondebug_quantized_model()
    fresh = rng.uniform(0, 1, (50, 16)).astype(np.float32)
    expected = model.predict(fresh, verbose=0)
    assert _int8_error(quantized["clipped"], fresh, expected) < 0.5 * _int8_error(
        quantized["minmax"], fresh, expected
    )
