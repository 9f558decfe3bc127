"""What a heatmap explains: an ImageNet class, or the similarity to a reference embedding.

A :class:`Target` turns model outputs (N, D) into one score per image. Two kinds
cover both cases: ``dot`` (a class is a one-hot weight vector over the class
probabilities) and ``cosine`` (the similarity to a reference embedding: another
image, an enrolled person, or the image itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.base.errors import GalleryError
from edge.base.numeric import l2_normalize
from edge.gallery.store import Gallery
from edge.model.bundle import Bundle
from edge.model.embedder import embedding_fingerprint, made_with_flip


@dataclass(frozen=True)
class Target:
    """``score = dot(features, weights)`` or ``cosine(features, weights)``, per image.

    ``weights`` is (D,) for one target shared by every image, or (N, D) for one per
    image. ``self_reference`` marks a reference that is the image's own embedding:
    the cosine's gradient vanishes there, so Grad-CAM uses the projection onto the
    reference direction instead (occlusion still measures the drop in cosine).
    """

    kind: str
    weights: np.ndarray
    label: str
    self_reference: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("dot", "cosine"):
            raise ValueError(f"unknown target kind {self.kind!r}: use 'dot' or 'cosine'")

    def score(self, features: np.ndarray) -> np.ndarray:
        """(N, D) model outputs -> (N,) scores."""
        f = np.asarray(features, np.float64).reshape(len(features), -1)
        w = np.broadcast_to(np.asarray(self.weights, np.float64), f.shape)
        dot = np.sum(f * w, axis=1)
        if self.kind == "dot":
            return dot.astype(np.float32)
        norms = np.linalg.norm(f, axis=1) * np.linalg.norm(w, axis=1)
        return (dot / np.maximum(norms, 1e-12)).astype(np.float32)

    def row(self, i: int) -> Target:
        """The target of image ``i`` alone (the same target when it is shared)."""
        w = np.asarray(self.weights)
        return Target(self.kind, w[i] if w.ndim == 2 else w, self.label, self.self_reference)


def class_target(index: int | np.ndarray, num_classes: int, label: str | None = None) -> Target:
    """The probability of class ``index`` (one per image when an array is given)."""
    idx = np.atleast_1d(np.asarray(index, int))
    weights = np.eye(num_classes, dtype=np.float32)[idx]
    return Target("dot", weights if np.ndim(index) else weights[0], label or f"class {index}")


def top1_target(probabilities: np.ndarray) -> Target:
    """Each image's own top-1 class (the notebook's default)."""
    probabilities = np.asarray(probabilities).reshape(len(probabilities), -1)
    top = probabilities.argmax(axis=1)
    label = "top-1 class " + ",".join(str(i) for i in top)
    return class_target(top, probabilities.shape[1], label)


def similarity_target(reference: np.ndarray, label: str = "reference") -> Target:
    """Cosine to ``reference`` (D,) or one reference per image (N, D)."""
    return Target("cosine", np.asarray(reference, np.float32), f"cosine to {label}")


def self_target(features: np.ndarray) -> Target:
    """Cosine of each image's embedding to its own unoccluded embedding."""
    return Target(
        "cosine", np.asarray(features, np.float32), "cosine to itself", self_reference=True
    )


def person_target(gallery: Path | str, bundle: Bundle, person: str) -> Target:
    """Cosine to an enrolled person: the mean of their embeddings in an ``edge`` gallery.

    A gallery enrolled with flip TTA holds face-and-mirror averages of the same bundle:
    their mean is still the person's direction, so it serves as the target too.
    """
    store = Gallery(gallery)
    made = store.fingerprint()
    flip = made is not None and made_with_flip(made)
    enrolled = store.load(embedding_fingerprint(bundle.fingerprint, flip), bundle.name)
    rows = [i for i, name in enumerate(enrolled.names) if name == person]
    if not rows:
        people = sorted(set(enrolled.names)) or ["nobody yet"]
        raise GalleryError(
            f"{person!r} is not enrolled in {gallery} (enrolled: {', '.join(people)}); "
            "enrol them with `edge enroll` or pick another person"
        )
    vectors = enrolled.matrix[rows]
    vectors = l2_normalize(vectors)
    return similarity_target(vectors.mean(axis=0), f"enrolled {person}")
