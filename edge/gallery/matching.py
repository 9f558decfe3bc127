"""Who is this? Cosine similarity against the gallery (exact or indexed), and open-set decisions.

Small galleries are searched exactly with one matrix product; large ones through an
in-memory FAISS index (:mod:`edge.gallery.index`) when ``faiss-cpu`` is installed. Either way
a person's score is their best embedding's.

Most faces a doorbell sees belong to nobody in the gallery, so "the closest person"
is not an answer. With an :class:`OpenSet` rule (what ``edge calibrate`` stores) a
best-person cosine is first put on a common scale against a *cohort* of impostor
faces (no enrolled person's), then accepted only above a threshold that knows how
many people are enrolled and only when it beats the runner-up by a margin:

- **Score normalisation** (Auckenthaler et al., "Score normalization for
  text-independent speaker verification", DSP 2000): Z-norm puts each enrolled
  person's impostor scores (the cohort against their embeddings) at mean 0, std 1,
  which amounts to a threshold per person; T-norm does the same from the probe's
  side (the probe against the cohort). S-norm averages the two (Kenny, Odyssey 2010;
  "symmetric normalisation"). Per-person statistics are computed from the person's
  embeddings when the matcher is built, so ``forget`` erases them with the person.
- **Gallery-size-aware threshold**: with ``N`` people enrolled, a stranger is falsely
  identified when they clear *anyone's* threshold, so for a false-positive
  identification rate ``FPIR`` each comparison may false-accept at most
  ``1 - (1 - FPIR) ** (1 / N)`` (NIST FRVT 1:N, Grother et al., NISTIR 8271,
  DIR/FPIR as in Phillips, Grother & Micheals, "Evaluation methods in face
  recognition", Handbook of Face Recognition 2011). The threshold is read off the
  per-comparison false-accept curve stored by calibration, for the current ``N``.
  That assumes a stranger's comparisons are independent, and a person enrolled from
  several views (plus their centroid) is several chances, not one; so calibration
  also stores ``measured``: for 1 and 3 views per person, the threshold at which
  held-out strangers cleared *no one* in simulated galleries of held-out people in
  ``1 - FPIR`` of cases, for a range of gallery sizes. Where that table covers a
  person it decides (a threshold per person, by their number of views); past its
  largest gallery the independence curve carries it on.
- **Margin**: the best person must lead the second by ``margin`` normalised units.
- **Centring** (``center``): embeddings of face networks share a large common
  direction (dlib's unit descriptors average to a vector of length 0.91, faceres' to
  0.60), so a centroid of several views leans towards *everyone*. Subtracting the
  cohort's mean before the cosine (the mean normalisation of speaker and face
  embeddings, e.g. Garcia-Romero & Espy-Wilson, Interspeech 2011) removes that lean;
  on the LFW 3-shot protocol it lifted dlib from 86.6 % to 93.8 % named at 98 %
  of strangers rejected (``benchmarks/openset.py``). Calibration chooses it per model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from edge.base.errors import FacelensError
from edge.base.numeric import l2_normalize
from edge.gallery.confidence import Scale, confidence
from edge.gallery.index import SearchIndex, build_index

NORMS = ("none", "z", "t", "s")


def rule_label(norm: str, center: bool) -> str:
    """How a normalisation rule is named to people: ``s-norm, centred on the cohort mean``."""
    return f"{norm}-norm" + (", centred on the cohort mean" if center else "")


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
    """The best person for one face: ``name`` is ``None`` when rejected.

    ``confidence`` is the match confidence in [0, 1] (see :mod:`edge.gallery.confidence`);
    ``normalized`` the decision score under an open-set rule (``None`` without one).
    """

    name: str | None
    cosine: float  # cosine similarity to the best person (even when rejected)
    nearest: str | None  # the best person, accepted or not
    normalized: float | None = None
    confidence: float = 0.0


@dataclass(frozen=True)
class OpenSet:
    """An open-set decision rule: cohort normalisation, a per-comparison FAR curve, a margin.

    ``far_curve`` is ``(thresholds, fars)``: the fraction of impostor comparisons (one
    face against one person) whose normalised score reaches each threshold, thresholds
    ascending. ``fpir`` is the target for the whole gallery. With ``center`` every
    embedding (probe, view, cohort) has the cohort's mean subtracted before the cosine.
    """

    cohort: np.ndarray  # (M, D) unit embeddings of impostor faces
    norm: str
    far_curve: tuple[tuple[float, ...], tuple[float, ...]]
    fpir: float
    margin: float = 0.0
    center: bool = False
    # views -> (gallery sizes ascending, measured thresholds at ``measured_fpir``); see the module
    measured: dict[int, tuple[tuple[int, ...], tuple[float, ...]]] | None = None
    measured_fpir: float | None = None  # the FPIR ``measured`` is for (None: ``fpir``)

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"unknown score normalisation {self.norm!r}: one of {NORMS}")

    @property
    def label(self) -> str:
        """The rule as people read it (see :func:`rule_label`)."""
        return rule_label(self.norm, self.center)

    @cached_property
    def _mean(self) -> np.ndarray | None:
        return np.asarray(self.cohort, np.float32).mean(axis=0) if self.center else None

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """Embeddings as this rule compares them: centred on the cohort's mean, or as given."""
        embeddings = np.asarray(embeddings, np.float32)
        return embeddings if self._mean is None else l2_normalize(embeddings - self._mean)

    @cached_property
    def projected_cohort(self) -> np.ndarray:
        """The cohort as the rule compares it (see :meth:`project`)."""
        return self.project(self.cohort)

    def comparison_far(self, people: int) -> float:
        """The false-accept rate each comparison may have so ``people`` give ``fpir``."""
        return 1.0 - (1.0 - self.fpir) ** (1.0 / max(people, 1))

    def threshold(self, people: int, views: int = 1) -> float:
        """The normalised threshold for a person with ``views`` in a gallery of ``people``.

        The per-comparison curve's threshold for ``fpir``, plus what the ``measured``
        table (the nearest number of views) adds to it (see :meth:`offset`).
        """
        return self.independent_threshold(people) + self.offset(people, views)

    def offset(self, people: int, views: int = 1) -> float:
        """How far the measured threshold sits above the independence one (0 unmeasured).

        Measured at ``measured_fpir``; another ``fpir`` keeps the same offset, so a
        target changed later moves along the per-comparison curve.
        """
        if not self.measured:
            return 0.0
        # the nearest number of views measured; between two, the stricter (more views)
        nearest = min(self.measured, key=lambda v: (abs(v - views), -v))
        sizes, values = (np.asarray(x, np.float64) for x in self.measured[nearest])
        people = max(people, 1)
        at = replace(self, fpir=self.measured_fpir or self.fpir, measured=None)
        if people > sizes[-1]:  # past the simulated galleries: the largest one's offset
            return float(values[-1] - at.independent_threshold(int(sizes[-1])))
        value = float(np.interp(np.log(people), np.log(sizes), values))
        return value - at.independent_threshold(people)

    def with_fpir(self, fpir: float) -> OpenSet:
        """This rule aiming at another share of strangers named (its tables kept)."""
        return replace(self, fpir=fpir, measured_fpir=self.measured_fpir or self.fpir)

    def independent_threshold(self, people: int) -> float:
        """The lowest normalised score whose per-comparison FAR is within budget."""
        thresholds, fars = (np.asarray(v, np.float64) for v in self.far_curve)
        allowed = self.comparison_far(people)
        ok = np.nonzero(fars <= allowed)[0]
        if not len(ok):
            return float(thresholds[-1])
        i = ok[0]
        if i == 0:
            return float(thresholds[0])
        # interpolate log(FAR) between the two points that bracket the budget
        lo, hi = np.log(max(fars[i], 1e-12)), np.log(max(fars[i - 1], 1e-12))
        w = 0.0 if hi == lo else (np.log(allowed) - lo) / (hi - lo)
        return float(thresholds[i] + w * (thresholds[i - 1] - thresholds[i]))

    def settings(self) -> dict[str, Any]:
        """What calibration stores beside the cohort (JSON-ready)."""
        return {
            "norm": self.norm,
            "fpir": self.fpir,
            "margin": self.margin,
            "center": self.center,
            "far_curve": [list(map(float, v)) for v in self.far_curve],
            "measured_fpir": self.measured_fpir or self.fpir,
            "measured": {
                str(v): [list(map(int, n)), list(map(float, t))]
                for v, (n, t) in (self.measured or {}).items()
            },
        }

    @classmethod
    def from_settings(cls, settings: dict[str, Any], cohort: np.ndarray) -> OpenSet:
        thresholds, fars = settings["far_curve"]
        return cls(
            cohort=l2_normalize(cohort),
            norm=settings["norm"],
            far_curve=(tuple(thresholds), tuple(fars)),
            fpir=float(settings["fpir"]),
            margin=float(settings.get("margin", 0.0)),
            center=bool(settings.get("center", False)),  # rules stored before centring had none
            measured={
                int(v): (tuple(map(int, n)), tuple(map(float, t)))
                for v, (n, t) in settings.get("measured", {}).items()
            }
            or None,
            measured_fpir=settings.get("measured_fpir"),
        )


