"""Nearest-neighbour search over a gallery's unit embeddings: exact, or FAISS when large.

Exact search is one matrix product in numpy and needs nothing else. Past
:data:`APPROX_FROM` embeddings, and when ``faiss-cpu`` is installed (the ``index``
extra), ``auto`` switches to an inverted-file index: the gallery is cut into
``nlist`` cells by k-means, a query scans only the ``nprobe`` nearest cells in
4-bit product-quantised form (FAISS' SIMD "fast scan"), and the best candidates are
re-ranked with the exact float embeddings, so the scores returned are exact cosines
(galleries under :data:`IVF_PQ_FROM` keep float vectors in their cells).
``benchmarks/gallery.py`` measured where that pays and what it costs in recall.

An index lives in memory only: it is built from the decrypted embeddings when a
gallery is opened and is never written to disk (the gallery's encryption and
``forget`` would otherwise not cover it).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np

from edge.base.errors import FacelensError

log = logging.getLogger(__name__)

KINDS = ("auto", "exact", "flat", "ivf", "hnsw")
# Below this many embeddings exact search is a few milliseconds at most and IVF's
# k-means has too few points per cell to train on: stay exact.
APPROX_FROM = 50_000
IVF_PROBE_FRACTION = 0.3  # of the cells scanned per query: recall@1 0.977 at 0.2, 1.0 at 0.3 (100k)
IVF_PQ_FROM = 1_000  # smaller galleries keep float codes in their cells
IVF_CANDIDATES = 64  # fast-scan candidates re-ranked exactly per query
HNSW_NEIGHBOURS = 32
HNSW_EF_SEARCH = 128


class IndexUnavailable(FacelensError):
    """An approximate index was asked for but faiss-cpu is not installed."""


def _faiss() -> Any:
    # OpenMP threads that spin while waiting starve on a busy CPU: building an IVF index
    # of 60,000 embeddings took 51 s spinning vs 3.5 s sleeping on this 2-core machine
    # at load 12. Only the default: a user's own OMP_WAIT_POLICY wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import faiss
    except ImportError:
        raise IndexUnavailable(
            "an approximate gallery index needs faiss-cpu: `pip install facelens[index]`, "
            "or use --index exact"
        ) from None
    return faiss


def faiss_available() -> bool:
    """Whether ``faiss-cpu`` can be imported (imports it: call only when it will be used)."""
    try:
        _faiss()
    except IndexUnavailable:
        return False
    return True


def choose_kind(size: int, kind: str = "auto") -> str:
    """The index ``auto`` means for a gallery of ``size`` embeddings (others pass through)."""
    if kind not in KINDS:
        raise FacelensError(f"unknown index {kind!r}: choose one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    if size < APPROX_FROM:
        return "exact"
    if not faiss_available():
        log.warning(
            "%d embeddings: search is brute force; `pip install facelens[index]` for a "
            "FAISS index that is much faster at this size",
            size,
        )
        return "exact"
    return "ivf"


class SearchIndex:
    """The ``k`` most similar rows of a (N, D) unit matrix for each query: exact numpy."""

    kind = "exact"

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix

    def __len__(self) -> int:
        return len(self.matrix)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, D) unit queries -> (N, k) cosines, best first, and their row numbers.

        Rows are ``-1`` (and cosines ``-inf``) where the gallery has fewer than ``k``.
        """
        sims = queries @ self.matrix.T
        return _top_k(sims, np.arange(sims.shape[1])[None, :], k)

    def describe(self) -> dict[str, Any]:
        """What was built, for logs and benchmarks."""
        return {"kind": self.kind, "size": len(self)}

    def nbytes(self) -> int:
        """Memory held beyond the matrix it searches (none: exact search is the matrix)."""
        return 0


