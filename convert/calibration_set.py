"""The INT8 calibration set and the held-out faces of the fidelity check, cut exactly as
``edge`` will. (Not edge's open-set calibration of a gallery: :mod:`edge.gallery.openset`.)

Images are found recursively, shuffled with a seed, and walked until enough faces
are found: the INT8 calibration set first, then a disjoint evaluation set from the
images left over (or from ``--eval DIR``). Each image goes through edge's run-time
path: ``read_image`` -> ``create_detector`` -> ``choose_face`` -> ``cut_face`` ->
``InputSpec.normalize``.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from convert._quiet import progress_stream
from edge.base.errors import AmbiguousFacesError, CropError, ImageError, NoFaceError
from edge.faces.detect import FaceDetector, create_detector
from edge.faces.dominant import choose_face
from edge.media.images import list_images, read_image
from edge.model.manifest import FaceSetInfo
from edge.model.preprocess import InputSpec, cut_face


@dataclass
class FaceSet:
    """Normalised face crops with the photo each came from and why others were skipped."""

    batch: np.ndarray  # (N, H, W, C) float32, ready for the model
    paths: list[Path]
    root: Path
    skipped: Counter = field(default_factory=Counter)
    detector: str = "none"

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def identities(self) -> list[str] | None:
        """The parent folder of each photo under ``root`` (LFW layout), or ``None`` if flat."""
        names = [p.parent.relative_to(self.root).as_posix() for p in self.paths]
        return None if all(n == "." for n in names) else names

    def describe(self) -> FaceSetInfo:
        return FaceSetInfo(
            source=str(self.root),
            count=len(self),
            skipped=dict(self.skipped),
            detector=self.detector,
        )


def require_images(folder: Path | str) -> list[Path]:
    """Every image file under ``folder`` (recursively), sorted; raises if there are none."""
    files = list_images(folder)
    if not files:
        raise ImageError(
            f"no images (.jpg, .png, ...) under {folder}; point --calibration/--eval at photos"
        )
    return files


def _pairs_first(paths: Sequence[Path], rng: random.Random) -> list[Path]:
    """Reorder so identities come two photos at a time (genuine pairs for the threshold)."""
    groups: dict[Path, list[Path]] = defaultdict(list)
    for p in paths:
        groups[p.parent].append(p)
    paired = [g for g in groups.values() if len(g) >= 2]
    rng.shuffle(paired)
    head = [p for g in paired for p in g[:2]]
    taken = set(head)
    return head + [p for p in paths if p not in taken]


def collect_faces(
    paths: Sequence[Path],
    root: Path,
    spec: InputSpec,
    count: int,
    detector: FaceDetector | None,
    desc: str,
    progress: bool = True,
) -> tuple[FaceSet, int]:
    """Walk ``paths`` until ``count`` faces are cut; returns them and how many paths were used."""
    crops: list[np.ndarray] = []
    used: list[Path] = []
    skipped: Counter = Counter()
    bar = tqdm(
        total=count,
        desc=desc,
        unit="face",
        disable=None if progress else True,
        file=progress_stream(),
        leave=False,
    )
    n = 0
    for n, path in enumerate(paths, 1):  # noqa: B007  (n is read after the loop)
        try:
            image = read_image(path)
        except ImageError:  # empty, corrupt or huge: counted, the rest still calibrate
            skipped["unreadable"] += 1
            continue
        face = None
        if spec.crop.kind != "whole_image":
            try:
                face = choose_face(detector.detect(image), image.shape, str(path))
            except NoFaceError:
                skipped["no face"] += 1
                continue
            except AmbiguousFacesError:
                skipped["no dominant face"] += 1
                continue
        try:
            crop = cut_face(image, spec, face)
        except CropError:
            skipped["face not croppable"] += 1
            continue
        crops.append(spec.normalize(crop))
        used.append(path)
        bar.update()
        if len(crops) >= count:
            break
    bar.close()
    batch = (
        np.stack(crops)
        if crops
        else np.zeros((0, spec.height, spec.width, spec.channels), np.float32)
    )
    name = detector.name if detector is not None else "none (whole image)"
    return FaceSet(batch=batch, paths=used, root=root, skipped=skipped, detector=name), n


def calibration_and_eval(
    calibration: Path | str,
    spec: InputSpec,
    calibration_count: int = 200,
    eval_dir: Path | str | None = None,
    eval_count: int = 100,
    seed: int = 0,
    progress: bool = True,
    detector: Path | str | None = None,
) -> tuple[FaceSet, FaceSet]:
    """The INT8 calibration set and disjoint held-out faces (another folder, or the rest
    of this one).

    ``detector``: a YuNet file (default: edge's search, ``$FACELENS_YUNET`` then the cache).
    """
    if calibration_count < 1 or eval_count < 1:
        raise ImageError("--calibration-count and --eval-count must be at least 1")
    root = Path(calibration)
    files = require_images(root)
    rng = random.Random(seed)
    rng.shuffle(files)
    found = None if spec.crop.kind == "whole_image" else create_detector(detector)
    cal, used = collect_faces(
        files, root, spec, calibration_count, found, "calibration faces", progress
    )
    if not len(cal):
        raise ImageError(
            f"no usable face in any of the {used} images under {root} "
            f"(skipped: {dict(cal.skipped)}); use photos with one clear face each"
        )
    if eval_dir is None:
        eval_root, rest = root, _pairs_first(files[used:], rng)
        if not rest:
            raise ImageError(
                f"all {len(files)} images under {root} went to calibration; pass --eval DIR "
                "or lower --calibration-count"
            )
    else:
        eval_root = Path(eval_dir)
        consumed = {p.resolve() for p in files[:used]}  # an overlapping --eval stays disjoint
        rest = _pairs_first(
            [p for p in require_images(eval_root) if p.resolve() not in consumed], rng
        )
    held, used_eval = collect_faces(
        rest, eval_root, spec, eval_count, found, "held-out faces", progress
    )
    if not len(held):
        raise ImageError(
            f"no usable face in the {used_eval} held-out images under {eval_root} "
            f"(skipped: {dict(held.skipped)}); pass --eval DIR with photos of faces"
        )
    return cal, held
