"""A default match threshold for the bundle, from genuine and impostor pairs when known."""

from __future__ import annotations

import numpy as np

from edge.base.numeric import l2_normalize
from edge.gallery.openset import threshold_at_far
from edge.model.manifest import DEFAULT_THRESHOLD, ThresholdChoice

TARGET_FAR = 1e-2
MIN_PAIRS = 10  # fewer genuine pairs than this cannot place a threshold usefully


def choose_threshold(
    features: np.ndarray, identities: list[str] | None, native_distance: float | None = None
) -> ThresholdChoice:
    """The cosine at which 1 % of impostor pairs would match (FAR 1e-2), with how it was got.

    ``native_distance``: the model's own rule (a euclidean distance on its descriptors, as
    dlib's 0.6), measured on the same pairs and recorded beside the cosine. Without
    identities (or with too few genuine pairs) nothing can be measured: the model's own
    rule is taken as a cosine when it has one, else a placeholder with a ``warning`` that
    says it is not calibrated and how to calibrate.
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
        why = (
            f"the held-out faces hold {len(genuine)} pair(s) of photos of one person, "
            f"fewer than the {MIN_PAIRS} a threshold needs"
        )
    else:
        why = "the held-out faces carry no identities (photos are not in one folder per person)"
    if native_distance is not None:
        return native_threshold(native_distance, features, why)
    return ThresholdChoice(
        cosine=DEFAULT_THRESHOLD,
        how=f"a placeholder, not calibrated: {why}; run `edge calibrate`",
        warning=(
            f"the bundle's threshold (cosine {DEFAULT_THRESHOLD:g}) is NOT calibrated for this "
            f"model: {why}. Before trusting its names, calibrate on labelled photos: "
            "`edge calibrate --pairs PAIRS.csv --images DIR --bundle BUNDLE` (or rebuild with "
            "--eval holding several photos of each of several people, one folder each)"
        ),
    )


def native_threshold(distance: float, features: np.ndarray, why: str) -> ThresholdChoice:
    """The model's own rule, euclidean ``distance`` on its raw descriptors, as a cosine.

    Two descriptors of norm ``n`` are ``|a - b|^2 = 2 n^2 (1 - cos)`` apart, so
    ``|a - b| < d`` is ``cos > 1 - d^2 / (2 n^2)``, taken at the held-out faces' median
    norm. dlib's descriptors are not unit vectors (norms about 1.3-1.6 on LFW), so its
    0.6 is a cosine near 0.91, not the 0.82 it would be on unit vectors.
    """
    norm = float(np.median(np.linalg.norm(np.asarray(features, np.float64), axis=1)))
    cosine = round(1.0 - distance**2 / (2.0 * norm**2), 4)
    return ThresholdChoice(
        cosine=cosine,
        how=(
            f"the model's own rule, euclidean distance < {distance:g} on raw features, as a "
            f"cosine at their median norm {norm:.3f} on the held-out faces (1 - d^2 / 2n^2 = "
            f"{cosine:g}); not measured here: {why}. Refine with `edge calibrate` on your "
            "own people."
        ),
        native={
            "rule": f"euclidean distance < {distance:g} on raw features",
            "norm": round(norm, 4),
        },
    )
