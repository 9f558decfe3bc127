"""Build step: the bundle's open-set calibration, from the calibration folder's people.

Model-agnostic: it runs the finished bundle through edge's own pipeline, so any model
``convert`` builds (VGG16, dlib, SFace...) gets the same rule ``edge calibrate`` would
choose. The computation lives in :mod:`edge.gallery.bundled`; this step only writes it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from edge.gallery.bundled import BUNDLE_PEOPLE, OPEN_SET_FILE, calibrate_bundle, write_rule
from edge.model.bundle import RUNTIME_FORMATS, Bundle, sha256_path
from edge.model.manifest import OpenSetInfo
from edge.model.pipeline import Pipeline

log = logging.getLogger(__name__)


def add_open_set(
    bundle_dir: Path,
    people: Path | str,
    detector: Path | str | None = None,
    progress: bool = True,
    seed: int = 0,
    max_people: int | None = None,
) -> OpenSetInfo:
    """Calibrate the bundle at ``bundle_dir`` on ``people`` (one folder per person) and record
    it in its manifest; without enough people the manifest says so instead."""
    bundle = Bundle.load(bundle_dir)
    runnable = [f for f in RUNTIME_FORMATS if f in bundle.formats]
    if not runnable:
        info = OpenSetInfo(warning="no runtime artifact to calibrate the open-set rule with")
    else:
        pipeline = Pipeline.create(bundle, fmt=runnable[0], detector=detector)
        cap = max_people or BUNDLE_PEOPLE
        info, rule = calibrate_bundle(pipeline, people, progress, seed, cap)
        if rule is not None:
            write_rule(rule, bundle_dir / OPEN_SET_FILE)
            info = replace(info, sha256=sha256_path(bundle_dir / OPEN_SET_FILE))
    if info.warning:
        log.warning(info.warning)
    replace(bundle.manifest, open_set=info).save(bundle_dir)
    return info
