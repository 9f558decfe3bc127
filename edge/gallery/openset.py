"""Choosing the match threshold on labelled pairs at a target false-accept rate."""

from __future__ import annotations

import csv
import hashlib
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edge.base.errors import FacelensError, ImageError
from edge.base.progress import progress as progress_of
from edge.gallery.confidence import DEFAULT_FPIR, check_fpir
from edge.gallery.matching import NORMS, Matcher, OpenSet
from edge.media.images import list_images, read_image
from edge.model.pipeline import Pipeline

log = logging.getLogger(__name__)


__all__ = ["DEFAULT_FPIR"]  # re-exported: the operating point lives in edge.gallery.confidence
FPIR_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
MAX_COHORT = 1000
REFERENCE_GALLERY = 100  # the size open-set numbers are reported for when no one is enrolled
MULTI_VIEWS = 3  # views per person in the simulated several-view gallery (the 3-shot protocol)
MIN_SIMULATED = 20  # fewer held-out people with that many photos: no several-view table
MIN_STRANGERS = 200  # held-out people left outside a simulated gallery, at least
MIN_PEOPLE = 20  # half become the cohort, half the held-out people
MAX_PHOTOS = 10  # per person in a --people folder: more adds time, not people
SIMULATED_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
SIMULATION_REPEATS = 20  # random galleries per size


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool


def read_pairs(path: Path | str, images: Path | str | None = None) -> list[Pair]:
    """Read a CSV with columns ``img_a,img_b,same`` (``same`` is 1 or 0).

    With ``images`` (the root the pair paths are relative to) every photo must exist.
    Every error names the file, the line and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FacelensError(f"pairs file {path} does not exist; give a CSV img_a,img_b,same")
    root = None if images is None else Path(images)
    if root is not None and not root.is_dir():
        raise FacelensError(f"image root {root} is not a folder; pass --images DIR")
    pairs = []
    try:
        # utf-8-sig: Excel writes a byte-order mark that would hide the first column's name
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"img_a", "img_b", "same"} - set(reader.fieldnames or [])
            if missing:
                raise FacelensError(
                    f"{path} lacks column(s) {', '.join(sorted(missing))}; "
                    "a pairs file has the header img_a,img_b,same"
                )
            for row in reader:
                line = reader.line_num
                if row["same"] not in ("0", "1") or not row["img_a"] or not row["img_b"]:
                    raise FacelensError(f"{path}:{line}: same={row['same']!r}; use 1 or 0")
                for name in (row["img_a"], row["img_b"]):
                    if root is not None and not _is_file(root / name):
                        raise FacelensError(
                            f"{path}:{line}: {root / name} does not exist; check --images "
                            "(the root the pair paths are relative to)"
                        )
                pairs.append(Pair(row["img_a"], row["img_b"], row["same"] == "1"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FacelensError(f"cannot read the pairs file {path} ({exc})") from exc
    if not any(p.same for p in pairs) or all(p.same for p in pairs):
        raise FacelensError(f"{path} needs both same (1) and different (0) pairs")
    return pairs


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (ValueError, OSError):  # a NUL byte or an over-long name in the CSV
        return False


@dataclass(frozen=True)
class Calibration:
    """A threshold and what it gives on the pairs it was chosen on.

    ``open_set`` is the open-set rule chosen on the same photos (``None`` when they
    hold too few identities); its cohort is stored beside ``to_dict()``.
    """

    cosine: float
    target_far: float
    far: float
    tar: float
    accuracy: float
    genuine_pairs: int
    impostor_pairs: int
    skipped_pairs: int
    how: str
    open_set: OpenSetReport | None = None
    people: int | None = None  # calibrated from a folder of people: how many, and photos
    photos: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """What the gallery stores as the threshold (the cohort goes beside it)."""
        d = {k: v for k, v in asdict(self).items() if k != "open_set"}
        if self.open_set is not None:
            d["open_set"] = self.open_set.to_dict()
        return d

    @property
    def cohort(self) -> np.ndarray | None:
        """The open-set rule's impostor cohort, stored encrypted beside :meth:`to_dict`."""
        return None if self.open_set is None else self.open_set.open_set.cohort


def threshold_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float:
    """The lowest threshold accepting at most ``far`` of the impostor scores (score >= t)."""
    ranked = np.sort(np.asarray(impostor, np.float64))[::-1]
    allowed = math.floor(far * len(ranked))
    if allowed >= len(ranked):
        return float(np.min(np.concatenate([genuine, impostor])))
    # Just above the (allowed+1)-th highest impostor: it and everything below are rejected.
    return float(np.nextafter(ranked[allowed], np.inf))


