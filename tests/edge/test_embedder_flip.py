"""Flip test-time augmentation: a face and its mirror image, embedded and averaged."""

import numpy as np

from edge.base.numeric import l2_normalize
from edge.model.embedder import Embedder


def test_a_flipped_embedding_is_the_mean_of_the_face_and_its_mirror(tiny_bundle):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (90, 80, 3), dtype=np.uint8) for _ in range(11)]  # > 1 batch
    plain = Embedder(tiny_bundle, threads=1)
    flip = Embedder(tiny_bundle, threads=1, flip=True)
    mirrored = [c[:, ::-1] for c in crops]
    expected = l2_normalize(plain.embed(crops) + plain.embed(mirrored))
    np.testing.assert_allclose(flip.embed(crops), expected, atol=1e-5)
    # a face and its mirror image give one embedding; without flip they differ
    np.testing.assert_allclose(flip.embed(mirrored), flip.embed(crops), atol=1e-5)
    assert not np.allclose(plain.embed(mirrored), plain.embed(crops), atol=1e-3)
    assert flip.embed([]).shape == (0, tiny_bundle.embedding_dim)
