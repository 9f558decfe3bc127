"""Build a model bundle: float model -> every requested format, verified, written atomically."""

from __future__ import annotations

import contextlib
import errno
import importlib.metadata
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from convert._quiet import progress_stream, quiet_tensorflow_warnings
from convert.calibration_set import FaceSet, calibration_and_eval, require_images
from convert.fidelity import artifact_features, cosine_stats, keras_features
from convert.formats import Exporter, QuantCalibration
from convert.models import Backbone, load_backbone
from convert.open_set import add_open_set
from convert.options import Compaction, Export, FaceSets, ModelChoice
from convert.projection import project
from convert.report import UNTRAINED_BANNER, format_table
from convert.threshold import choose_threshold
from edge.base.errors import FacelensError
from edge.model.bundle import ARTIFACT_FILES, MANIFEST_NAME, Bundle, sha256_path
from edge.model.manifest import Artifact, Fidelity, Manifest, ProjectionInfo, Source
from edge.model.preprocess import CropRule
from edge.model.transfer import check_out, publish, staging

log = logging.getLogger(__name__)
RUNTIME_OF = {"savedmodel": "tensorflow", "keras": "keras"}
TOOLS = ("keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy")


class ConversionFailed(FacelensError):
    """Some formats failed or fell under the fidelity floor; nothing was written."""

    def __init__(self, message: str, table: str) -> None:
        super().__init__(message)
        self.table = table


