"""The one mapping of facelens' score onto the clients' [0, 1] scale."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the compatible APIs are part of edge serve (serve extra)")

from edge.service.http.compat.scores import (
    AT_THRESHOLD,
    BELOW,
    client_score,
    named_score,
)


@pytest.mark.parametrize("threshold", [0.2, 0.363, 0.5, 0.6, 0.9])
def test_increasing_in_the_cosine_and_empty_between_the_clients_thresholds(threshold):
    cosines = np.linspace(-1, 1, 2001)  # CompreFace's face-to-face verification
    scores = np.array([client_score(c, threshold, lowest=-1.0) for c in cosines])
    assert np.all(np.diff(scores) >= 0) and scores[0] == 0 and scores[-1] == 1
    assert not np.any((scores >= BELOW) & (scores < AT_THRESHOLD))  # nothing in the band
    assert client_score(threshold, threshold, lowest=-1.0) == AT_THRESHOLD
    # every usual client threshold splits faces exactly where facelens does
    for client in (0.45, 0.6, 0.67, 0.7):
        assert np.array_equal(scores >= client, cosines >= threshold)


def test_a_named_face_is_never_reported_below_the_band():
    assert named_score(0.1, 0.5) == AT_THRESHOLD  # an open-set rule named it: keep it named
    assert named_score(0.75, 0.5) == client_score(0.75, 0.5) == 0.85


@pytest.mark.parametrize("decision", [0.3, 0.5, 0.75])
def test_the_confidence_unit_keeps_the_clients_thresholds(decision):
    confidences = np.linspace(0, 1, 1001)  # facelens' score, named at `decision`
    scores = np.array([client_score(c, decision) for c in confidences])
    assert np.all(np.diff(scores) >= 0) and scores[0] == 0 and scores[-1] == 1
    for client in (0.45, 0.6, 0.67, 0.7):
        assert np.array_equal(scores >= client, confidences >= decision)
