"""The bundles convert builds: every format present, verified, run in its runtime, faithful."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.base.numeric import l2_normalize
from edge.faces.detect import create_detector
from edge.faces.dominant import dominant_face
from edge.model.bundle import ARTIFACT_FILES, RUNTIME_FORMATS, Bundle
from edge.model.embedder import Embedder
from edge.model.manifest import Manifest
from edge.model.preprocess import InputSpec, cut_face


def _faces(lfw_dir, spec: InputSpec, people: list[tuple[str, int]]) -> list[np.ndarray]:
    """Crops of the k-th photo (sorted) of each named person, cut as edge cuts them."""
    import cv2

    detector, crops = create_detector(), []
    for name, k in people:
        path = sorted((lfw_dir / "images" / name).glob("*.jpg"))[k]
        image = cv2.imread(str(path))
        faces = detector.detect(image)
        crops.append(cut_face(image, spec, faces[dominant_face(faces, image.shape)]))
    return crops


PEOPLE = [
    (name, 0)
    for name in (
        "Colin_Powell",
        "Tony_Blair",
        "Serena_Williams",
        "Gerhard_Schroeder",
        "Ariel_Sharon",
    )
]


def test_tiny_bundle_holds_every_format_with_its_measurements(tiny_bundle: Bundle, tiny_model):
    m = tiny_bundle.manifest
    assert m.format_version == 1
    assert set(tiny_bundle.formats) == set(ARTIFACT_FILES)
    assert m.failed == {}
    assert (m.embedding_dim, m.embedding_normalize) == (32, "l2")
    assert m.source.gradcam_layer == "conv_last"
    spec = json.loads(tiny_model[1].read_text())
    assert tiny_bundle.input_spec == InputSpec.from_dict(spec)
    assert len(m.model_id) == 64
    for fmt in ARTIFACT_FILES:
        entry = tiny_bundle.artifact(fmt)
        tiny_bundle.artifact_path(fmt)  # raises if the sha256 differs
        assert entry.bytes > 0 and entry.seconds >= 0
        fid = entry.fidelity
        assert fid.passed and 0.98 <= fid.cosine_min <= fid.cosine_mean <= 1.0 + 1e-6
        assert fid.eval_count == m.eval.count == 20
    for fmt in ("tflite-int8", "onnx-int8"):
        q = tiny_bundle.artifact(fmt).quantization
        assert q["per_channel"] and q["weights"] == q["activations"] == "int8"
        assert q["calibration"]["count"] == m.calibration.count == 30
    assert tiny_bundle.artifact("onnx").quantization is None
    assert m.calibration.detector == "yunet"
    # what convert wrote reads back as the same typed manifest
    assert Manifest.from_dict(m.to_dict()) == m


def test_every_runtime_artifact_matches_the_float_model_through_edge(tiny_bundle, lfw_dir):
    import keras

    crops = _faces(lfw_dir, tiny_bundle.input_spec, PEOPLE)
    reference = Embedder(tiny_bundle, "onnx").prepare(crops)
    float_model = keras.saving.load_model(tiny_bundle.artifact_path("keras"))
    expected = l2_normalize(float_model.predict_on_batch(reference))
    for fmt in RUNTIME_FORMATS:
        # a batch of 5: the ONNX batch dimension is dynamic, TFLite resizes
        got = Embedder(tiny_bundle, fmt, batch_size=5).embed(crops)
        assert got.shape == (5, 32)
        cos = np.sum(got * expected, axis=1)
        assert cos.min() > 0.98, f"{fmt}: {cos}"


def test_onnx_artifacts_take_any_batch_size(tiny_bundle):
    import onnx

    for fmt in ("onnx", "onnx-int8"):
        model = onnx.load(str(tiny_bundle.artifact_path(fmt)))
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        assert any(op.domain in ("", "ai.onnx") for op in model.opset_import if op.version == 17)


def test_faceres_int8_is_faithful_and_still_recognises_people(faceres_bundle, lfw_dir):
    m = faceres_bundle.manifest
    assert set(faceres_bundle.formats) == set(ARTIFACT_FILES)
    for fmt in ("tflite-int8", "onnx-int8"):
        assert m.artifacts[fmt].fidelity.cosine_mean >= 0.99
    # genuine pairs score above impostors through the INT8 model (real recognition)
    pairs = [
        ("Colin_Powell", 0),
        ("Colin_Powell", 1),
        ("Serena_Williams", 0),
        ("Serena_Williams", 2),
    ]
    crops = _faces(lfw_dir, faceres_bundle.input_spec, pairs)
    emb = Embedder(faceres_bundle, "tflite-int8").embed(crops)
    sims = emb @ emb.T
    genuine = min(sims[0, 1], sims[2, 3])
    impostor = max(sims[0, 2], sims[0, 3], sims[1, 2], sims[1, 3])
    assert genuine > faceres_bundle.threshold > impostor
    assert "FAR" in m.threshold.how


@pytest.mark.slow
def test_full_vgg16_untrained_bundle_meets_the_targets(vgg16_bundle):
    from convert.models import VGG16_LICENCES

    m = vgg16_bundle.manifest
    assert set(vgg16_bundle.formats) == set(ARTIFACT_FILES), m.failed
    assert m.embedding_dim == 7 * 7 * 512
    assert m.source.to_dict() == {
        "backbone": "vgg16",
        "weights": "untrained",
        "output_layer": "block5_pool",
        "seed": 0,
        "gradcam_layer": "block5_conv3",
        "licence": VGG16_LICENCES["none"],
    }
    assert "UNTRAINED" in m.warning
    assert m.artifacts["tflite-int8"].bytes <= 15e6
    for fmt in ("tflite-int8", "onnx-int8"):
        assert m.artifacts[fmt].fidelity.cosine_min >= 0.99
