"""Open-set identification on LFW: are strangers kept strangers?

The protocol of ``tests/edge/test_lfw_identification.py``: people in
``pairs_devtrain.csv`` are kept for calibration only. Of the others, 150 are enrolled
from their first photo (or first three, for the 3-shot protocol: people with >= 4
photos) through edge's own enrolment (quality checks and view selection); up to 4 of
their other photos are probes; one photo each of 150 people never enrolled are the
strangers. The threshold comes from ``edge calibrate`` on the dev-train pairs: the
cosine at FAR 1e-3 (the old rule) and the open-set rule stored beside it (the score
normalisation and centring calibration chose for this model, thresholds for the FPIR
target measured on simulated galleries of held-out dev-train people, per gallery size
and per number of views).

Reported: named-right rate (DIR) of probes and rejection rate of strangers (1 - FPIR)
at the stored operating point, rank-1 ignoring any threshold, the whole DIR/FPIR
curve (``openset.png``), and whether enrolment augmentation (flip, +-8 degree
rotation, 0.9/1.1 scale, gamma 0.6/1.6 of the enrolment crops) improves it. With
``--flip`` every face (calibration, enrolment, probes) is embedded with its mirror
image too. Each photo is embedded once per run.

    uv run python benchmarks/openset.py --bundle /work/bundles/faceres --threads 2
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import (
    LFW,
    machine_info,
    machine_line,
    markdown_table,
    new_parser,
    out_dir,
    pyplot,
    run_cli,
    save_figure,
    write_json,
)

from edge.api import FaceLens
from edge.base.errors import FacelensError, ImageError
from edge.faces.dominant import rank_faces
from edge.gallery.matching import Matcher
from edge.gallery.openset import DEFAULT_FPIR, Calibration, calibrate, identity_id
from edge.media.images import read_image
from edge.model.bundle import DEFAULT_FORMAT, Bundle
from edge.model.pipeline import Pipeline

N_ENROLLED, N_UNKNOWN, MAX_PROBES = 150, 150, 4
AUGMENTATIONS: dict[str, Callable[[np.ndarray], list[np.ndarray]]] = {}


def _augmentation(name: str):
    def register(fn):
        AUGMENTATIONS[name] = fn
        return fn

    return register


@_augmentation("flip")
def _flip(crop: np.ndarray) -> list[np.ndarray]:
    return [crop[:, ::-1].copy()]


def _warp(crop: np.ndarray, angle: float, scale: float) -> np.ndarray:
    h, w = crop.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    return cv2.warpAffine(crop, m, (w, h), borderMode=cv2.BORDER_REFLECT)


@_augmentation("rotate")
def _rotate(crop: np.ndarray) -> list[np.ndarray]:
    return [_warp(crop, a, 1.0) for a in (-8, 8)]


@_augmentation("scale")
def _scale(crop: np.ndarray) -> list[np.ndarray]:
    return [_warp(crop, 0, s) for s in (0.9, 1.1)]


@_augmentation("light")
def _light(crop: np.ndarray) -> list[np.ndarray]:
    return [cv2.LUT(crop, ((np.arange(256) / 255) ** g * 255).astype(np.uint8)) for g in (0.6, 1.6)]


def devtrain_people(lfw: Path) -> set[str]:
    """The people of ``pairs_devtrain.csv`` (what ``edge calibrate`` is run on here)."""
    with open(lfw / "pairs_devtrain.csv", newline="") as f:
        return {Path(row[k]).parent.name for row in csv.DictReader(f) for k in ("img_a", "img_b")}


def calibrated_on(rule_of: Calibration | Bundle, lfw: Path) -> Callable[[str], bool]:
    """Whether a person helped choose the rule: dev-train people for ``edge calibrate``, the
    identities a bundle's manifest lists (hashed names) for the bundle's own rule."""
    if isinstance(rule_of, Bundle):
        hashed = set(rule_of.manifest.open_set.identities) if rule_of.manifest.open_set else set()
        return lambda name: identity_id(name) in hashed
    people = devtrain_people(lfw)
    return lambda name: name in people


def split_people(
    lfw: Path, shots: int, held_out: Callable[[str], bool], seed: int = 0
) -> tuple[dict[str, list[Path]], list, list]:
    """(photos by person, enrolled people, strangers), leaving out whoever ``held_out`` names
    (the people the rule was calibrated on)."""
    images = lfw / "images"
    photos = {
        d.name: sorted(d.glob("*.jpg"))
        for d in sorted(images.iterdir())
        if d.is_dir() and not held_out(d.name)
    }
    rng = random.Random(seed)
    several = [p for p, files in photos.items() if len(files) >= shots + 1]
    if len(several) < N_ENROLLED:
        raise FacelensError(f"only {len(several)} LFW people have {shots + 1}+ photos")
    enrolled = sorted(rng.sample(several, N_ENROLLED))
    unknown = sorted(rng.sample([p for p in photos if p not in enrolled], N_UNKNOWN))
    return photos, enrolled, unknown


class Embeddings:
    """Each photo's dominant-face embedding, computed once."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._cache: dict[Path, np.ndarray | None] = {}

    def __call__(self, path: Path) -> np.ndarray | None:
        if path not in self._cache:
            self._cache[path] = self.pipeline.photo_embedding(read_image(path))
        return self._cache[path]

    def __len__(self) -> int:
        return len(self._cache)


