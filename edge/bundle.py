"""The model bundle: a folder with ``manifest.json`` and the artifacts ``convert`` wrote.

The bundle is the only contract between ``convert`` and ``edge`` (see DESIGN.md).
``edge`` refuses a bundle whose manifest is missing or of an unknown version, and
an artifact whose sha256 differs from the manifest's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.detect import sha256_file
from edge.errors import BundleError
from edge.preprocess import InputSpec

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

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


@dataclass
class Bundle:
    """A loaded, validated model bundle."""

    path: Path
    manifest: dict[str, Any]
    input_spec: InputSpec
    _verified: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def load(cls, path: Path | str) -> Bundle:
        """Read and validate ``path/manifest.json``; raises :class:`BundleError` with advice."""
        path = Path(path)
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise BundleError(
                f"no model bundle at {path} ({MANIFEST_NAME} is missing): build one with "
                f"`python -m convert --out {path}` or pass --bundle DIR"
            )
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(
                f"{manifest_path} is not valid JSON ({exc}); rebuild the bundle"
            ) from exc
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{manifest_path} has format_version {version!r}; this facelens reads version "
                f"{FORMAT_VERSION}: rebuild the bundle with this version's `python -m convert`"
            )
        for key in ("input", "embedding", "artifacts", "model_id"):
            if key not in manifest:
                raise BundleError(f"{manifest_path} lacks {key!r}; rebuild the bundle")
        return cls(path=path, manifest=manifest, input_spec=InputSpec.from_dict(manifest["input"]))

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    @property
    def embedding_dim(self) -> int:
        return int(self.manifest["embedding"]["dim"])

    @property
    def formats(self) -> list[str]:
        return list(self.manifest["artifacts"])

    @property
    def threshold(self) -> float:
        """The bundle's default cosine threshold for accepting a match."""
        return float(self.manifest.get("threshold", {}).get("cosine", 0.5))

    @property
    def fingerprint(self) -> str:
        """Identity of the embedding space: same weights, same preprocessing, same size.

        Every artifact of one bundle shares it (INT8 and float embeddings are
        comparable); a bundle from other weights or another crop rule does not.
        """
        identity = {
            "model_id": self.manifest["model_id"],
            "input": self.input_spec.to_dict(),
            "dim": self.embedding_dim,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def artifact(self, fmt: str) -> dict[str, Any]:
        try:
            return self.manifest["artifacts"][fmt]
        except KeyError:
            raise BundleError(
                f"bundle {self.path} has no {fmt!r} artifact (it has: {', '.join(self.formats)}); "
                f"choose one of those or rebuild with `python -m convert --formats {fmt}`"
            ) from None

    def artifact_path(self, fmt: str, verify: bool = True) -> Path:
        """Path of an artifact, after checking it exists and its sha256 matches the manifest."""
        entry = self.artifact(fmt)
        file = self.path / entry["file"]
        if not file.exists():
            raise BundleError(
                f"{file} is missing from the bundle; rebuild it with `python -m convert`"
            )
        if verify and fmt not in self._verified:
            if sha256_path(file) != entry.get("sha256"):
                raise BundleError(
                    f"{file} does not match the sha256 in {self.path / MANIFEST_NAME}: it was "
                    "modified or corrupted; rebuild the bundle or restore the file"
                )
            self._verified.add(fmt)
        return file
