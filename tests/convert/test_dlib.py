"""dlib's face ResNet: the .dat reader, the Keras rebuild, and proof they are one network."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from convert import load_backbone
from convert.models import DLIB_MODEL, USER_LICENCE, ModelError
from edge.model.dlib_file import DlibFormatError, find_model_file, read_dlib_net


@pytest.fixture(scope="module")
def dlib_model_file() -> Path:
    return find_model_file()


@pytest.fixture(scope="module")
def dlib_backbone():
    return load_backbone(DLIB_MODEL)


def test_reader_finds_dlibs_layer_list(dlib_model_file):
    net = read_dlib_net(dlib_model_file)
    kinds = [layer.kind for layer in net.layers]
    # dnn_face_recognition_ex.cpp: a 7x7 stem conv, 14 residual units of two 3x3 convs
    # (4 of them residual_down with an avg-pooled shortcut), a global pool and a 128-d fc
    assert kinds.count("con") == 29 and kinds.count("affine") == 29
    assert kinds.count("add_prev") == 14 and kinds.count("avg_pool") == 5
    assert kinds[:4] == ["con", "affine", "relu", "max_pool"] and kinds[-2:] == ["avg_pool", "fc"]
    assert net.input["size"] == (150, 150)
    np.testing.assert_allclose(net.input["mean_rgb"], (122.782, 117.001, 104.298), atol=1e-4)
    assert net.loss["kind"] == "loss_metric"
    assert net.loss["distance_threshold"] == pytest.approx(0.6)  # dlib's "same person" radius
    stem = net.layers[0]
    assert stem.weights["kernel"].shape == (32, 3, 7, 7)  # NCHW filters, as dlib stores them
    assert stem.config["stride"] == (2, 2) and stem.config["padding"] == (0, 0)
    assert net.layers[-1].weights["kernel"].shape == (256, 128)


def test_keras_rebuild_has_named_layers_and_the_dlib_input_contract(dlib_backbone):
    model, spec = dlib_backbone.model, dlib_backbone.input_spec
    assert model.input.shape[1:] == (150, 150, 3) and dlib_backbone.dim == 128
    for name in ("stem_conv", "stage1_unit1_conv1", "stage5_unit1_add", "embedding"):
        assert model.get_layer(name) is not None
    assert model.get_layer(dlib_backbone.source["gradcam_layer"]).output.shape[1:3] == (8, 8)
    assert spec.color == "RGB" and spec.scale == (1 / 256,) * 3
    assert spec.crop.kind == "landmarks" and spec.crop.template_size == (150, 150)
    assert "public domain" in dlib_backbone.source["licence"]
    assert dlib_backbone.source["dlib"]["loss"]["distance_threshold"] == pytest.approx(0.6)


def test_keras_rebuild_computes_dlibs_descriptors_on_real_faces(
    dlib_backbone, dlib_model_file, lfw_dir, yunet_path
):
    """The equivalence proof: dlib itself and the Keras rebuild on the same 150-px chips."""
    import dlib

    from convert.dlib_chips import DlibChipper
    from edge.faces.detect import create_detector
    from edge.faces.dominant import rank_faces
    from edge.media.images import read_image

    detector, chipper = create_detector(yunet_path), DlibChipper()
    photos = sorted((lfw_dir / "images").glob("*/*_0001.jpg"))[::150][:16]
    chips = []
    for path in photos:
        image = read_image(path)
        chips.append(chipper.chip(image, rank_faces(detector.detect(image), image.shape)[0])[0])
    assert len(chips) == 16
    reference = dlib.face_recognition_model_v1(str(dlib_model_file))
    want = np.array([reference.compute_face_descriptor(c[..., ::-1].copy()) for c in chips])
    spec = dlib_backbone.input_spec
    got = dlib_backbone.model.predict(np.stack([spec.normalize(c) for c in chips]), verbose=0)
    cos = np.sum(want * got, axis=1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() >= 0.9999, f"cosine to dlib min {cos.min():.6f}"
    # not only the direction: dlib's raw descriptors (compared by euclidean distance 0.6)
    np.testing.assert_allclose(got, want, atol=1e-4)
    # and the faces differ: a constant output would pass the checks above
    assert np.linalg.norm(want[0] - want[1]) > 0.3


def test_not_a_dlib_network_is_refused_with_the_file_named(tmp_path, dlib_model_file):
    junk = tmp_path / "photo.dat"
    junk.write_bytes(b"\xff\xd8\xff\xe0 a JPEG, not a network")
    with pytest.raises(DlibFormatError, match=r"photo\.dat is not a dlib network"):
        read_dlib_net(junk)
    cut = tmp_path / "truncated.dat"
    cut.write_bytes(dlib_model_file.read_bytes()[:500_000])
    with pytest.raises(DlibFormatError, match="ends early"):
        read_dlib_net(cut)
    with pytest.raises(ModelError, match="does not exist"):
        load_backbone(DLIB_MODEL, weights=str(tmp_path / "missing.dat"))


def test_a_missing_model_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "face_recognition_models" else real(name, *a),
    )
    with pytest.raises(DlibFormatError, match=r"models is not installed.*--weights PATH"):
        find_model_file()


@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")  # Keras' own numpy 2 internals
def test_every_model_states_its_licence(tiny_model):
    model, spec = tiny_model
    assert load_backbone(model, input_spec=spec).source["licence"] == USER_LICENCE
    assert "Apache-2.0" in load_backbone("vgg16", weights="none").source["licence"]
