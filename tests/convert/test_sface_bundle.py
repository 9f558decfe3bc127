"""OpenCV's SFace through the whole convert pipeline and edge's runtime."""

from __future__ import annotations

import pytest

from edge.faces.detect import create_detector
from edge.faces.dominant import rank_faces
from edge.media.images import read_image
from edge.model.bundle import ARTIFACT_FILES
from edge.model.embedder import Embedder
from edge.model.preprocess import cut_face


def test_every_format_is_built_faithful_and_says_its_licence(sface_bundle):
    m = sface_bundle.manifest
    assert set(sface_bundle.formats) == set(ARTIFACT_FILES), m.failed
    for fmt, artifact in m.artifacts.items():
        assert artifact.fidelity.passed and len(artifact.sha256) == 64, fmt
    first_block = ["conv_1", "conv_1_relu", "conv_2_dw", "conv_2_dw_relu", "conv_2", "conv_2_relu"]
    for fmt in ("tflite-int8", "onnx-int8"):
        # convert's default floor: SFace's first block stays float in INT8
        assert m.artifacts[fmt].fidelity.floor == 0.98
        assert m.artifacts[fmt].fidelity.cosine_min >= 0.98
        assert m.artifacts[fmt].quantization["calibration"]["count"] == 200
        assert m.artifacts[fmt].quantization["float_layers"] == first_block
    assert m.artifacts["tflite-int8"].quantization["float_ops"] == ["PRELU"]
    # TFLite's INT8 ranges are narrowed to a percentile (convert.ranges); ONNX keeps min/max
    assert "99.9999th percentile" in m.artifacts["tflite-int8"].quantization["activation_ranges"]
    assert "activation_ranges" not in m.artifacts["onnx-int8"].quantization
    for fmt in ("keras", "onnx", "tflite-fp16"):
        assert m.artifacts[fmt].fidelity.cosine_min >= 0.9999
    assert m.source.backbone == "sface" and m.source.licence.startswith("Apache-2.0: OpenCV Zoo")
    assert "IEEE TIP 2021" in m.source.provenance and m.source.weights.startswith("sha256:")
    assert m.input.crop.kind == "landmarks" and m.input.color == "RGB" and m.embedding_dim == 128
    assert "FAR" in m.threshold.how and 0 < m.threshold.cosine < 1


@pytest.mark.parametrize("shipped", ["sface_bundle", "dlib_bundle"])
def test_int8_on_the_edge_runtime_tells_people_apart(shipped, request, lfw_dir, yunet_path):
    """Both shipped face models, INT8 on edge's runtime: genuine pairs above the
    bundle's threshold, impostors below."""
    bundle = request.getfixturevalue(shipped)
    detector = create_detector(yunet_path)
    names = [("Colin_Powell", 38), ("Colin_Powell", 40), ("Serena_Williams", 1)]
    names.append(("Serena_Williams", 3))
    crops = []
    for person, n in names:
        image = read_image(lfw_dir / "images" / person / f"{person}_{n:04d}.jpg")
        face = rank_faces(detector.detect(image), image.shape)[0]
        crops.append(cut_face(image, bundle.input_spec, face))
    emb = Embedder(bundle, "tflite-int8", threads=2).embed(crops)
    sims = emb @ emb.T
    genuine = min(sims[0, 1], sims[2, 3])
    impostor = max(sims[0, 2], sims[0, 3], sims[1, 2], sims[1, 3])
    assert genuine > bundle.threshold > impostor, (genuine, impostor)