@quiet_tensorflow_warnings()
def build_bundle(
    out: Path | str,
    *,
    faces: FaceSets,
    model: ModelChoice | None = None,
    export: Export | None = None,
    compaction: Compaction | None = None,
    name: str | None = None,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> Bundle:
    """Convert a float model into a verified bundle at ``out`` and return it loaded.

    ``model``: what to convert (default VGG16 with ImageNet weights); ``faces``: the
    INT8 calibration set and the held-out faces; ``export``: the formats and the
    fidelity floor. Every artifact is run in its runtime and compared with the float
    model; a failed format or one under the floor raises :class:`ConversionFailed` (and
    nothing is written) unless ``export.allow_failures``. ``compaction``: fold a PCA
    into the model first; the manifest's ``embedding.projection`` says how. ``seed``
    fixes untrained weights and every sample of faces. ``out`` is replaced only if it
    is a bundle and ``force``; ``name`` defaults to one made of the model and layer.
    """
    out = Path(out)
    model, export = model or ModelChoice(), export or Export()
    compaction = compaction or Compaction()
    formats = _check_inputs(out, faces, export, compaction, force)
    backbone = _load(model, seed)
    cal, held = calibration_and_eval(
        faces.calibration,
        backbone.input_spec,
        faces.calibration_count,
        faces.eval_dir,
        faces.eval_count,
        seed,
        progress,
        faces.detector,
    )
    pca = None
    if compaction.embedding_dim is not None:
        backbone, pca = project(
            backbone,
            compaction.embedding_dim,
            compaction.projection_faces or faces.calibration,
            whiten=compaction.whiten,
            count=compaction.projection_count,
            exclude=held.paths,
            seed=seed,
            detector=faces.detector,
            progress=progress,
        )
    with staging(out) as tmp:
        quant = QuantCalibration(cal.batch, str(cal.root), progress)
        done = _convert_all(backbone, formats, quant, held, tmp, export.min_cosine, progress)
        manifest = _manifest(backbone, pca, done, (cal, held), name, seed)
        _refuse_failures(done, export, out)
        manifest.save(tmp / MANIFEST_NAME)
        add_open_set(tmp, faces.calibration, faces.detector, progress, seed, faces.open_set_people)
        check_out(out, force)  # again: something may have appeared there meanwhile
        publish(tmp, out)
    return Bundle.load(out)


def _check_inputs(
    out: Path, faces: FaceSets, export: Export, compaction: Compaction, force: bool
) -> list[str]:
    """Cheap checks before minutes of model building; returns the formats, deduplicated."""
    formats = _check_formats(export.formats)
    check_out(out, force)
    for folder in (faces.calibration, faces.eval_dir, compaction.projection_faces):
        if folder is not None:
            require_images(folder)
    return formats


def _load(model: ModelChoice, seed: int) -> Backbone:
    backbone = load_backbone(model.model, model.weights, model.layer, model.input_spec, seed)
    if model.no_detect:
        backbone.input_spec = replace(backbone.input_spec, crop=CropRule(kind="whole_image"))
    if backbone.untrained:
        log.warning(UNTRAINED_BANNER)
    return backbone


def _manifest(
    backbone: Backbone,
    pca: ProjectionInfo | None,
    done: Converted,
    sets: tuple[FaceSet, FaceSet],
    name: str | None,
    seed: int,
) -> Manifest:
    """The manifest of the converted formats, with a threshold chosen on the held-out faces."""
    cal, held = sets
    native = backbone.source.get("dlib", {}).get("loss", {}).get("distance_threshold")
    threshold = choose_threshold(done.reference, held.identities, native)
    if threshold.warning:
        log.warning(threshold.warning)
    return Manifest(
        model_id=backbone.model_id(),
        input=backbone.input_spec,
        embedding_dim=backbone.dim,
        embedding_projection=pca,
        artifacts=done.artifacts,
        name=name or _default_name(backbone, pca),
        threshold=threshold,
        source=Source.from_dict(backbone.source),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tools=_tools(),
        failed=done.failed,
        calibration=replace(cal.describe(), shuffle_seed=seed),
        eval=held.describe(),
        warning=UNTRAINED_BANNER if backbone.untrained else None,
    )


def _refuse_failures(done: Converted, export: Export, out: Path) -> None:
    artifacts, failed, floor = done.artifacts, done.failed, export.min_cosine
    problems = [*failed] + [f for f, a in artifacts.items() if not a.fidelity.passed]
    if problems and not export.allow_failures:
        raise ConversionFailed(
            f"{', '.join(problems)} failed or fell under cosine min {floor}; no bundle "
            f"written to {out}: drop them with --formats, or keep the rest with "
            "--allow-failures",
            format_table(artifacts, failed, floor),
        )


def _check_formats(formats: Sequence[str]) -> list[str]:
    unknown = [f for f in formats if f not in ARTIFACT_FILES]
    if unknown or not formats:
        raise FacelensError(
            f"unknown format(s) {', '.join(unknown) or '(none given)'}: "
            f"choose from {', '.join(ARTIFACT_FILES)}"
        )
    return list(dict.fromkeys(formats))


def _default_name(backbone: Backbone, projection: ProjectionInfo | None) -> str:
    stem = Path(backbone.source["backbone"]).stem
    name = f"{stem}-{backbone.source['output_layer']}"
    if projection is not None:
        name += f"-{projection.kind}{projection.dim}"
    return f"{name}-untrained" if backbone.untrained else name


def _tools() -> dict[str, str]:
    versions = {}
    for dist in ("facelens", *TOOLS):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    import cv2
    import tensorflow as tf  # its distribution may be tensorflow or tensorflow-cpu

    versions["tensorflow"] = tf.__version__
    versions["opencv"] = cv2.__version__
    return versions


@dataclass
class Converted:
    """What :func:`_convert_all` made: the artifacts, the formats that failed (and why),
    and the float model's features on the held-out faces."""

    artifacts: dict[str, Artifact]
    failed: dict[str, str]
    reference: np.ndarray


def _convert_all(
    backbone: Backbone,
    formats: list[str],
    calibration: QuantCalibration,
    held: FaceSet,
    tmp: Path,
    min_cosine: float,
    progress: bool,
) -> Converted:
    """Export, reload and compare every format with the float model."""
    scratch = tmp / "_scratch"
    scratch.mkdir()
    exporter = Exporter(backbone, calibration, scratch)
    done = Converted({}, {}, keras_features(backbone.model, held.batch))
    bar = tqdm(
        formats,
        desc="converting",
        unit="format",
        disable=None if progress else True,
        file=progress_stream(),
    )
    for fmt in bar:
        bar.set_postfix_str(fmt)
        dest = tmp / ARTIFACT_FILES[fmt]
        start = time.perf_counter()
        try:
            quantization = exporter.export(fmt, dest)
            seconds = time.perf_counter() - start
            stats = cosine_stats(done.reference, artifact_features(fmt, dest, held.batch))
        except OSError:
            raise  # a full disk or a permission problem: no point trying other formats
        except Exception as exc:  # any converter or runtime failure is this format's alone
            disk = _disk_error(exc)
            if disk is not None:  # converters wrap a full disk in their own errors
                raise disk from exc
            done.failed[fmt] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            shutil.rmtree(dest, ignore_errors=True) if dest.is_dir() else dest.unlink(True)
            continue
        fidelity = Fidelity(
            cosine_mean=stats["cosine_mean"],
            cosine_min=stats["cosine_min"],
            passed=stats["cosine_min"] >= min_cosine,
            floor=min_cosine,
            runtime=RUNTIME_OF.get(fmt, "litert" if dest.suffix == ".tflite" else "onnxruntime"),
            eval_count=len(held),
        )
        done.artifacts[fmt] = Artifact(
            file=ARTIFACT_FILES[fmt],
            bytes=_size(dest),
            sha256=sha256_path(dest),
            seconds=round(seconds, 2),
            quantization=quantization,
            fidelity=fidelity,
        )
    bar.close()
    shutil.rmtree(scratch)
    return done


_DISK_ERRNOS = {errno.ENOSPC: "No space left on device", errno.EFBIG: "File too large"}
if hasattr(errno, "EDQUOT"):
    _DISK_ERRNOS[errno.EDQUOT] = "Disk quota exceeded"


def _disk_error(exc: BaseException) -> OSError | None:
    """The full-disk OSError behind a converter's own exception, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_ERRNOS:
            return seen
        for code, text in _DISK_ERRNOS.items():
            if text in str(seen):
                return OSError(code, text)
        seen = seen.__cause__ or seen.__context__
    return None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
