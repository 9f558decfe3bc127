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
    "Verification": "edge.results",
    "EnrolledPhoto": "edge.gallery.enroll",
    "Enrolment": "edge.gallery.enroll",
    "Appearance": "edge.video.track",
    "Identity": "edge.results",
    "Recognition": "edge.results",
    "Threshold": "edge.results",
    "Face": "edge.faces.detect",
    "Bundle": "edge.model.bundle",
    "Manifest": "edge.model.manifest",
    "PersonInfo": "edge.gallery.store",
    "Calibration": "edge.gallery.openset",
    "annotate": "edge.video.draw",
    "FacelensError": "edge.base.errors",
    "BundleError": "edge.base.errors",
    "ImageError": "edge.base.errors",
    "NoFaceError": "edge.base.errors",
    "AmbiguousFacesError": "edge.base.errors",
    "CropError": "edge.base.errors",
    "DetectorError": "edge.base.errors",
    "GalleryError": "edge.base.errors",
    "SourceError": "edge.base.errors",
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
    from edge.api import FaceLens
    from edge.base.errors import (
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
    from edge.faces.detect import Face
    from edge.gallery.enroll import EnrolledPhoto, Enrolment
    from edge.gallery.openset import Calibration
    from edge.gallery.store import PersonInfo
    from edge.model.bundle import Bundle
    from edge.model.manifest import Manifest
    from edge.results import Identity, Recognition, Threshold, Verification
    from edge.video.draw import annotate
    from edge.video.track import Appearance


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
