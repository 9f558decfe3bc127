"""The bundle contract: edge refuses what it cannot trust, with advice."""

import json

import numpy as np
import pytest

from edge.backends import load_backend
from edge.bundle import FORMAT_VERSION, Bundle, sha256_path
from edge.errors import BundleError, FacelensError
from edge.preprocess import InputSpec


def _write_bundle(root, artifact_bytes=b"model bytes", **overrides):
    root.mkdir()
    (root / "model_int8.tflite").write_bytes(artifact_bytes)
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": "test",
        "model_id": "abc",
        "input": InputSpec().to_dict(),
        "embedding": {"dim": 8, "normalize": "l2"},
        "artifacts": {
            "tflite-int8": {
                "file": "model_int8.tflite",
                "sha256": sha256_path(root / "model_int8.tflite"),
            }
        },
        "threshold": {"cosine": 0.42, "how": "test"},
        **overrides,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_a_valid_bundle_loads_and_verifies(tmp_path):
    bundle = Bundle.load(_write_bundle(tmp_path / "b"))
    assert bundle.threshold == 0.42 and bundle.embedding_dim == 8
    assert bundle.artifact_path("tflite-int8").name == "model_int8.tflite"


def test_missing_manifest_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(BundleError, match=r"no model bundle at .*python -m convert"):
        Bundle.load(tmp_path)


def test_unknown_version_and_broken_json_are_refused(tmp_path):
    with pytest.raises(BundleError, match="format_version 99"):
        Bundle.load(_write_bundle(tmp_path / "v", format_version=99))
    broken = tmp_path / "j"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(broken)


def test_tampered_or_missing_artifact_is_refused(tmp_path):
    root = _write_bundle(tmp_path / "b")
    (root / "model_int8.tflite").write_bytes(b"model bytes, modified")
    with pytest.raises(BundleError, match="does not match the sha256"):
        Bundle.load(root).artifact_path("tflite-int8")
    (root / "model_int8.tflite").unlink()
    with pytest.raises(BundleError, match="missing"):
        Bundle.load(root).artifact_path("tflite-int8")
    with pytest.raises(BundleError, match="has no 'onnx' artifact"):
        Bundle.load(root).artifact_path("onnx")


def test_fingerprint_changes_with_weights_and_preprocessing(tmp_path):
    a = Bundle.load(_write_bundle(tmp_path / "a"))
    b = Bundle.load(_write_bundle(tmp_path / "b", model_id="other"))
    spec = InputSpec(mean=(0.0, 0.0, 0.0)).to_dict()
    c = Bundle.load(_write_bundle(tmp_path / "c", input=spec))
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
    assert a.fingerprint == Bundle.load(tmp_path / "a").fingerprint


def test_folder_hash_covers_names_and_contents(tmp_path):
    d = tmp_path / "saved"
    (d / "variables").mkdir(parents=True)
    (d / "variables" / "v.data").write_bytes(b"1")
    first = sha256_path(d)
    (d / "variables" / "v.data").write_bytes(b"2")
    assert sha256_path(d) != first


@pytest.mark.parametrize(
    ("name", "runtime"),
    [("m.tflite", "litert"), ("m.onnx", "onnxruntime"), ("m.onnx", "opencv")],
)
def test_real_runtimes_reject_a_corrupt_model_file_clearly(tmp_path, name, runtime):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(BundleError, match="cannot load"):
        load_backend(path, runtime)


def test_a_runtime_refuses_a_file_of_the_wrong_kind(tmp_path):
    with pytest.raises(FacelensError, match=r"only \.tflite"):
        load_backend(tmp_path / "m.onnx", "litert")
    with pytest.raises(BundleError, match=r"neither \.tflite nor \.onnx"):
        load_backend(tmp_path / "m.pb")
