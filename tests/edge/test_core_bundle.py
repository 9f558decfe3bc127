"""The bundle contract: edge refuses what it cannot trust, with advice."""

import json
import re

import numpy as np
import pytest

from edge.base.errors import BundleError, FacelensError
from edge.model.backends import load_backend
from edge.model.bundle import FORMAT_VERSION, Bundle, sha256_path
from edge.model.manifest import Manifest
from edge.model.preprocess import InputSpec


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
    with pytest.raises(BundleError, match=r"no model bundle at .*edge models install dlib-resnet"):
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
    if runtime == "onnxruntime":
        pytest.importorskip("onnxruntime", reason="a Pi with LiteRT only has no onnxruntime")
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(BundleError, match="cannot load"):
        load_backend(path, runtime)


def test_a_runtime_refuses_a_file_of_the_wrong_kind(tmp_path):
    with pytest.raises(FacelensError, match=r"only \.tflite"):
        load_backend(tmp_path / "m.onnx", "litert")
    with pytest.raises(BundleError, match=r"neither \.tflite nor \.onnx"):
        load_backend(tmp_path / "m.pb")


def _manifest_with(tmp_path, edit):
    """A valid test bundle whose parsed manifest.json ``edit`` then mutates in place."""
    root = _write_bundle(tmp_path / "m")
    manifest = json.loads((root / "manifest.json").read_text())
    edit(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _set(path: str, value):
    def edit(m):
        *parents, last = path.split(".")
        for key in parents:
            m = m[key]
        m[last] = value

    return edit


def _delete(path: str):
    def edit(m):
        *parents, last = path.split(".")
        for key in parents:
            m = m[key]
        del m[last]

    return edit


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_delete("embedding.dim"), r"embedding\.dim is missing"),
        (_set("embedding.dim", "many"), r"embedding\.dim must be a whole number"),
        (_set("embedding.dim", 0), r"embedding\.dim must be at least 1"),
        (_set("embedding", [8]), r"embedding must be an object, not a list"),
        (_set("artifacts", ["model_int8.tflite"]), r"artifacts must be an object, not a list"),
        (_set("artifacts", {}), r"artifacts is empty"),
        (_set("artifacts.tflite-int8", "model_int8.tflite"), r"artifacts\.tflite-int8 must be"),
        (_delete("artifacts.tflite-int8.file"), r"artifacts\.tflite-int8\.file is missing"),
        (_set("artifacts.tflite-int8.file", "../x"), r"artifacts\.tflite-int8\.file must be"),
        (_delete("artifacts.tflite-int8.sha256"), r"artifacts\.tflite-int8\.sha256 is missing"),
        (_set("threshold", 0.5), r"threshold must be an object, not the number 0\.5"),
        (_set("threshold.cosine", "high"), r"threshold\.cosine must be a finite number"),
        (_set("threshold.cosine", 7), r"threshold\.cosine must be a cosine in \[-1, 1\]"),
        (_set("input.height", 0), r"input: size 0x224 must be 1 to 4096"),
        (_set("input.width", -3), r"input: size 224x-3"),
        (_set("input.mean", [1.0, 2.0]), r"input: mean \[1\.0, 2\.0\] must be 3 finite"),
        (_set("input.scale", [1, 1, 1, 1]), r"input: scale .* must be 3 finite"),
        (_set("input.crop.margin_px", 10**9), r"input: crop\.margin_px 1000000000 must be in"),
        (_set("input.crop.margin_frac", -1), r"input: crop\.margin_frac -1\.0 must be in"),
        (_set("input", "224x224"), r"input must be an object, not a string"),
        (_delete("model_id"), r"model_id is missing"),
        (_set("name", 3), r"name must be a string, not the number 3"),
        (_set("source", {"weights": "imagenet"}), r"source\.backbone is missing"),
    ],
)
def test_malformed_manifest_fields_are_one_line_errors_naming_file_and_field(tmp_path, edit, field):
    root = _manifest_with(tmp_path, edit)
    with pytest.raises(BundleError) as caught:
        Bundle.load(root)
    message = str(caught.value)
    assert message.startswith(f"{root / 'manifest.json'}: ") and "\n" not in message
    assert re.search(field, message), message
    assert message.endswith("rebuild the bundle with `python -m convert`")


@pytest.mark.parametrize("top", [[1, 2], "text", 3, None])
def test_a_manifest_that_is_not_an_object_is_refused(tmp_path, top):
    root = tmp_path / "b"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps(top))
    with pytest.raises(BundleError, match="format_version None"):
        Bundle.load(root)


def test_the_typed_manifest_round_trips_and_keeps_unknown_source_keys(tmp_path):
    root = _write_bundle(
        tmp_path / "b", source={"backbone": "x.keras", "weights": "sha256:ab", "licence": "MIT",
                                "projection": {"pca": 128}}
    )  # fmt: skip
    m = Manifest.load(root)
    assert m.source.licence == "MIT" and m.source.extra == {"projection": {"pca": 128}}
    assert Manifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    m.save(tmp_path / "copy.json")
    assert Manifest.load(tmp_path / "copy.json") == m
