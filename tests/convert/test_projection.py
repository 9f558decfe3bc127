"""Compact embeddings: the PCA convert fits, folded into the graph, run by edge unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convert.models import ModelError, load_backbone
from convert.projection import fit_pca, fold
from edge.api import FaceLens
from edge.base.numeric import l2_normalize
from edge.gallery.store import KEY_ENV
from edge.media.images import read_image
from edge.model.embedder import Embedder
from edge.model.pipeline import Pipeline


def anisotropic(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return (rng.standard_normal((n, dim)) * np.geomspace(5, 0.1, dim) + 3).astype(np.float32)


def test_pca_keeps_the_largest_variance_and_whitening_evens_it():
    rng = np.random.default_rng(0)
    features = anisotropic(rng, 400, 32)
    plain, white = fit_pca(features, 6), fit_pca(features, 6, whiten=True)
    np.testing.assert_allclose(plain.components @ plain.components.T, np.eye(6), atol=1e-5)
    assert 0.5 < plain.variance_kept < 1 and plain.variance_kept == white.variance_kept
    centred = l2_normalize(features) - plain.mean
    spread = np.var(centred @ plain.components.T, axis=0)
    assert (np.diff(spread) <= 1e-9).all()  # largest variance first
    whitened = np.var(centred @ white.components.T * white.scale, axis=0, ddof=1)
    np.testing.assert_allclose(whitened, 1, atol=0.01)
    assert plain.apply(features).shape == (400, 6)
    np.testing.assert_allclose(np.linalg.norm(plain.apply(features), axis=1), 1, atol=1e-5)


def test_pca_refuses_sizes_it_cannot_fit():
    features = anisotropic(np.random.default_rng(1), 20, 8)
    with pytest.raises(ModelError, match="between 1 and 7"):
        fit_pca(features, 8)
    with pytest.raises(ModelError, match="needs more than 30 faces"):
        fit_pca(anisotropic(np.random.default_rng(2), 20, 64), 30)


def test_the_folded_graph_computes_the_projection(tiny_model):
    backbone = load_backbone(tiny_model[0], input_spec=tiny_model[1])
    rng = np.random.default_rng(3)
    batch = rng.uniform(-1, 1, (40, *backbone.model.input.shape[1:])).astype(np.float32)
    raw = backbone.model.predict_on_batch(batch)
    projection = fit_pca(raw, 5, whiten=True)
    folded = fold(backbone, projection)
    assert folded.dim == 5 and folded.model_id() != backbone.model_id()
    np.testing.assert_allclose(
        folded.model.predict_on_batch(batch), projection.apply(raw), atol=1e-4
    )


def test_a_projected_bundle_says_so_and_every_artifact_outputs_the_compact_embedding(
    tiny_pca_bundle, tiny_bundle, lfw_dir
):
    m = tiny_pca_bundle.manifest
    pca = m.embedding_projection
    assert m.embedding_dim == tiny_pca_bundle.embedding_dim == 8
    assert pca.kind == "pca" and pca.from_dim == 32 and pca.dim == 8
    assert 0 < pca.variance_kept <= 1 and pca.excluded == m.eval.count
    assert pca.fitted_on.count == 80 and pca.fitted_on.detector == "yunet"
    assert m.name.endswith("-pca8") and m.failed == {}
    raw = json.loads((tiny_pca_bundle.path / "manifest.json").read_text())
    assert raw["embedding"]["projection"]["fitted_on"]["count"] == 80
    assert tiny_pca_bundle.fingerprint != tiny_bundle.fingerprint  # another embedding space
    photo = read_image(sorted((lfw_dir / "images" / "Tony_Blair").glob("*.jpg"))[0])
    pipeline = Pipeline.create(tiny_pca_bundle)
    crops = pipeline.cut(photo, pipeline.faces(photo))[1]
    outputs = {}
    for fmt in ("tflite-int8", "onnx-int8"):
        assert m.artifacts[fmt].fidelity.passed
        outputs[fmt] = Embedder(tiny_pca_bundle, fmt).embed(crops[:1])
        assert outputs[fmt].shape == (1, 8)
    assert float(outputs["tflite-int8"][0] @ outputs["onnx-int8"][0]) > 0.98


def test_edge_enrols_and_recognises_with_a_projected_bundle(
    tiny_pca_bundle, lfw_dir, tmp_path, monkeypatch
):
    monkeypatch.delenv(KEY_ENV, raising=False)
    photo = sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[0]
    with FaceLens(tiny_pca_bundle.path, tmp_path / "g.sqlite", threshold=0.9) as lens:
        lens.enroll("Colin Powell", photo)
        (who,) = lens.identify(photo)
        assert lens.matcher.index.kind == "exact"
    assert who.name == "Colin Powell" and who.score > 0.99
