"""Build a model bundle: float model -> every requested format, verified, written atomically."""

from __future__ import annotations

import contextlib
import errno
import importlib.metadata
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
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
from convert.projection import project
from convert.report import UNTRAINED_BANNER, format_table
from convert.threshold import choose_threshold
from edge.base.errors import FacelensError
from edge.base.paths import cannot_write
from edge.model.bundle import ARTIFACT_FILES, MANIFEST_NAME, Bundle, sha256_path
from edge.model.manifest import Artifact, Fidelity, Manifest, ProjectionInfo, Source
from edge.model.preprocess import CropRule, InputSpec

log = logging.getLogger(__name__)
ALL_FORMATS = tuple(ARTIFACT_FILES)
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
    calibration: Path | str,
    model: str | Path = "vgg16",
    weights: str | None = None,
    layer: str | None = None,
    input_spec: Path | str | InputSpec | None = None,
    formats: Sequence[str] = ALL_FORMATS,
    calibration_count: int = 200,
    eval_dir: Path | str | None = None,
    eval_count: int = 100,
    min_cosine: float = 0.98,
    seed: int = 0,
    name: str | None = None,
    embedding_dim: int | None = None,
    whiten: bool = False,
    projection_faces: Path | str | None = None,
    projection_count: int = 2000,
    detector: Path | str | None = None,
    no_detect: bool = False,
    force: bool = False,
    allow_failures: bool = False,
    progress: bool = True,
) -> Bundle:
    """Convert a float model into a verified bundle at ``out`` and return it loaded.

    ``model``/``weights``/``layer``/``input_spec``/``seed``: see
    :func:`convert.models.load_backbone`. Faces for INT8 calibration come from
    ``calibration`` (searched recursively), held-out faces from ``eval_dir`` or a
    disjoint slice of ``calibration``, cut exactly as ``edge`` does (``detector``: a
    YuNet file, default edge's search; ``no_detect``: the notebook's whole-photo mode,
    for comparison only: the crop rule becomes ``whole_image``). Every artifact is run
    in its runtime and compared with the float model; a failed format or one whose
    cosine min is under ``min_cosine`` raises :class:`ConversionFailed` (and nothing is
    written) unless ``allow_failures``. ``out`` is replaced only if it is a bundle and ``force``.

    ``embedding_dim``: fold a PCA to that many dimensions (``whiten``: whitened) into
    the model before export, fitted on ``projection_count`` faces from
    ``projection_faces`` (default ``calibration``) other than the held-out ones; see
    :mod:`convert.projection`. The manifest's ``embedding.projection`` says how.
    """
    out = Path(out)
    formats = _check_formats(formats)
    _check_out(out, force)
    # cheap checks before minutes of model building
    for folder in (calibration, eval_dir, projection_faces):
        if folder is not None:
            require_images(folder)
    backbone = load_backbone(model, weights, layer, input_spec, seed)
    if no_detect:
        backbone.input_spec = replace(backbone.input_spec, crop=CropRule(kind="whole_image"))
    if backbone.untrained:
        log.warning(UNTRAINED_BANNER)
    cal, held = calibration_and_eval(
        calibration,
        backbone.input_spec,
        calibration_count,
        eval_dir,
        eval_count,
        seed,
        progress,
        detector,
    )
    projection = None
    if embedding_dim is not None:
        backbone, projection = project(
            backbone,
            embedding_dim,
            projection_faces or calibration,
            whiten=whiten,
            count=projection_count,
            exclude=held.paths,
            seed=seed,
            detector=detector,
            progress=progress,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would make the published bundle private
    try:
        artifacts, failed, reference = _convert_all(
            backbone,
            formats,
            QuantCalibration(cal.batch, str(cal.root), progress),
            held,
            tmp,
            min_cosine,
            progress,
        )
        native = backbone.source.get("dlib", {}).get("loss", {}).get("distance_threshold")
        threshold = choose_threshold(reference, held.identities, native)
        if threshold.warning:
            log.warning(threshold.warning)
        manifest = Manifest(
            model_id=backbone.model_id(),
            input=backbone.input_spec,
            embedding_dim=backbone.dim,
            embedding_projection=projection,
            artifacts=artifacts,
            name=name or _default_name(backbone, projection),
            threshold=threshold,
            source=Source.from_dict(backbone.source),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            tools=_tools(),
            failed=failed,
            calibration=replace(cal.describe(), shuffle_seed=seed),
            eval=held.describe(),
            warning=UNTRAINED_BANNER if backbone.untrained else None,
        )
        table = format_table(artifacts, failed, min_cosine)
        problems = [*failed] + [f for f, a in artifacts.items() if not a.fidelity.passed]
        if problems and not allow_failures:
            raise ConversionFailed(
                f"{', '.join(problems)} failed or fell under cosine min {min_cosine}; no bundle "
                f"written to {out}: drop them with --formats, or keep the rest with "
                "--allow-failures",
                table,
            )
        manifest.save(tmp / MANIFEST_NAME)
        add_open_set(tmp, calibration, detector, progress, seed)
        _check_out(out, force)  # again: something may have appeared there meanwhile
        _publish(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        hint = "free some space" if exc.errno == errno.ENOSPC else "check permissions and space"
        raise FacelensError(f"cannot write the bundle to {out} ({exc}); {hint} and retry") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle.load(out)


def _check_formats(formats: Sequence[str]) -> list[str]:
    unknown = [f for f in formats if f not in ARTIFACT_FILES]
    if unknown or not formats:
        raise FacelensError(
            f"unknown format(s) {', '.join(unknown) or '(none given)'}: "
            f"choose from {', '.join(ARTIFACT_FILES)}"
        )
    return list(dict.fromkeys(formats))


def _check_out(out: Path, force: bool) -> None:
    """Refuse early (before minutes of work) to clobber anything that is not a bundle,
    or to work for a folder that cannot be written."""
    exc = cannot_write(out.parent)
    if exc is not None:
        raise FacelensError(
            f"cannot write the bundle to {out} ({exc.strerror or exc}): choose an --out in a "
            "folder you can write to, on a disk with free space"
        ) from exc
    if out.is_file():
        raise FacelensError(f"--out {out} is a file; choose a folder path for the bundle")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST_NAME).is_file():
            raise FacelensError(
                f"--out {out} exists and is not a model bundle; refusing to overwrite it: "
                "choose another --out"
            )
        if not force:
            raise FacelensError(f"a bundle already exists at {out}; pass --force to replace it")


def _publish(tmp: Path, out: Path) -> None:
    """Swap the finished folder into place: readers see the old bundle or the new one."""
    old = None
    if out.is_dir():
        if any(out.iterdir()):
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        else:
            out.rmdir()
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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


def _convert_all(
    backbone: Backbone,
    formats: list[str],
    calibration: QuantCalibration,
    held: FaceSet,
    tmp: Path,
    min_cosine: float,
    progress: bool,
) -> tuple[dict[str, Artifact], dict[str, str], np.ndarray]:
    """Export, reload and compare every format: (artifacts, failed formats, float features)."""
    scratch = tmp / "_scratch"
    scratch.mkdir()
    exporter = Exporter(backbone, calibration, scratch)
    reference = keras_features(backbone.model, held.batch)
    artifacts: dict[str, Artifact] = {}
    failed: dict[str, str] = {}
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
            stats = cosine_stats(reference, artifact_features(fmt, dest, held.batch))
        except OSError:
            raise  # a full disk or a permission problem: no point trying other formats
        except Exception as exc:  # any converter or runtime failure is this format's alone
            disk = _disk_error(exc)
            if disk is not None:  # converters wrap a full disk in their own errors
                raise disk from exc
            failed[fmt] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            shutil.rmtree(dest, ignore_errors=True) if dest.is_dir() else dest.unlink(True)
            continue
        artifacts[fmt] = Artifact(
            file=ARTIFACT_FILES[fmt],
            bytes=_size(dest),
            sha256=sha256_path(dest),
            seconds=round(seconds, 2),
            quantization=quantization,
            fidelity=Fidelity(
                cosine_mean=stats["cosine_mean"],
                cosine_min=stats["cosine_min"],
                passed=stats["cosine_min"] >= min_cosine,
                floor=min_cosine,
                runtime=RUNTIME_OF.get(
                    fmt, "litert" if dest.suffix == ".tflite" else "onnxruntime"
                ),
                eval_count=len(held),
            ),
        )
    bar.close()
    shutil.rmtree(scratch)
    return artifacts, failed, reference


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