class FaissIndex(SearchIndex):
    """A FAISS index over the same matrix: ``flat`` (exact), ``ivf`` or ``hnsw``.

    ``nprobe``/``ef_search`` override the defaults (more: better recall, slower).
    """

    def __init__(
        self,
        matrix: np.ndarray,
        kind: str,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(matrix)
        faiss = _faiss()
        self.kind = kind
        n, dim = matrix.shape
        self._rerank = False
        if kind == "flat":
            self._index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efSearch = ef_search or HNSW_EF_SEARCH
        elif kind == "ivf":
            nlist = max(1, min(int(math.sqrt(n)), n // 40))  # >= 40 training points per cell
            # 4-bit PQ needs 16 training points per code: a small gallery keeps floats.
            pq = dim % 4 == 0 and n >= IVF_PQ_FROM
            codes = f"PQ{dim // 4}x4fs" if pq else "Flat"
            self._index = faiss.index_factory(
                dim, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT
            )
            rng = np.random.default_rng(seed)
            sample = matrix[np.sort(rng.choice(n, min(n, 64 * nlist), replace=False))]
            self._index.train(sample)
            self._index.nprobe = min(nlist, nprobe or max(1, round(IVF_PROBE_FRACTION * nlist)))
            self._index.parallel_mode = 1  # one query's cells split across threads
            self._rerank = pq
        else:
            raise FacelensError(f"unknown FAISS index {kind!r}: choose flat, ivf or hnsw")
        self._index.add(matrix)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        wanted = max(k, IVF_CANDIDATES) if self._rerank else k
        sims, rows = self._index.search(np.ascontiguousarray(queries, np.float32), wanted)
        if self._rerank:
            # Exact cosines of the candidates: approximate codes choose, float vectors score.
            exact = np.einsum("nkd,nd->nk", self.matrix[np.maximum(rows, 0)], queries)
            sims, rows = _top_k(np.where(rows >= 0, exact, -np.inf), rows, k)
        lost = rows[:, 0] < 0  # the probed cells held nothing: rare, answered exactly
        if lost.any():
            sims[lost], rows[lost] = super().search(queries[lost], k)
        return sims, rows

    def nbytes(self) -> int:
        return int(_faiss().serialize_index(self._index).nbytes)  # a copy in memory, not disk

    def describe(self) -> dict[str, Any]:
        info = {"kind": self.kind, "size": len(self)}
        if self.kind == "ivf":
            info.update(
                nlist=self._index.nlist,
                nprobe=self._index.nprobe,
                codes="pq-4bit" if self._rerank else "float",
                candidates=IVF_CANDIDATES if self._rerank else None,
            )
        elif self.kind == "hnsw":
            info.update(neighbours=HNSW_NEIGHBOURS, ef_search=self._index.hnsw.efSearch)
        return info


def build_index(matrix: np.ndarray, kind: str = "auto", **options: Any) -> SearchIndex:
    """A search index over (N, D) unit rows; ``kind`` as in :data:`KINDS` (see :func:`choose_kind`).

    ``options`` go to :class:`FaissIndex` (``nprobe``, ``ef_search``, ``seed``).
    """
    kind = choose_kind(len(matrix), kind)
    if kind == "exact" or not len(matrix):
        return SearchIndex(matrix)
    return FaissIndex(np.ascontiguousarray(matrix, np.float32), kind, **options)


def set_threads(threads: int | None) -> None:
    """FAISS' OpenMP threads for this process (``None``: leave its default, all cores)."""
    if threads is not None:
        _faiss().omp_set_num_threads(int(threads))


def _top_k(sims: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of ``sims`` per row (best first), padded with -inf / -1."""
    m = sims.shape[1]
    rows = np.broadcast_to(rows, sims.shape)
    if m > k:
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        sims, rows = np.take_along_axis(sims, part, 1), np.take_along_axis(rows, part, 1)
    order = np.argsort(-sims, axis=1, kind="stable")
    sims, rows = np.take_along_axis(sims, order, 1), np.take_along_axis(rows, order, 1)
    if sims.shape[1] < k:
        pad = k - sims.shape[1]
        sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
        rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
    return sims.astype(np.float32), rows.astype(np.int64)
