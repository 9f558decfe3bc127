"""Anonymisation study: do the notebook's masks stop the model from naming a person?

For many LFW identities, one photo is enrolled and another is the probe. Each mask
(eyes bar, eyes + nose, full face, Gaussian blur of the face) is placed on the probe
from its landmarks; the masked face is cut with the probe's original detection (so
the study measures the embedding, not the detector) and compared with every
enrolled photo. Reported per model and mask: the drop in similarity to the person's
own enrolled photo, how often they are still named (rank-1 and above the
threshold), and how often the detector still finds the masked face.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from edge.base.errors import FacelensError, ImageError
from edge.base.numeric import l2_normalize
from edge.media.images import list_images, read_image
from explain.base import FeatureFn
from explain.crops import FaceCrop, FaceLoader
from explain.regions import FaceFrame, anonymisation_masks

MASKS = ("none", "eyes", "eyes_nose", "full_face", "blur")


def apply_mask(image: np.ndarray, landmarks: np.ndarray, mask: str) -> np.ndarray:
    """A copy of the BGR photo with ``mask`` placed from the face's 5 landmarks."""
    if mask not in MASKS:
        raise ValueError(f"unknown mask {mask!r}: use one of {', '.join(MASKS)}")
    if mask == "none":
        return image.copy()
    shapes = anonymisation_masks(landmarks, image.shape)
    out = image.copy()
    if mask == "blur":
        sigma = 0.35 * FaceFrame.from_landmarks(landmarks).eye_distance
        blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
        out[shapes["full_face"]] = blurred[shapes["full_face"]]
    else:
        out[shapes[mask]] = 0  # black, as in the notebook
    return out


def pick_people(images_dir: Path, count: int, seed: int = 0) -> list[tuple[str, Path, Path]]:
    """``count`` identities with >= 2 photos: (name, enrolled photo, probe photo), seeded."""
    folders = sorted(p for p in Path(images_dir).iterdir() if p.is_dir())
    people = []
    for folder in folders:
        photos = list_images(folder, recursive=False)
        if len(photos) >= 2:
            people.append((folder.name, photos[0], photos[1]))
    if len(people) < 2:
        raise FacelensError(
            f"{images_dir} needs folders of people with >= 2 photos each (LFW's images/ layout)"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(people), size=min(count, len(people)), replace=False)
    return [people[i] for i in sorted(chosen)]


@dataclass
class Probe:
    name: str
    enrolled: FaceCrop
    masked: dict[str, FaceCrop]
    detected: dict[str, bool]


def _overlaps(a: tuple, b: tuple, min_iou: float = 0.3) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter) >= min_iou


def prepare_probes(
    people: list[tuple[str, Path, Path]], loader: FaceLoader, progress: bool = True
) -> tuple[list[Probe], list[dict[str, str]]]:
    """Detect, mask and crop every person's photos; people without a usable face are skipped."""
    probes, skipped = [], []
    for name, enrol_path, probe_path in tqdm(
        people, desc="masking", leave=False, disable=None if progress else True
    ):
        try:
            enrolled = loader.load(enrol_path)
            image = read_image(probe_path)
            face = loader.find(image, str(probe_path))
        except ImageError as exc:
            skipped.append({"person": name, "reason": str(exc)})
            continue
        if face is None or face.landmarks is None:
            raise FacelensError("the anonymisation study places masks from landmarks: use YuNet")
        masked, detected = {}, {}
        for mask in MASKS:
            photo = apply_mask(image, face.landmarks, mask)
            masked[mask] = loader.crop(photo, face, f"{probe_path} [{mask}]")
            found = loader.detector.detect(photo) if loader.detector else []
            detected[mask] = any(_overlaps(f.box, face.box) for f in found)
        probes.append(Probe(name, enrolled, masked, detected))
    return probes, skipped


def study(probes: list[Probe], models: dict[str, FeatureFn], threshold: float) -> dict[str, Any]:
    """Per model and mask: similarity to the own enrolled photo, its drop, named rates."""
    if len(probes) < 2:
        raise FacelensError("the anonymisation study needs at least 2 people with usable faces")
    results: dict[str, Any] = {}
    for label, fn in models.items():
        gallery = l2_normalize(fn(np.stack([p.enrolled.pixels for p in probes])))
        per_mask = {}
        clean_sim = None
        for mask in MASKS:
            emb = l2_normalize(fn(np.stack([p.masked[mask].pixels for p in probes])))
            sims = emb @ gallery.T
            own = np.diag(sims)
            clean_sim = own if mask == "none" else clean_sim
            rank1 = sims.argmax(axis=1) == np.arange(len(probes))
            per_mask[mask] = {
                "similarity_mean": float(own.mean()),
                "similarity_drop_mean": float((clean_sim - own).mean()),
                "rank1_rate": float(rank1.mean()),
                "named_rate": float((rank1 & (own >= threshold)).mean()),
                "detected_rate": float(np.mean([p.detected[mask] for p in probes])),
            }
        results[label] = per_mask
    return {"people": len(probes), "threshold": threshold, "models": results}