def calibrate_lfw(pipeline: Pipeline, lfw: Path, fpir: float = DEFAULT_FPIR) -> Calibration:
    """What ``edge calibrate --pairs pairs_devtrain.csv --far 0.001`` chooses."""
    return calibrate(pipeline, lfw / "pairs_devtrain.csv", lfw / "images", 0.001, False, fpir=fpir)


def store(lens: FaceLens, cal: Calibration) -> None:
    """Store one calibration in another gallery, as ``edge calibrate`` would have."""
    lens.gallery.set_threshold(lens.fingerprint, cal.to_dict(), cohort=cal.cohort)


def protocol(
    engine: dict[str, Any],
    lfw: Path,
    gallery_path: Path,
    shots: int,
    embed: Embeddings,
    cal: Calibration | None,
) -> dict[str, Any]:
    """Enrol ``shots`` photos each under the calibration ``cal`` (``None``: the gallery is
    never calibrated and the bundle's own rule decides); identify probes and strangers.

    ``engine`` is FaceLens' bundle and model options; each protocol has its own gallery.
    The people the rule was calibrated on are neither enrolled nor strangers.
    """
    held_out = calibrated_on(engine["bundle"] if cal is None else cal, lfw)
    photos, enrolled, unknown = split_people(lfw, shots, held_out)
    with FaceLens(gallery=gallery_path, **engine) as lens:
        if cal is not None:
            store(lens, cal)
        refused = []
        for person in enrolled:  # no flags: what `edge enroll NAME PHOTO...` does
            try:
                lens.enroll(person, photos[person][:shots])
            except ImageError as exc:
                refused.append(str(exc))
        matcher, threshold = lens.matcher, lens.threshold
        gallery = lens.gallery.load(lens.fingerprint, lens.bundle.name)
    # the old rule: one cosine (FAR 1e-3 on dev-train pairs, or the bundle's default)
    cosine = Matcher(gallery.names, gallery.matrix, threshold.reference or threshold.value)
    enrolled = [p for p in enrolled if p in matcher.people]
    probes = [(p, f) for p in enrolled for f in photos[p][shots : shots + MAX_PROBES]]
    known = [embed(f) for _, f in probes]
    strangers = [embed(photos[p][0]) for p in unknown]
    truth = [p for p, _ in probes]
    result = {
        "shots": shots,
        "calibration_of": "bundle (gallery never calibrated)" if cal is None else "edge calibrate",
        "enrolled_people": len(enrolled),
        "refused_enrolments": refused,
        "enrolled_probes": len(probes),
        "unknown_people": len(strangers),
        "cosine_threshold": cosine.threshold,
        "calibration": None if cal is None else cal.to_dict(),
        "rule": threshold.origin,
        "rule_label": threshold.open_set.label if threshold.open_set else "cosine",
        "confidence_threshold": threshold.confidence,
        "normalized_threshold": matcher.threshold,
        "strangers_named": named_strangers(matcher, strangers, unknown),
    }
    for label, m in (("open_set", matcher), ("cosine", cosine)):
        result[label] = evaluate(m, known, truth, strangers)
    result["curve"] = {
        "open_set": curve(matcher, known, truth, strangers),
        "cosine": curve(cosine, known, truth, strangers),
    }
    return result


def named_strangers(matcher: Matcher, strangers: list, unknown: list[str]) -> list[dict]:
    """Every stranger the rule named: who, taken for whom, at what confidence."""
    found = [(p, e) for p, e in zip(unknown, strangers, strict=True) if e is not None]
    matches = matcher.match(np.stack([e for _, e in found])) if found else []
    return [
        {"stranger": p, "taken_for": m.name, "confidence": round(m.confidence, 3)}
        for (p, _), m in zip(found, matches, strict=True)
        if m.name is not None
    ]


