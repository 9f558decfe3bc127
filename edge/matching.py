"""Who is this? The nearest enrolled embedding by cosine, exact or through an index.

Small galleries are searched exactly with one matrix product; large ones through an
in-memory FAISS index (:mod:`edge.index`) when ``faiss-cpu`` is installed. Either way
a person's score is their best embedding's, and the interface is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.embedder import l2_normalize
from edge.index import SearchIndex, build_index


@dataclass(frozen=True)
class Match:
    """The best person for one face: ``name`` is ``None`` when below the threshold."""

    name: str | None
    score: float  # cosine similarity to the best person (even when rejected)
    nearest: str | None  # the best person, accepted or not


class Matcher:
    """Matches embeddings against a gallery; a person's score is their best embedding's.

    ``index``: ``auto`` (exact for small galleries, FAISS IVF past
    :data:`edge.index.APPROX_FROM` embeddings when installed), ``exact``, ``flat``,
    ``ivf`` or ``hnsw``; ``index_options`` go to :func:`edge.index.build_index`.
    """

    def __init__(
        self,
        names: list[str],
        matrix: np.ndarray,
        threshold: float,
        index: str = "auto",
        **index_options: Any,
    ) -> None:
        if len(names) != len(matrix):
            raise ValueError(f"{len(names)} names for {len(matrix)} embeddings")
        self.threshold = float(threshold)
        # Embeddings grouped by person, so a per-person max is one reduceat over columns.
        people, person_of_row = np.unique(np.asarray(names, dtype=str), return_inverse=True)
        order = np.argsort(person_of_row, kind="stable")
        self.people: list[str] = people.tolist()
        self._person_of_row = person_of_row[order]
        self._starts = np.searchsorted(self._person_of_row, np.arange(len(people)))
        self._ends = np.append(self._starts[1:], len(names))
        self._matrix = l2_normalize(matrix[order]) if names else np.zeros((0, 0), np.float32)
        self.index: SearchIndex = build_index(self._matrix, index, **index_options)

    def __len__(self) -> int:
        return len(self.people)

    def _check(self, embeddings: np.ndarray) -> np.ndarray:
        embeddings = np.atleast_2d(np.asarray(embeddings, np.float32))
        if self.people and embeddings.shape[1] != self._matrix.shape[1]:
            raise ValueError(
                f"embeddings have {embeddings.shape[1]} dims, the gallery {self._matrix.shape[1]}"
            )
        return embeddings

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, D) unit embeddings -> (N, people) best cosine per person (always exact)."""
        embeddings = self._check(embeddings)
        if not self.people:
            return np.zeros((len(embeddings), 0), np.float32)
        sims = embeddings @ self._matrix.T
        return np.maximum.reduceat(sims, self._starts, axis=1)

    def match(self, embeddings: np.ndarray) -> list[Match]:
        """The best person for each embedding, or ``name=None`` below the threshold."""
        embeddings = self._check(embeddings)
        if not self.people:
            return [Match(None, 0.0, None) for _ in range(len(embeddings))]
        _, rows = self.index.search(embeddings, 1)
        out = []
        for query, row in zip(embeddings, rows[:, 0].tolist(), strict=True):
            person = self._person_of_row[row]
            # The person's best embedding, exactly: an approximate index may have found
            # only one of their others.
            own = self._matrix[self._starts[person] : self._ends[person]]
            score = float(np.max(own @ query))
            nearest = self.people[person]
            out.append(Match(nearest if score >= self.threshold else None, score, nearest))
        return out
