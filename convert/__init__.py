"""facelens convert: build a verified model bundle (SavedModel, INT8 TFLite, ONNX, ...).

``python -m convert --help`` for the command line; :func:`build_bundle` from Python.
"""

from convert._quiet import native_output_silenced

with native_output_silenced():  # TensorFlow prints its start-up banner from C++
    import tensorflow  # noqa: F401

from convert.build import ALL_FORMATS, ConversionFailed, build_bundle
from convert.models import Backbone, load_backbone

__all__ = ["ALL_FORMATS", "Backbone", "ConversionFailed", "build_bundle", "load_backbone"]