def _decide(matcher: Matcher, embeddings: list[np.ndarray | None]) -> list:
    """(name, nearest, decision score) per photo; a photo without a face is a miss."""
    found = [e for e in embeddings if e is not None]
    matches = iter(matcher.match(np.stack(found)) if found else [])
    out = []
    for e in embeddings:
        m = next(matches) if e is not None else None
        out.append(
            (None, None, -np.inf)
            if m is None
            else (m.name, m.nearest, m.normalized if m.normalized is not None else m.cosine)
        )
    return out


def evaluate(matcher: Matcher, known, truth, strangers) -> dict[str, float]:
    k, s = _decide(matcher, known), _decide(matcher, strangers)
    return {
        "named_right": float(np.mean([n == t for (n, _, _), t in zip(k, truth, strict=True)])),
        "rank1": float(np.mean([near == t for (_, near, _), t in zip(k, truth, strict=True)])),
        "strangers_rejected": float(np.mean([n is None for n, _, _ in s])),
    }


def curve(matcher: Matcher, known, truth, strangers) -> list[tuple[float, float]]:
    """(FPIR, DIR) as the decision threshold sweeps over every stranger's score."""
    k, s = _decide(matcher, known), _decide(matcher, strangers)
    right = np.array([near == t for (_, near, _), t in zip(k, truth, strict=True)])
    k_score = np.array([z for _, _, z in k])
    s_score = np.sort(np.array([z for _, _, z in s]))[::-1]
    # i strangers accepted: the threshold sits just above the (i+1)-th highest stranger
    cuts = np.concatenate([s_score, [-np.inf]])
    return [(i / len(s_score), float(np.mean(right & (k_score > t)))) for i, t in enumerate(cuts)]


def augmentation_study(
    engine: dict[str, Any], lfw: Path, gallery_dir: Path, embed: Embeddings, cal: Calibration
) -> list[dict[str, Any]]:
    """Named/rejected at the stored rule, enrolling each photo plus each augmentation."""
    rows = []
    pipeline = embed.pipeline
    for shots in (1, 3):
        photos, enrolled, unknown = split_people(lfw, shots, calibrated_on(cal, lfw))
        base: dict[str, list[np.ndarray]] = {}
        crops: dict[str, list[np.ndarray]] = {}
        for person in enrolled:
            for path in photos[person][:shots]:
                image = read_image(path)
                faces = pipeline.faces(image)
                if not faces or embed(path) is None:
                    continue
                _, cut = pipeline.cut(image, rank_faces(faces, image.shape)[:1])
                base.setdefault(person, []).append(embed(path))
                crops.setdefault(person, []).extend(cut)
        with FaceLens(gallery=gallery_dir / f"aug{shots}.sqlite", **engine) as lens:
            store(lens, cal)
            threshold = lens.threshold
        probes = [(p, f) for p in base for f in photos[p][shots : shots + MAX_PROBES]]
        known = [embed(f) for _, f in probes]
        strangers = [embed(photos[p][0]) for p in unknown]
        truth = [p for p, _ in probes]
        for aug in ("none", *AUGMENTATIONS):
            names, vectors = [], []
            for person, views in base.items():
                extra = (
                    pipeline.embedder.embed(
                        [a for c in crops[person] for a in AUGMENTATIONS[aug](c)]
                    )
                    if aug != "none"
                    else []
                )
                for v in [*views, *extra]:
                    names.append(person)
                    vectors.append(v)
            m = Matcher(names, np.stack(vectors), 0.0, open_set=threshold.open_set)
            r = evaluate(m, known, truth, strangers)
            rows.append({"shots": shots, "augmentation": aug, **r})
    return rows


