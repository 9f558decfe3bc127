"""One exporter per bundle format: float model + INT8 calibration set in, one artifact out.

The SavedModel is the hub: TFLite and ONNX are converted from it, and INT8 ONNX from
the float ONNX, so each is exported once into a scratch folder when a format needs
it even if the user did not ask for it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from tqdm import tqdm

from convert._quiet import native_output_silenced, progress_stream
from convert.models import Backbone
from convert.ranges import clip_calibrated_ranges
from edge.model.bundle import ARTIFACT_FILES

ONNX_OPSET = 17


@dataclass
class QuantCalibration:
    """The INT8 calibration set as the exporters use it: the face crops INT8 ranges are
    measured on, and how the manifest describes them."""

    batch: np.ndarray
    source: str
    progress: bool = True

    def settings(self) -> dict[str, Any]:
        return {"count": len(self.batch), "source": self.source}

    def samples(self, desc: str) -> Iterator[np.ndarray]:
        """One-image batches, with a progress bar (calibration is most of an INT8 export)."""
        bar = tqdm(
            total=len(self.batch),
            desc=desc,
            unit="face",
            leave=False,
            disable=None if self.progress else True,
            file=progress_stream(),
        )
        with bar:
            for i in range(len(self.batch)):
                yield self.batch[i : i + 1]
                bar.update()


class _CalibrationReader(CalibrationDataReader):
    """Feeds the calibration crops to ``onnxruntime.quantization.quantize_static``."""

    def __init__(self, calibration: QuantCalibration, input_name: str) -> None:
        self._samples = calibration.samples("calibrating onnx-int8")
        self._input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._samples, None)
        return None if x is None else {self._input_name: x}


class Exporter:
    """Writes the artifacts of one backbone; shared intermediates live in ``scratch``."""

    def __init__(self, backbone: Backbone, calibration: QuantCalibration, scratch: Path) -> None:
        self.backbone = backbone
        self.calibration = calibration
        self.scratch = scratch
        self._saved_model: Path | None = None
        self._onnx: Path | None = None

    def export(self, fmt: str, dest: Path) -> dict[str, Any] | None:
        """Write ``fmt`` to ``dest``; returns its quantization settings (``None`` if float)."""
        return _EXPORTERS[fmt](self, dest)

    def saved_model(self) -> Path:
        if self._saved_model is None:
            path = self.scratch / ARTIFACT_FILES["savedmodel"]
            with native_output_silenced():
                self.backbone.model.export(str(path), format="tf_saved_model", verbose=False)
            self._saved_model = path
        return self._saved_model

    def onnx(self) -> Path:
        if self._onnx is None:
            path = self.scratch / ARTIFACT_FILES["onnx"]
            _saved_model_to_onnx(self.saved_model(), path)
            self._onnx = path
        return self._onnx

    # --- the formats -------------------------------------------------------------------

    def _savedmodel(self, dest: Path) -> None:
        shutil.copytree(self.saved_model(), dest)

    def _keras(self, dest: Path) -> None:
        with native_output_silenced():
            self.backbone.model.save(dest)

    def _tflite(self, dest: Path, mode: str) -> dict[str, Any]:
        import tensorflow as tf

        if mode == "int8":
            return self._tflite_int8(dest)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(self.saved_model()))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        settings: dict[str, Any] = {"io": "float32"}
        if mode == "fp16":
            converter.target_spec.supported_types = [tf.float16]
            settings |= {"scheme": "float16 weights", "weights": "float16"}
        else:
            settings |= {
                "scheme": "dynamic-range (int8 weights, float activations)",
                "weights": "int8",
                "activations": "float32",
                "per_channel": True,
            }
        with native_output_silenced():
            dest.write_bytes(converter.convert())
        return settings

    def _tflite_int8(self, dest: Path) -> dict[str, Any]:
        layers, ops = self.backbone.float_layers(), self._tflite_float_ops()
        percentile = self.backbone.range_percentile
        settings: dict[str, Any] = {
            "io": "float32",
            "scheme": "full-integer int8 (TFLITE_BUILTINS_INT8)",
            "weights": "int8",
            "activations": "int8",
            "per_channel": True,  # TFLite's default for convolution weights
            "calibration": self.calibration.settings(),
        }
        if layers or ops:
            settings |= {"float_layers": layers, "float_ops": ops}
        if percentile:
            settings["activation_ranges"] = (
                f"min/max narrowed to the {percentile}th percentile of the calibration values"
            )
        dest.write_bytes(tflite_int8(self.saved_model(), self.calibration, layers, ops, percentile))
        return settings

    def _tflite_float_ops(self) -> list[str]:
        """LiteRT's INT8 PReLU is a slow reference kernel that XNNPACK does not take (it
        cut SFace into pieces: ~5x slower); in float, between Dequantize and Quantize, it
        runs in XNNPACK with the INT8 convolutions."""
        import keras

        prelu = any(isinstance(lyr, keras.layers.PReLU) for lyr in self.backbone.model.layers)
        return ["PRELU"] if prelu else []

    def _onnx_float(self, dest: Path) -> dict[str, Any] | None:
        shutil.copyfile(self.onnx(), dest)
        return None

    def _onnx_int8(self, dest: Path) -> dict[str, Any]:
        pre = self.scratch / "model_pre.onnx"
        with native_output_silenced():
            # folds leftover BatchNorm into the convolutions before ranges are measured
            quant_pre_process(str(self.onnx()), str(pre), skip_symbolic_shape=True)
        reader = _CalibrationReader(self.calibration, _onnx_input_name(pre))
        layers = self.backbone.float_layers()
        with native_output_silenced():
            quantize_static(
                str(pre),
                str(dest),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=_onnx_nodes_until(pre, layers),
            )
        settings = {
            "scheme": "static QDQ (onnxruntime.quantization), quant_pre_process first",
            "weights": "int8",
            "activations": "int8",
            "per_channel": True,
            "calibrate_method": "MinMax",
            "io": "float32",
            "calibration": self.calibration.settings(),
        }
        return settings | ({"float_layers": layers} if layers else {})


def _saved_model_to_onnx(saved_model: Path, dest: Path) -> None:
    import tf2onnx
    from tf2onnx import tf_loader

    with native_output_silenced():
        graph_def, inputs, outputs = tf_loader.from_saved_model(
            str(saved_model), None, None, tag="serve", signatures=["serving_default"]
        )
        model_proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=inputs, output_names=outputs, opset=ONNX_OPSET
        )
    # tf2onnx names the free batch dimension "unk__N"; a clear name helps users of the file
    for value in (*model_proto.graph.input, *model_proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    dest.write_bytes(model_proto.SerializeToString())


def _layer_pattern(layers: list[str]) -> re.Pattern:
    """Matches the names converters give a Keras layer's ops and tensors
    (``sface_1/conv_2_1/BiasAdd``, ``StatefulPartitionedCall/sface_1/conv_2_1/BiasAdd``)."""
    return re.compile(rf"(^|/)({'|'.join(map(re.escape, layers))})(_\d+)?/")


def tflite_int8(
    saved_model: Path,
    calibration: QuantCalibration,
    float_layers: Sequence[str] = (),
    float_ops: Sequence[str] = (),
    percentile: float | None = None,
) -> bytes:
    """A SavedModel as full-integer INT8 TFLite (float input and output) calibrated on
    ``calibration``: ``float_layers`` and ``float_ops`` kept in float, activation ranges
    narrowed to ``percentile`` of the calibration values (:mod:`convert.ranges`)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [x] for x in calibration.samples("calibrating tflite-int8")
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

    def clip(calibrated: bytes) -> bytes:
        samples = calibration.samples("narrowing tflite-int8 ranges")
        return clip_calibrated_ranges(calibrated, samples, len(calibration.batch), percentile)

    with native_output_silenced():
        if not (float_layers or float_ops or percentile):
            return converter.convert()
        return _selectively_quantized(
            converter, list(float_layers), list(float_ops), clip if percentile else None
        )


