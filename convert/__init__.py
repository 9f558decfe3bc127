"""facelens convert: build a verified model bundle (SavedModel, INT8 TFLite, ONNX, ...).

``python -m convert --help`` for the command line; :func:`build_bundle` from Python, with
its options grouped by build step (:class:`ModelChoice`, :class:`FaceSets`, :class:`Export`,
:class:`Compaction`).
TensorFlow loads when one of the names below is first used, not at ``import convert``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ALL_FORMATS": "convert.options",
    "Compaction": "convert.options",
    "Export": "convert.options",
    "FaceSets": "convert.options",
    "ModelChoice": "convert.options",
    "ConversionFailed": "convert.build",
    "build_bundle": "convert.build",
    "Backbone": "convert.models",
    "load_backbone": "convert.models",
}
__all__ = [
    "ALL_FORMATS",
    "Backbone",
    "Compaction",
    "ConversionFailed",
    "Export",
    "FaceSets",
    "ModelChoice",
    "build_bundle",
    "load_backbone",
]

if TYPE_CHECKING:
    from convert.build import ConversionFailed, build_bundle
    from convert.models import Backbone, load_backbone
    from convert.options import ALL_FORMATS, Compaction, Export, FaceSets, ModelChoice


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'convert' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