def photo_embeddings(
    pipeline: Pipeline, names: list[str], images: Path, progress: bool = True
) -> dict[str, np.ndarray | None]:
    """Each photo's dominant-face embedding, once (``None``: no face, or unreadable)."""
    embeddings: dict[str, np.ndarray | None] = {}
    for name in progress_of(names, "embedding photos", "photos", enabled=progress):
        try:
            embeddings[name] = pipeline.photo_embedding(read_image(images / name))
        except ImageError:
            embeddings[name] = None
    return embeddings


def pair_scores(
    pipeline: Pipeline,
    pairs: list[Pair],
    images: Path,
    progress: bool = True,
    embeddings: dict[str, np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Cosine of every pair's two dominant faces -> (scores, same, skipped pairs)."""
    if embeddings is None:
        names = sorted({p.a for p in pairs} | {p.b for p in pairs})
        embeddings = photo_embeddings(pipeline, names, images, progress)
    scores, same = [], []
    for p in pairs:
        ea, eb = embeddings[p.a], embeddings[p.b]
        if ea is not None and eb is not None:
            scores.append(float(ea @ eb))
            same.append(p.same)
    if not scores:
        raise FacelensError(
            f"no pair of {len(pairs)} could be scored (no face found, or the images are not "
            f"under {images}): check --images"
        )
    return np.asarray(scores), np.asarray(same, bool), len(pairs) - len(scores)


def calibrate(
    pipeline: Pipeline,
    pairs_csv: Path | str,
    images: Path | str,
    far: float = 0.001,
    progress: bool = True,
    *,
    fpir: float | None = DEFAULT_FPIR,
    enrolled: tuple[list[str], np.ndarray] | None = None,
) -> Calibration:
    """Choose the cosine threshold with false-accept rate <= ``far`` on labelled pairs.

    With ``fpir`` the same photos also give the open-set rule (see
    :func:`calibrate_open_set`) for the gallery ``enrolled`` (its names and embeddings).
    """
    if not 0 <= far < 1:
        raise FacelensError(f"--far {far} must be in [0, 1), e.g. 0.001")
    images = Path(images)
    if not images.is_dir():
        raise FacelensError(f"--images {images} is not a folder")
    pairs = read_pairs(pairs_csv, images)  # a missing photo is an error with its line
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    embeddings = photo_embeddings(pipeline, names, images, progress)
    scores, same, skipped = pair_scores(pipeline, pairs, images, progress, embeddings)
    cal = _cosine_calibration(scores, same, far, f"pairs of {Path(pairs_csv).name}", skipped)
    open_set = None if fpir is None else _open_set_or_none(embeddings, fpir, enrolled)
    return replace(cal, open_set=open_set)


def _cosine_calibration(
    scores: np.ndarray, same: np.ndarray, far: float, source: str, skipped: int = 0
) -> Calibration:
    """The cosine threshold at ``far`` on scored pairs (``same``: genuine), and its rates."""
    genuine, impostor = scores[same], scores[~same]
    if not len(genuine) or not len(impostor):
        raise FacelensError("after skipping faceless photos, same or different pairs are missing")
    t = threshold_at_far(genuine, impostor, far)
    how = f"FAR <= {far:g} on {len(impostor)} impostor {source}"
    if far * len(impostor) < 1:
        how += " (too few pairs to measure that FAR: no impostor is accepted)"
    return Calibration(
        cosine=t,
        target_far=far,
        far=float(np.mean(impostor >= t)),
        tar=float(np.mean(genuine >= t)),
        accuracy=float(np.mean((scores >= t) == same)),
        genuine_pairs=len(genuine),
        impostor_pairs=len(impostor),
        skipped_pairs=skipped,
        how=how,
    )


def identity_id(name: str) -> str:
    """What a bundle records of a calibration person: a hash of their folder's name."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def people_photos(
    folder: Path | str, max_people: int | None = None, max_photos: int = MAX_PHOTOS, seed: int = 0
) -> list[str]:
    """``person/photo`` paths of a folder holding one sub-folder of photos per person.

    At most ``max_photos`` per person; with ``max_people`` a seeded sample of the people
    (by a hash of their names, so the same folder always gives the same sample).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FacelensError(f"{folder} is not a folder: give one folder of photos per person")
    by_person: dict[str, list[str]] = {}
    for path in list_images(folder):
        rel = path.relative_to(folder)
        if len(rel.parts) == 2:  # person/photo; loose photos name no one
            by_person.setdefault(rel.parts[0], []).append(rel.as_posix())
    people = sorted(by_person)
    if max_people is not None:
        people = sorted(sorted(people, key=lambda n: identity_id(f"{seed}:{n}"))[:max_people])
    return [p for n in people for p in by_person[n][:max_photos]]


def people_embeddings(
    pipeline: Pipeline, folder: Path | str, progress: bool = True, **sample: Any
) -> dict[str, np.ndarray]:
    """Each photo's embedding (``person/photo`` -> vector) of a folder of people; photos
    without a face are left out. Refuses fewer than :data:`MIN_PEOPLE` people."""
    folder = Path(folder)
    photos = people_photos(folder, **sample)
    found = {
        k: v
        for k, v in photo_embeddings(pipeline, photos, folder, progress).items()
        if v is not None
    }
    people = {Path(k).parent.name for k in found}
    if len(people) < MIN_PEOPLE:
        raise FacelensError(
            f"{folder} holds {len(people)} people with a face found (one sub-folder of photos "
            f"each); calibration needs at least {MIN_PEOPLE}: half of them are the strangers "
            "the others are told apart from"
        )
    return found


def calibrate_people(
    pipeline: Pipeline,
    folder: Path | str,
    far: float = 0.001,
    progress: bool = True,
    *,
    fpir: float = DEFAULT_FPIR,
    enrolled: tuple[list[str], np.ndarray] | None = None,
) -> Calibration:
    """:func:`calibrate` from a folder with one sub-folder of photos per person (no pairs file).

    Every two photos are a pair (genuine within a folder); the open-set rule is required:
    a set too small to measure ``fpir`` for the gallery is refused with the reason.
    """
    if not 0 <= far < 1:
        raise FacelensError(f"--far {far} must be in [0, 1), e.g. 0.001")
    embeddings = people_embeddings(pipeline, folder, progress)
    keys = sorted(embeddings)
    ids = np.array([Path(k).parent.name for k in keys])
    matrix = np.stack([embeddings[k] for k in keys])
    upper = np.triu(np.ones((len(keys), len(keys)), bool), k=1)
    scores = (matrix @ matrix.T)[upper]
    same = (ids[:, None] == ids[None, :])[upper]
    people = len(set(ids.tolist()))
    cal = _cosine_calibration(scores, same, far, f"pairs of {people} people's {len(keys)} photos")
    report = calibrate_open_set(embeddings, fpir, enrolled)
    return replace(cal, open_set=report, people=people, photos=len(keys))


def _open_set_or_none(
    embeddings: dict[str, np.ndarray | None],
    fpir: float,
    enrolled: tuple[list[str], np.ndarray] | None,
) -> OpenSetReport | None:
    try:
        return calibrate_open_set(
            {k: v for k, v in embeddings.items() if v is not None}, fpir, enrolled
        )
    except FacelensError as exc:
        log.warning("no open-set calibration: %s; one cosine threshold is used", exc)
        return None


@dataclass(frozen=True)
class OpenSetReport:
    """What open-set calibration chose, and the DIR/FPIR it predicts for a gallery size."""

    open_set: OpenSet
    people: int  # the gallery size the numbers are for (REFERENCE_GALLERY when empty)
    threshold: float  # normalised threshold at the target FPIR for ``people``
    dir: float  # predicted detection-and-identification rate there
    measured_fpir: float | None  # held-out strangers against the user's gallery
    curve: list[tuple[float, float, float]]  # (fpir, threshold, dir) for ``people``
    by_norm: dict[str, float]  # predicted DIR at the target FPIR per rule tried, one view
    # per rule tried: DIR measured for held-out people enrolled from MULTI_VIEWS photos
    several_view_dir: dict[str, float | None]
    # per rule tried: FPIR that the per-comparison curve's threshold (independence)
    # delivered in the simulated galleries, which the measured thresholds replace
    independence_fpir: dict[str, dict[str, float]]
    cohort_faces: int
    stranger_faces: int
    genuine_comparisons: int
    impostor_comparisons: int

    @property
    def rule(self) -> str:
        """The chosen rule's name, as the per-rule dictionaries above are keyed."""
        return rule_name(self.open_set.norm, self.open_set.center)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "open_set"}
        d.update(self.open_set.settings())
        return d


def _split_identities(labels: list[str], seed: int) -> set[str]:
    people = sorted(set(labels))
    rng = np.random.default_rng(seed)
    return set(rng.permutation(people)[: len(people) // 2].tolist())


def _far_curve(impostor: np.ndarray, points: int = 120) -> tuple[tuple[float, ...], ...]:
    """(thresholds ascending, per-comparison FAR at each) on a log grid of FARs."""
    ranked = np.sort(np.asarray(impostor, np.float64))[::-1]
    n = len(ranked)
    fars = np.unique(np.geomspace(1.0 / n, 1.0, points))[::-1]
    # as threshold_at_far: just above the (allowed+1)-th highest impostor score
    allowed = np.minimum(np.floor(fars * n).astype(int), n - 1)
    thresholds = np.nextafter(ranked[allowed], np.inf)
    measured = 1.0 - np.searchsorted(ranked[::-1], thresholds, side="left") / n
    return tuple(thresholds.tolist()), tuple(measured.tolist())


def rule_name(norm: str, center: bool) -> str:
    """A normalisation rule's name: ``s``, ``s, centred`` (centred on the cohort mean)..."""
    return f"{norm}, centred" if center else norm


class _Measured(NamedTuple):
    """What a rule did in the simulated galleries of held-out people (:func:`_measure`)."""

    # views -> (gallery sizes, the threshold at which at most ``rule.fpir`` of the
    # strangers clear anyone in a gallery of that size)
    thresholds: dict[int, tuple[tuple[int, ...], tuple[float, ...]]]
    # the FPIR the per-comparison curve's threshold delivers at each view count's largest gallery
    independence_fpir: dict[str, float]
    # the several-view gallery's other photos named right at its measured threshold
    # (None when too few held-out people have that many photos)
    several_view_dir: float | None


def _measure(
    rule: OpenSet, held: list[tuple[str, str]], embeddings: dict[str, np.ndarray], seed: int
) -> _Measured:
    """What ``rule`` does for held-out strangers in simulated galleries of held-out people.

    Galleries of each size in :data:`SIMULATED_SIZES` are drawn from the held-out people
    with 1 (and with :data:`MULTI_VIEWS`) photos, enrolled from their first ones; the
    strangers are the first photo of every held-out person outside the gallery.
    """
    by_id: dict[str, list[str]] = {}
    for path, label in held:
        by_id.setdefault(label, []).append(path)
    pool = sorted(by_id)
    strangers = np.stack([embeddings[by_id[k][0]] for k in pool])
    rng = np.random.default_rng(seed)
    table, delivered, several_dir = {}, {}, None
    for views in (1, MULTI_VIEWS):
        people = [k for k in pool if len(by_id[k]) >= views]
        sizes = [n for n in (*SIMULATED_SIZES, len(people)) if n <= len(people)]
        sizes = sorted({n for n in sizes if len(pool) - n >= MIN_STRANGERS})
        if len(people) < MIN_SIMULATED or not sizes:
            continue
        names = [k for k in people for _ in range(views)]
        matrix = np.stack([embeddings[p] for k in people for p in by_id[k][:views]])
        matcher = Matcher(names, matrix, 0.0, open_set=rule)  # people sorted, as ``people``
        decision = matcher.normalize(strangers, matcher.scores(strangers))
        column = {k: i for i, k in enumerate(people)}
        own = np.array([column.get(k, -1) for k in pool])
        thresholds = []
        for n in sizes:
            best = []
            for _ in range(SIMULATION_REPEATS if n < len(people) else 1):
                inside = np.zeros(len(people) + 1, bool)  # the last: not a gallery person
                gallery = rng.choice(len(people), n, replace=False)
                inside[gallery] = True
                best.append(decision[~inside[own]][:, gallery].max(axis=1))
            best = np.concatenate(best)
            thresholds.append(threshold_at_far(best, best, rule.fpir))
        delivered[f"{views} view{'s' if views > 1 else ''}, {n} people"] = float(
            np.mean(best >= rule.independent_threshold(n))
        )
        # a larger gallery never gets a lower threshold: smooth out sampling noise
        table[views] = (tuple(sizes), tuple(np.maximum.accumulate(thresholds).tolist()))
        if views > 1:
            measured = replace(rule, measured={views: table[views]})
            several_dir = _several_view_dir(measured, people, by_id, embeddings, views)
    return _Measured(table, delivered, several_dir)


def _several_view_dir(
    rule: OpenSet,
    people: list[str],
    by_id: dict[str, list[str]],
    embeddings: dict[str, np.ndarray],
    views: int,
) -> float | None:
    """Named right among the other photos of people enrolled from their first ``views``."""
    probes = [(k, p) for k in people for p in by_id[k][views:]]
    if len(probes) < MIN_SIMULATED:
        return None
    names = [k for k in people for _ in range(views)]
    matrix = np.stack([embeddings[p] for k in people for p in by_id[k][:views]])
    matches = Matcher(names, matrix, 0.0, open_set=rule).match(
        np.stack([embeddings[p] for _, p in probes])
    )
    return float(np.mean([m.name == k for m, (k, _) in zip(matches, probes, strict=True)]))


def _predicted_dir(rule: OpenSet, genuine: np.ndarray, impostor: np.ndarray, people: int):
    """DIR for a gallery of ``people``: the genuine score clears the threshold and beats
    every one of the ``people - 1`` others (independent impostor comparisons)."""
    t = rule.threshold(people)
    ranked = np.sort(impostor)
    beaten = 1.0 - np.searchsorted(ranked, genuine, side="left") / len(ranked)  # FAR at genuine
    return t, float(np.mean((genuine >= t) * (1.0 - beaten) ** max(people - 1, 0)))


class _Comparisons(NamedTuple):
    """The held-out comparisons: each held-out person's first photo plays an enrolled
    person (a *model*), every held-out photo a probe."""

    names: list[str]  # the models' people, sorted
    models: np.ndarray  # their embeddings
    probes: np.ndarray  # every held-out photo's embedding
    genuine: np.ndarray  # (probe, model): the same person, not the same photo
    impostor: np.ndarray  # (probe, model): another person

    @classmethod
    def of(cls, held: list[tuple[str, str]], embeddings: dict[str, np.ndarray]) -> _Comparisons:
        models: dict[str, str] = {}
        for p, lab in held:
            models.setdefault(lab, p)
        names = sorted(models)
        labels = np.array([lab for _, lab in held], dtype=object)
        same = labels[:, None] == np.array(names, dtype=object)[None, :]
        model_paths = np.array([models[m] for m in names], dtype=object)
        itself = np.array([p for p, _ in held], dtype=object)[:, None] == model_paths[None, :]
        matrix = np.stack([embeddings[p] for p, _ in held])
        return cls(
            names, np.stack([embeddings[models[m]] for m in names]), matrix, same & ~itself, ~same
        )


class _Tried(NamedTuple):
    """One rule tried: its genuine and impostor scores and how well it named people."""

    rule: OpenSet
    genuine: np.ndarray
    impostor: np.ndarray
    one_view_dir: float  # predicted at the target FPIR for the gallery's size, one photo each
    measured: _Measured

    @property
    def merit(self) -> float:
        """One view and several count alike."""
        one, more = self.one_view_dir, self.measured.several_view_dir
        return one if more is None else (one + more) / 2


def _cohort_and_held(
    embeddings: dict[str, np.ndarray], seed: int
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Half the identities' embeddings (at most MAX_COHORT) as the cohort; the other half's
    ``(path, identity)``, held out."""
    paths = sorted(embeddings)
    labels = [Path(p).parent.name for p in paths]
    cohort_ids = _split_identities(labels, seed)
    labelled = list(zip(paths, labels, strict=True))
    cohort = np.stack([embeddings[p] for p, lab in labelled if lab in cohort_ids])
    held = [(p, lab) for p, lab in labelled if lab not in cohort_ids]
    if len(cohort_ids) < MIN_PEOPLE // 2 or len({lab for _, lab in held}) < MIN_PEOPLE // 2:
        raise FacelensError(
            f"open-set calibration needs photos of at least {MIN_PEOPLE} people (one folder "
            f"each, with a face found); got {len(set(labels))}: add more people"
        )
    if len(cohort) > MAX_COHORT:
        keep = np.sort(np.random.default_rng(seed).choice(len(cohort), MAX_COHORT, replace=False))
        cohort = cohort[keep]
    return cohort, held


def _try(
    base: OpenSet,
    comparisons: _Comparisons,
    held: list[tuple[str, str]],
    embeddings: dict[str, np.ndarray],
    seed: int,
    size: int,
) -> _Tried:
    """``base``'s rule with its per-comparison FAR curve and measured thresholds."""
    c = comparisons
    models = Matcher(c.names, c.models, 0.0, open_set=base)
    z = models.normalize(c.probes, models.scores(c.probes))
    genuine, impostor = z[c.genuine], z[c.impostor]
    rule = replace(base, far_curve=_far_curve(impostor))
    measured = _measure(rule, held, embeddings, seed)
    rule = replace(rule, measured=measured.thresholds or None)
    _, one_view_dir = _predicted_dir(rule, genuine, impostor, size)
    return _Tried(rule, genuine, impostor, one_view_dir, measured)


def calibrate_open_set(
    embeddings: dict[str, np.ndarray],
    fpir: float = 0.01,
    gallery: tuple[list[str], np.ndarray] | None = None,
    norm: str | None = None,
    margin: float = 0.0,
    seed: int = 0,
) -> OpenSetReport:
    """Choose an open-set rule from labelled photos (identity = the photo's parent folder).

    Half the identities become the stored *cohort*; the other half are held out: one
    photo per identity plays an enrolled person, every other photo a probe, giving the
    genuine and impostor comparisons the per-comparison FAR curve and the DIR estimate
    come from. Each rule's thresholds are then measured on simulated galleries of
    held-out people, enrolled from one and from several photos (see :func:`_measure`).
    With ``norm=None`` each normalisation, with and without centring, is tried, and
    the one with the best mean of the predicted one-photo DIR at ``fpir`` for the
    gallery's size and the measured several-photo DIR is kept. ``gallery`` (the
    user's names and embeddings) sets that size (else ``REFERENCE_GALLERY``) and gets
    a direct FPIR measurement. The stored rule adapts its threshold to the gallery's
    size (and each person's number of views) at every load, so people enrolled later
    need no new calibration. The measured thresholds ignore ``margin``, which can only
    reject more.
    """
    fpir = check_fpir(fpir)
    cohort, held = _cohort_and_held(embeddings, seed)
    comparisons = _Comparisons.of(held, embeddings)
    people = len(set(gallery[0])) if gallery else 0
    size = people or REFERENCE_GALLERY
    _check_measurable(int(comparisons.impostor.sum()), fpir, size)
    tried = {
        rule_name(name, center): _try(
            OpenSet(cohort, name, ((0.0,), (1.0,)), fpir, margin, center),
            comparisons,
            held,
            embeddings,
            seed,
            size,
        )
        for name in ((norm,) if norm else NORMS)
        for center in (False, True)
    }
    best = max(tried.values(), key=lambda t: t.merit)
    measured = None
    if people:
        user = Matcher(gallery[0], gallery[1], 0.0, open_set=best.rule)
        measured = float(np.mean([m.name is not None for m in user.match(comparisons.probes)]))
    return _report(best, tried, size, measured, len(cohort), len(comparisons.probes))


def _check_measurable(impostor: int, fpir: float, people: int) -> None:
    """Refuse a set whose impostor comparisons cannot show the per-comparison FAR needed."""
    budget = OpenSet(np.zeros((1, 1)), "none", ((0.0,), (1.0,)), fpir).comparison_far(people)
    needed = math.ceil(1.0 / budget)
    if impostor < needed:
        raise FacelensError(
            f"too few photos to measure FPIR {fpir:g} for a gallery of {people}: each "
            f"comparison may name a stranger at most {budget:.2g} of the time, which needs "
            f"at least {needed} comparisons of different people; these photos give {impostor}. "
            "Add people (or photos of each), or ask for a larger --fpir"
        )


def _report(
    best: _Tried,
    tried: dict[str, _Tried],
    size: int,
    measured_fpir: float | None,
    cohort_faces: int,
    stranger_faces: int,
) -> OpenSetReport:
    """The chosen rule's operating point and curve for a gallery of ``size`` people."""
    rule, genuine, impostor = best.rule, best.genuine, best.impostor
    threshold, dir_ = _predicted_dir(rule, genuine, impostor, size)
    curve = []
    for f in FPIR_GRID:  # the per-comparison thresholds at each FPIR (not the measured ones)
        at = OpenSet(rule.cohort, rule.norm, rule.far_curve, f, rule.margin, rule.center)
        curve.append((f, *_predicted_dir(at, genuine, impostor, size)))
    return OpenSetReport(
        open_set=rule,
        people=size,
        threshold=threshold,
        dir=dir_,
        measured_fpir=measured_fpir,
        curve=curve,
        by_norm={k: t.one_view_dir for k, t in tried.items()},
        several_view_dir={k: t.measured.several_view_dir for k, t in tried.items()},
        independence_fpir={k: t.measured.independence_fpir for k, t in tried.items()},
        cohort_faces=cohort_faces,
        stranger_faces=stranger_faces,
        genuine_comparisons=len(genuine),
        impostor_comparisons=len(impostor),
    )