def fairness(results: list[dict[str, Any]]) -> str:
    """Strangers named, grouped by the enrolled person they were taken for (reported, not tuned).

    LFW carries no demographic labels, so the groups are the enrolled people: a person
    who draws many strangers is a group the rule serves worse.
    """
    lines = ["\n## strangers named, by the enrolled person they were taken for\n"]
    for r in results:
        named = r["strangers_named"]
        by_person: dict[str, list[str]] = {}
        for n in named:
            by_person.setdefault(n["taken_for"], []).append(f"{n['stranger']} ({n['confidence']})")
        lines.append(
            f"- {r['shots']}-shot, {r['calibration_of']}: {len(named)} of {r['unknown_people']} "
            f"strangers named ({len(named) / max(r['unknown_people'], 1):.1%}), drawn by "
            f"{len(by_person)} of {r['enrolled_people']} enrolled people"
        )
        lines += [f"  - {k}: {', '.join(v)}" for k, v in sorted(by_person.items())]
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for i, r in enumerate(results):
        for kind, style in (("open_set", "-"), ("cosine", ":")):
            fpir, dir_ = zip(*r["curve"][kind], strict=True)
            name = f"{r['rule_label']} ({r['calibration_of']})"
            label = f"{r['shots']}-shot, {name if kind == 'open_set' else 'raw cosine'}"
            ax.step(fpir, dir_, style, where="post", color=f"C{i}", label=label)
        op = r["open_set"]
        ax.plot(1 - op["strangers_rejected"], op["named_right"], "o", color=f"C{i}", ms=8)
        cos = r["cosine"]
        ax.plot(1 - cos["strangers_rejected"], cos["named_right"], "x", color=f"C{i}", ms=8)
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(0, 1)
    ax.set_xlabel("FPIR: strangers named as someone")
    ax.set_ylabel("DIR: enrolled people's other photos named right")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("o = open-set rule, x = one cosine\n" + title, fontsize=8)
    save_figure(fig, path)


COLUMNS = [
    ("shots", "photos enrolled", 0),
    ("calibration_of", "calibration", 0),
    ("rule", "rule", 0),
    ("named_right", "named right", 3),
    ("strangers_rejected", "strangers rejected", 3),
    ("rank1", "rank-1 (no threshold)", 3),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__)
    parser.add_argument("--format", default=DEFAULT_FORMAT)
    parser.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    parser.add_argument("--fpir", type=float, default=DEFAULT_FPIR, help="calibration target")
    parser.add_argument("--skip-augmentation", action="store_true")
    parser.add_argument(
        "--flip", action="store_true", help="embed every face with its mirror image too"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (LFW / "pairs_devtrain.csv").is_file():
        raise FacelensError(f"{LFW} is missing: put ../shared in place or set FACELENS_SHARED")
    engine = dict(
        bundle=Bundle.load(args.bundle),
        fmt=args.format,
        threads=args.threads,
        detector=args.detector,
        flip=args.flip,
    )
    pipeline = Pipeline.create(**engine)
    info = machine_info()
    print(f"# open-set identification: {pipeline.bundle.name}, {args.format}, "
          f"{args.threads} threads{', flip TTA' if args.flip else ''}\n\n"
          f"machine: {machine_line(info)}\n")  # fmt: skip
    embed = Embeddings(pipeline)
    cal = calibrate_lfw(pipeline, LFW, args.fpir)
    if cal.open_set is None:
        raise FacelensError("the dev-train pairs gave no open-set calibration")
    results, rows = [], []
    with tempfile.TemporaryDirectory(prefix="facelens-openset-") as tmp:
        for source, shots in ((None, 1), (None, 3), (cal, 1), (cal, 3)):
            if source is None and not engine["bundle"].open_set_path():
                continue  # a bundle built without its own calibration
            gallery = Path(tmp) / f"g{shots}{'b' if source is None else 'c'}.sqlite"
            r = protocol(engine, LFW, gallery, shots, embed, source)
            results.append(r)
            for rule in ("open_set", "cosine"):
                label = (
                    r["rule_label"] if rule == "open_set" else f"cosine {r['cosine_threshold']:.3f}"
                )
                rows.append({**r, "rule": label, **r[rule]})
        print(markdown_table(rows, COLUMNS))
        print(fairness(results))
        augmentation = (
            [] if args.skip_augmentation else augmentation_study(engine, LFW, Path(tmp), embed, cal)
        )
    if augmentation:
        print("\n## enrolment augmentation (stored open-set rule)\n")
        print(
            markdown_table(
                augmentation, [("augmentation", "augmentation", 0), *COLUMNS[:1], *COLUMNS[2:]]
            )
        )
    dest = out_dir(args, "openset")
    write_json(
        dest / "openset.json",
        {"machine": info, "settings": {k: str(v) for k, v in vars(args).items()},
         "protocols": results, "augmentation": augmentation, "photos_embedded": len(embed)},
    )  # fmt: skip
    plot(results, dest / "openset.png", f"{pipeline.bundle.name} ({args.format}), LFW")
    print(f"\nwrote {dest / 'openset.json'} and openset.png")
    return 0


if __name__ == "__main__":
    run_cli(main)
