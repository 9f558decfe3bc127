"""The open-set calibration a model bundle carries: made by ``convert``, read by ``edge``.

``convert`` runs :func:`calibrate_bundle` on its calibration folder (one sub-folder per
person) and writes the chosen rule with :func:`write_rule` into the bundle; a gallery
with no calibration of its own then decides with :func:`bundle_rule` from its first
enrolment. The computation is :func:`edge.gallery.openset.calibrate_open_set`, the same
one ``edge calibrate`` runs, so a bundle's rule and a home calibration are alike.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from edge.base.errors import BundleError, FacelensError
from edge.gallery.confidence import DEFAULT_FPIR
from edge.gallery.matching import OpenSet
from edge.gallery.openset import calibrate_open_set, identity_id, people_embeddings
from edge.model.bundle import Bundle
from edge.model.manifest import OpenSetInfo
from edge.model.pipeline import Pipeline

log = logging.getLogger(__name__)

OPEN_SET_FILE = "open_set.npz"
# People sampled from the calibration folder: the held-out half (700) fills simulated
# galleries of 500 with the 200 strangers calibration keeps outside them.
BUNDLE_PEOPLE = 1400
BUNDLE_PHOTOS = 4  # per person: three views and a probe


def write_rule(rule: OpenSet, path: Path | str) -> None:
    """Write ``rule`` (cohort and settings) to one ``.npz`` file."""
    with open(path, "wb") as f:
        np.savez(
            f,
            cohort=np.asarray(rule.cohort, np.float32),
            settings=np.array(json.dumps(rule.settings())),
        )


def read_rule(path: Path | str) -> OpenSet:
    """The rule :func:`write_rule` wrote; a damaged file is a :class:`BundleError`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return OpenSet.from_settings(json.loads(str(z["settings"])), z["cohort"])
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError(f"cannot read the open-set calibration {path} ({exc}); rebuild") from exc


def bundle_rule(bundle: Bundle) -> OpenSet | None:
    """The bundle's open-set rule, or ``None`` (built without enough people: see its warning)."""
    path = bundle.open_set_path()
    return None if path is None else read_rule(path)


def calibrate_bundle(
    pipeline: Pipeline,
    folder: Path | str,
    progress: bool = True,
    seed: int = 0,
    max_people: int = BUNDLE_PEOPLE,
) -> tuple[OpenSetInfo, OpenSet | None]:
    """The open-set rule for ``pipeline``'s model from a folder of people, and what to record.

    A seeded sample of at most ``max_people`` (default :data:`BUNDLE_PEOPLE`) people
    (:data:`BUNDLE_PHOTOS` photos each); the manifest records their names' hashes (see
    :func:`identity_id`) so that evaluations can leave them out. Too few people: no rule,
    and a warning that says so.
    """
    try:
        sample = dict(max_people=max_people, max_photos=BUNDLE_PHOTOS, seed=seed)
        embeddings = people_embeddings(pipeline, folder, progress, **sample)
        report = calibrate_open_set(embeddings, DEFAULT_FPIR, seed=seed)
    except FacelensError as exc:
        warning = (
            f"the bundle carries no open-set calibration ({exc}); galleries use the bundle's "
            "cosine threshold, which names strangers far more often, until `edge calibrate "
            "--people DIR` (or rebuild with --calibration holding one folder per person)"
        )
        return OpenSetInfo(warning=warning), None
    people = sorted({Path(k).parent.name for k in embeddings})
    rule = report.open_set
    info = OpenSetInfo(
        file=OPEN_SET_FILE,
        people=len(people),
        photos=len(embeddings),
        how=(
            f"{rule.label}, cohort of {len(rule.cohort)} faces; thresholds measured on "
            f"simulated galleries of held-out people; {len(people)} people, "
            f"{len(embeddings)} photos of {folder}"
        ),
        identities=tuple(identity_id(n) for n in people),
    )
    return info, rule
