"""facelens edge: one-shot face recognition on a CPU, as a library and a command.

::

    import edge

    fl = edge.FaceLens(bundle="bundles/faceres", gallery="people.db")
    fl.verify("a.jpg", "b.jpg")      # Verification(same=..., score=..., threshold=...)
    fl.enroll("Ada", ["ada.jpg"])    # Enrolment: the kept views (EnrolledPhoto), left out
    fl.identify("door.jpg")          # [Identity(name="Ada" or None, score, box, ...)]

The names below load on first use, so ``import edge`` itself imports nothing heavy
and changes nothing (no runtime, no OpenCV, no TensorFlow ever).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_EXPORTS = {
    "FaceLens": "edge.api",
    "Verification": "edge.api",
    "EnrolledPhoto": "edge.enroll",
    "Enrolment": "edge.enroll",
    "Appearance": "edge.track",
    "Identity": "edge.api",
    "Recognition": "edge.api",
    "Threshold": "edge.api",
    "Face": "edge.detect",
    "Bundle": "edge.bundle",
    "Manifest": "edge.manifest",
    "PersonInfo": "edge.gallery",
    "Calibration": "edge.calibrate",
    "annotate": "edge.draw",
    "FacelensError": "edge.errors",
    "BundleError": "edge.errors",
    "ImageError": "edge.errors",
    "NoFaceError": "edge.errors",
    "AmbiguousFacesError": "edge.errors",
    "CropError": "edge.errors",
    "DetectorError": "edge.errors",
    "GalleryError": "edge.errors",
    "SourceError": "edge.errors",
}
__all__ = [  # the same names as _EXPORTS, spelled out for linters and type checkers
    "AmbiguousFacesError",
    "Appearance",
    "Bundle",
    "BundleError",
    "Calibration",
    "CropError",
    "DetectorError",
    "EnrolledPhoto",
    "Enrolment",
    "Face",
    "FaceLens",
    "FacelensError",
    "GalleryError",
    "Identity",
    "ImageError",
    "Manifest",
    "NoFaceError",
    "PersonInfo",
    "Recognition",
    "SourceError",
    "Threshold",
    "Verification",
    "annotate",
]

if TYPE_CHECKING:
    from edge.api import FaceLens, Identity, Recognition, Threshold, Verification
    from edge.bundle import Bundle
    from edge.calibrate import Calibration
    from edge.detect import Face
    from edge.draw import annotate
    from edge.enroll import EnrolledPhoto, Enrolment
    from edge.errors import (
        AmbiguousFacesError,
        BundleError,
        CropError,
        DetectorError,
        FacelensError,
        GalleryError,
        ImageError,
        NoFaceError,
        SourceError,
    )
    from edge.gallery import PersonInfo
    from edge.manifest import Manifest
    from edge.track import Appearance


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
