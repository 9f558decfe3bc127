"""Shared fixtures: real data from ../shared, read in place, skipped clearly when absent."""

from __future__ import annotations

import os
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