def with_centroids(names: list[str], matrix: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Add, for each person with several views, their views' mean direction as one more.

    A probe then scores the best of the person's views *and* their centroid. On the LFW
    protocol with 3 views per person this named 97.2 % instead of 95.5 % at the same
    rejection of strangers (``benchmarks/openset.py``); with one view it changes nothing.
    A centroid scores higher than single views for strangers too, so it is used only
    under an open-set rule, whose per-person normalisation accounts for that.
    """
    if not names:
        return names, matrix
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name, []).append(i)
    several = [(n, rows) for n, rows in groups.items() if len(rows) > 1]
    if not several:
        return names, matrix
    means = l2_normalize(np.stack([l2_normalize(matrix[rows]).mean(axis=0) for _, rows in several]))
    return names + [n for n, _ in several], np.concatenate([matrix, means])


class Matcher:
    """Matches embeddings against a gallery; a person's score is their best view's.

    Without ``open_set`` a face is named when its best cosine reaches ``threshold``,
    and the best person is found through ``index``: ``auto`` (exact for small
    galleries, FAISS IVF past :data:`edge.gallery.index.APPROX_FROM` embeddings when
    installed), ``exact``, ``flat``, ``ivf`` or ``hnsw``; ``index_options`` go to
    :func:`edge.gallery.index.build_index`.

    With ``open_set`` (what ``edge calibrate`` stores) each person's views include the
    centroid of their embeddings (see :func:`with_centroids`), every person is scored
    exactly and normalised, and a face is named by the rule's threshold for this
    gallery's size and its margin (``threshold`` is then ignored, :attr:`threshold`
    reports the normalised one for a person of one view, :attr:`person_thresholds`
    each person's). The normalisation needs every person's score, so an
    open-set rule searches linearly whatever ``index`` says. Under a centring rule
    (:attr:`OpenSet.center`) scores are cosines of the centred embeddings.

    Every match carries its confidence (:mod:`edge.gallery.confidence`); without a rule
    ``scale_cosine`` (default ``threshold``) is the cosine placed at confidence 0.5.
    """

    def __init__(
        self,
        names: list[str],
        matrix: np.ndarray,
        threshold: float,
        index: str = "auto",
        *,
        open_set: OpenSet | None = None,
        scale_cosine: float | None = None,
        **index_options: Any,
    ) -> None:
        if len(names) != len(matrix):
            raise ValueError(f"{len(names)} names for {len(matrix)} embeddings")
        views = np.unique(np.asarray(names, dtype=str), return_counts=True)[1]
        if open_set is not None:  # a centroid outscores single views: only normalised
            matrix = open_set.project(matrix) if len(names) else matrix
            names, matrix = with_centroids(list(names), np.asarray(matrix, np.float32))
            index = "exact"
        # Embeddings grouped by person, so a per-person max is one reduceat over columns.
        people, person_of_row = np.unique(np.asarray(names, dtype=str), return_inverse=True)
        order = np.argsort(person_of_row, kind="stable")
        self.people: list[str] = people.tolist()
        self._person_of_row = person_of_row[order]
        self._starts = np.searchsorted(self._person_of_row, np.arange(len(people)))
        self._ends = np.append(self._starts[1:], len(names))
        self._matrix = l2_normalize(matrix[order]) if names else np.zeros((0, 0), np.float32)
        self.index: SearchIndex = build_index(self._matrix, index, **index_options)
        self.open_set = open_set
        # an open-set rule brings its own (normalised) threshold
        self.threshold = (
            float(threshold) if open_set else check_threshold(threshold, "the match threshold")
        )
        self._z: tuple[np.ndarray, np.ndarray] | None = None
        self._views = views  # per person (sorted as ``people``)
        self.scale = Scale(open_set, len(self.people), scale_cosine or self.threshold)
        if open_set is not None:
            self.threshold = open_set.threshold(len(self.people))
            # per person: a measured table gives several-view people their own
            self.person_thresholds = np.array(
                [open_set.threshold(len(self.people), int(v)) for v in views]
            )
            if open_set.norm in ("z", "s") and self.people:
                self._z = self._person_stats()

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
        if self.open_set is not None:
            embeddings = self.open_set.project(embeddings)
        sims = embeddings @ self._matrix.T
        return np.maximum.reduceat(sims, self._starts, axis=1)

    def _person_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Each person's impostor mean and std: the cohort scored against them (Z-norm)."""
        impostor = self.scores(self.open_set.cohort)
        return impostor.mean(axis=0), np.maximum(impostor.std(axis=0), 1e-4)

    def normalize(self, embeddings: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Per-person cosine scores -> the open-set rule's normalised scores."""
        rule = self.open_set
        if rule is None or rule.norm == "none":
            return scores
        out = []
        if self._z is not None:
            mean, std = self._z
            out.append((scores - mean) / std)
        if rule.norm in ("t", "s"):
            probe = rule.project(np.atleast_2d(embeddings)) @ rule.projected_cohort.T
            mean = probe.mean(axis=1, keepdims=True)
            std = np.maximum(probe.std(axis=1, keepdims=True), 1e-4)
            out.append((scores - mean) / std)
        return sum(out) / len(out)

    def match(self, embeddings: np.ndarray) -> list[Match]:
        """The best person for each embedding, or ``name=None`` when rejected."""
        embeddings = self._check(embeddings)
        if not self.people:
            return [Match(None, 0.0, None) for _ in range(len(embeddings))]
        if self.open_set is None:
            return self._match_nearest(embeddings)
        scores = self.scores(embeddings)
        decision = self.normalize(embeddings, scores)
        margin = self.open_set.margin
        ranked = np.sort(decision, axis=1)
        lead = ranked[:, -1] - (ranked[:, -2] if decision.shape[1] > 1 else -np.inf)
        out = []
        for i, j in enumerate(decision.argmax(axis=1)):
            top = float(decision[i, j])
            accepted = top >= self.person_thresholds[j] and lead[i] >= margin
            nearest = self.people[j]
            sure = confidence(top, self.scale, int(self._views[j]))
            named = nearest if accepted else None
            out.append(Match(named, float(scores[i, j]), nearest, top, sure))
        return out

    def _match_nearest(self, embeddings: np.ndarray) -> list[Match]:
        """The nearest person through the index, named when their cosine clears the threshold."""
        _, rows = self.index.search(embeddings, 1)
        out = []
        for query, row in zip(embeddings, rows[:, 0].tolist(), strict=True):
            person = self._person_of_row[row]
            # The person's best embedding, exactly: an approximate index may have found
            # only one of their others.
            own = self._matrix[self._starts[person] : self._ends[person]]
            score = float(np.max(own @ query))
            nearest = self.people[person]
            named = nearest if score >= self.threshold else None
            out.append(Match(named, score, nearest, None, confidence(score, self.scale)))
        return out