def _selectively_quantized(
    converter: Any, layers: list[str], ops: list[str], clip: Callable[[bytes], bytes] | None
) -> bytes:
    """Full-integer INT8 except ``layers`` and ``ops``, kept in float: TFLite's
    QuantizationDebugger calibrates once, ``clip`` may narrow the measured ranges, then
    it quantizes with that denylist."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    debug = tf.lite.experimental.QuantizationDebugger(converter=converter)
    if clip is not None:
        debug.calibrated_model = clip(debug.calibrated_model)
    tensors = Interpreter(model_content=debug.calibrated_model).get_tensor_details()
    pattern = _layer_pattern(layers) if layers else None
    nodes = [t["name"] for t in tensors if pattern and pattern.search(t["name"])]
    debug.options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=nodes or None, denylisted_ops=ops or None
    )
    return debug.get_nondebug_quantized_model()


def _onnx_nodes_until(path: Path, layers: list[str]) -> list[str]:
    """The nodes of the ONNX file up to the last one of ``layers`` (those INT8 keeps in
    float; a prefix of the network): tf2onnx does not name every node after its layer
    (SFace's first depthwise convolution is ``Conv__173``), but its nodes are in order."""
    import onnx

    if not layers:
        return []
    names = [n.name for n in onnx.load(str(path), load_external_data=False).graph.node]
    pattern = _layer_pattern(layers)
    last = max((i for i, name in enumerate(names) if pattern.search(name)), default=-1)
    return names[: last + 1]


def _onnx_input_name(path: Path) -> str:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.input[0].name


_EXPORTERS: dict[str, Callable[[Exporter, Path], dict[str, Any] | None]] = {
    "savedmodel": Exporter._savedmodel,
    "keras": Exporter._keras,
    "tflite-int8": lambda e, d: e._tflite(d, "int8"),
    "tflite-fp16": lambda e, d: e._tflite(d, "fp16"),
    "tflite-dynamic": lambda e, d: e._tflite(d, "dynamic"),
    "onnx": Exporter._onnx_float,
    "onnx-int8": Exporter._onnx_int8,
}
assert set(_EXPORTERS) == set(ARTIFACT_FILES)
