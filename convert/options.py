"""What :func:`convert.build_bundle` is asked to do, one small record per build step.

Light on purpose (no TensorFlow): ``python -m convert`` fills these from its options,
field for field, before anything heavy is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.model.bundle import ARTIFACT_FILES

if TYPE_CHECKING:
    from edge.model.preprocess import InputSpec

ALL_FORMATS = tuple(ARTIFACT_FILES)


@dataclass(frozen=True)
class ModelChoice:
    """The float model to convert; ``model``, ``weights``, ``layer``, ``input_spec``: see
    :func:`convert.models.load_backbone`. ``no_detect``: the notebook's whole-photo mode,
    for comparison only (the crop rule becomes ``whole_image``)."""

    model: str | Path = "vgg16"
    weights: str | None = None
    layer: str | None = None
    input_spec: Path | str | InputSpec | None = None
    no_detect: bool = False


@dataclass(frozen=True)
class FaceSets:
    """The INT8 calibration set and the held-out faces every artifact is checked on.

    Calibration faces come from ``calibration`` (searched recursively), held-out faces
    from ``eval_dir`` or a disjoint slice of ``calibration``, cut exactly as ``edge``
    does (``detector``: a YuNet file, default edge's search). Not to be confused with
    edge's open-set calibration of a gallery (:mod:`edge.gallery.openset`).
    """

    calibration: Path | str
    calibration_count: int = 200
    eval_dir: Path | str | None = None
    eval_count: int = 100
    detector: Path | str | None = None
    # how many of calibration's people measure the open-set rule (None: the step's cap)
    open_set_people: int | None = None


@dataclass(frozen=True)
class Export:
    """Which formats to write and how close to the float model each must stay: a format
    that fails, or whose cosine min is under ``min_cosine``, stops the build (nothing is
    written) unless ``allow_failures``."""

    formats: Sequence[str] = ALL_FORMATS
    min_cosine: float = 0.98
    allow_failures: bool = False


@dataclass(frozen=True)
class Compaction:
    """With ``embedding_dim``, fold a PCA to that many dimensions (``whiten``: whitened)
    into the model before export, fitted on ``projection_count`` faces from
    ``projection_faces`` (default: the calibration folder) other than the held-out ones;
    see :mod:`convert.projection`. Without it (the default) the features are kept whole."""

    embedding_dim: int | None = None
    whiten: bool = False
    projection_faces: Path | str | None = None
    projection_count: int = 2000
