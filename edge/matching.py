"""Who is this? Cosine similarity against the whole gallery in one matrix product."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.embedder import l2_normalize
from edge.errors import FacelensError


def check_threshold(value: float, source: str = "--threshold") -> float:
    """A cosine threshold in (0, 1], or :class:`FacelensError` naming ``source``.

    Embeddings are unit vectors, so a cosine is at most 1; at 0 or below every stranger
    would be named (nan would name no one). Calibrated values lie well inside the range.
    """
    value = float(value)
    if not (math.isfinite(value) and 0 < value <= 1):
        raise FacelensError(
            f"{source} {value} is not a cosine threshold: give a number above 0 and at most 1 "
            "(e.g. 0.6), or run `edge calibrate` to choose one"
        )
    return value


@dataclass(frozen=True)
class Match:
    """The best person for one face: ``name`` is ``None`` when below the threshold."""

    name: str | None
    score: float  # cosine similarity to the best person (even when rejected)
    nearest: str | None  # the best person, accepted or not


class Matcher:
    """Matches embeddings against a gallery; a person's score is their best embedding's."""

    def __init__(self, names: list[str], matrix: np.ndarray, threshold: float) -> None:
        if len(names) != len(matrix):
            raise ValueError(f"{len(names)} names for {len(matrix)} embeddings")
        self.threshold = check_threshold(threshold, "the match threshold")
        order = np.argsort(np.asarray(names, dtype=object), kind="stable") if names else []
        sorted_names = [names[i] for i in order]
        # Embeddings grouped by person, so a per-person max is one reduceat over columns.
        self.people = sorted(set(names))
        self._starts = np.searchsorted(np.asarray(sorted_names, dtype=object), self.people)
        self._matrix = l2_normalize(matrix[order]) if names else np.zeros((0, 0), np.float32)

    def __len__(self) -> int:
        return len(self.people)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, D) unit embeddings -> (N, people) best cosine per person."""
        embeddings = np.atleast_2d(np.asarray(embeddings, np.float32))
        if not self.people:
            return np.zeros((len(embeddings), 0), np.float32)
        if embeddings.shape[1] != self._matrix.shape[1]:
            raise ValueError(
                f"embeddings have {embeddings.shape[1]} dims, the gallery {self._matrix.shape[1]}"
            )
        sims = embeddings @ self._matrix.T
        return np.maximum.reduceat(sims, self._starts, axis=1)

    def match(self, embeddings: np.ndarray) -> list[Match]:
        """The best person for each embedding, or ``name=None`` below the threshold."""
        scores = self.scores(embeddings)
        if not self.people:
            return [Match(None, 0.0, None) for _ in range(len(scores))]
        best = scores.argmax(axis=1)
        out = []
        for row, j in zip(scores, best, strict=True):
            score = float(row[j])
            nearest = self.people[j]
            out.append(Match(nearest if score >= self.threshold else None, score, nearest))
        return out
