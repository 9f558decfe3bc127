"""A default match threshold for the bundle, from genuine and impostor pairs when known."""

from __future__ import annotations

import numpy as np

from edge.calibrate import threshold_at_far
from edge.embedder import l2_normalize
from edge.manifest import DEFAULT_THRESHOLD, ThresholdChoice

TARGET_FAR = 1e-2
MIN_PAIRS = 10  # fewer genuine pairs than this cannot place a threshold usefully


def choose_threshold(
    features: np.ndarray, identities: list[str] | None, native_distance: float | None = None
) -> ThresholdChoice:
    """The cosine at which 1 % of impostor pairs would match (FAR 1e-2), with how it was got.

    Without identities (or too few genuine pairs) a documented default is returned and
    ``how`` tells the user to calibrate on their own gallery. ``native_distance``: the
    model's own rule (a euclidean distance on raw features, as dlib's 0.6), measured on
    the same pairs and recorded beside the cosine.
    """
    if identities is not None:
        emb = l2_normalize(features)
        sims = emb @ emb.T
        ids = np.asarray(identities)
        upper = np.triu(np.ones(sims.shape, bool), k=1)
        same = (ids[:, None] == ids[None, :]) & upper
        genuine, impostor = sims[same], sims[~same & upper]
        if len(genuine) >= MIN_PAIRS and len(impostor) >= MIN_PAIRS:
            cosine = threshold_at_far(genuine, impostor, TARGET_FAR)
            tar = float(np.mean(genuine >= cosine))
            native = None
            if native_distance is not None:
                raw = np.asarray(features, np.float64)
                dist = np.linalg.norm(raw[:, None] - raw[None, :], axis=-1)
                native = {
                    "rule": f"euclidean distance < {native_distance:g} on raw features",
                    "far": round(float(np.mean(dist[~same & upper] < native_distance)), 4),
                    "tar": round(float(np.mean(dist[same] < native_distance)), 4),
                }
            return ThresholdChoice(
                cosine=round(cosine, 4),
                how=(
                    f"FAR {TARGET_FAR:g} on the float model's held-out faces: {len(genuine)} "
                    f"genuine / {len(impostor)} impostor pairs (identity = parent folder); "
                    f"TAR there {tar:.3f}. Refine with `edge calibrate` on your own people."
                ),
                far=TARGET_FAR,
                tar=round(tar, 4),
                native=native,
            )
    return ThresholdChoice(
        cosine=DEFAULT_THRESHOLD,
        how=(
            "default (the held-out images carry too few identities to measure one): "
            "run `edge calibrate` on photos of your own people"
        ),
    )
