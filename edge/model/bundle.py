"""The model bundle: a folder with ``manifest.json`` and the artifacts ``convert`` wrote.

The bundle is the only contract between ``convert`` and ``edge`` (see docs/design.md).
``edge`` refuses a bundle whose manifest is missing, malformed or of an unknown
version (see :mod:`edge.model.manifest`), and an artifact whose sha256 differs from the
manifest's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edge.base.assets import sha256_file
from edge.base.errors import BundleError
from edge.model.manifest import FORMAT_VERSION, MANIFEST_NAME, Artifact, Manifest

if TYPE_CHECKING:
    import numpy as np

    from edge.model.preprocess import InputSpec

__all__ = [
    "ARTIFACT_FILES",
    "DEFAULT_FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "RUNTIME_FORMATS",
    "Bundle",
    "sha256_path",
    "weights_digest",
]

# Every format a bundle may hold, and the file (or folder) it is written to.
ARTIFACT_FILES: dict[str, str] = {
    "savedmodel": "saved_model",
    "keras": "model_float.keras",
    "tflite-int8": "model_int8.tflite",
    "tflite-fp16": "model_fp16.tflite",
    "tflite-dynamic": "model_dynamic.tflite",
    "onnx": "model.onnx",
    "onnx-int8": "model_int8.onnx",
}
# The formats the edge runtime can run (the others need TensorFlow).
RUNTIME_FORMATS = ("tflite-int8", "tflite-fp16", "tflite-dynamic", "onnx", "onnx-int8")
DEFAULT_FORMAT = "tflite-int8"


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a folder (every file's relative path and bytes, in order)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(bytes.fromhex(sha256_file(file)))
    return digest.hexdigest()


def weights_digest(weights: list[np.ndarray]) -> str:
    """A manifest's ``model_id``: sha256 over the float weights (dtype, shape, bytes) in order,
    so the same network gets the same id whichever tool built it."""
    import numpy as np  # here: `edge --help` reads this module and loads no numpy

    digest = hashlib.sha256()
    for w in weights:
        digest.update(repr((w.dtype.str, w.shape)).encode())
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


@dataclass
class Bundle:
    """A loaded, validated model bundle."""

    path: Path
    manifest: Manifest
    _verified: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def load(cls, path: Path | str) -> Bundle:
        """Read and validate ``path/manifest.json``; raises :class:`BundleError` with advice."""
        path = Path(path)
        return cls(path=path, manifest=Manifest.load(path / MANIFEST_NAME))

    @property
    def input_spec(self) -> InputSpec:
        return self.manifest.input

    @property
    def name(self) -> str:
        return self.manifest.name or self.path.name

    @property
    def embedding_dim(self) -> int:
        return self.manifest.embedding_dim

    @property
    def formats(self) -> list[str]:
        return list(self.manifest.artifacts)

    @property
    def threshold(self) -> float:
        """The bundle's default cosine threshold for accepting a match."""
        return self.manifest.threshold.cosine

    @property
    def fingerprint(self) -> str:
        """Identity of the embedding space: same weights, same preprocessing, same size.

        Every artifact of one bundle shares it (INT8 and float embeddings are
        comparable); a bundle from other weights or another crop rule does not.
        """
        identity = {
            "model_id": self.manifest.model_id,
            "input": self.input_spec.to_dict(),
            "dim": self.embedding_dim,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def open_set_path(self) -> Path | None:
        """The bundle's open-set calibration file, sha256-checked (``None``: it has none)."""
        info = self.manifest.open_set
        if info is None or info.file is None:
            return None
        file = self.path / info.file
        self._check_file(file, info.sha256)
        return file

    def _check_file(self, file: Path, sha256: str | None) -> None:
        if not file.exists():
            raise BundleError(
                f"{file} is missing from the bundle; rebuild it with `python -m convert`"
            )
        if sha256 is not None and sha256_path(file) != sha256:
            raise BundleError(
                f"{file} does not match the sha256 in {self.path / MANIFEST_NAME}: it was "
                "modified or corrupted; rebuild the bundle or restore the file"
            )

    def artifact(self, fmt: str) -> Artifact:
        try:
            return self.manifest.artifacts[fmt]
        except KeyError:
            raise BundleError(
                f"bundle {self.path} has no {fmt!r} artifact (it has: {', '.join(self.formats)}); "
                f"choose one of those or rebuild with `python -m convert --formats {fmt}`"
            ) from None

    def artifact_path(self, fmt: str, verify: bool = True) -> Path:
        """Path of an artifact, after checking it exists and its sha256 matches the manifest."""
        entry = self.artifact(fmt)
        file = self.path / entry.file
        checked = verify and fmt not in self._verified
        self._check_file(file, entry.sha256 if checked else None)
        if checked:
            self._verified.add(fmt)
        return file
