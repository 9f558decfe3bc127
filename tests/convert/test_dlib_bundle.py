"""dlib's face ResNet through the whole convert pipeline and edge's runtime."""

from __future__ import annotations

import numpy as np
import pytest

from edge.model.bundle import ARTIFACT_FILES
from edge.model.dlib_graph import DLIB_TEMPLATE_150


def test_every_format_is_built_faithful_and_says_its_licence(dlib_bundle):
    m = dlib_bundle.manifest
    assert set(dlib_bundle.formats) == set(ARTIFACT_FILES), m.failed
    for fmt, artifact in m.artifacts.items():
        assert artifact.fidelity.passed and len(artifact.sha256) == 64, fmt
    for fmt in ("tflite-int8", "onnx-int8"):
        assert m.artifacts[fmt].fidelity.cosine_min >= 0.99
        assert m.artifacts[fmt].quantization["calibration"]["count"] == 60
    assert m.source.backbone == "dlib-resnet" and "public domain" in m.source.licence
    assert "7,485 identities" in m.source.provenance and m.source.weights.startswith("sha256:")
    assert m.source.extra["dlib"]["loss"]["distance_threshold"] == pytest.approx(0.6)
    crop = m.input.crop
    assert crop.kind == "landmarks" and crop.template_size == (150, 150)
    np.testing.assert_allclose(crop.template, DLIB_TEMPLATE_150)
    assert m.input.color == "RGB" and m.embedding_dim == 128
    # the cosine chosen from data, beside what dlib's own euclidean 0.6 gives on those pairs
    assert "FAR" in m.threshold.how and 0 < m.threshold.cosine < 1
    assert m.threshold.native["rule"].startswith("euclidean distance < 0.6")
    assert 0 <= m.threshold.native["far"] <= 1 and 0 <= m.threshold.native["tar"] <= 1
