"""``edge demo``: the whole loop with no camera and no network.

Finds a bundle (or builds a small default one with ``python -m convert`` in a
subprocess), enrols a sample face into a fresh demo gallery, recognises it in a
generated 640x480 clip where it moves and changes size among other faces and
non-faces, and writes an annotated video and a contact sheet.

Sample photos come from scikit-image's bundled images (``astronaut``, ``camera``,
``chelsea``, ``coffee``), imported only here. When ``../shared/data/lfw`` exists
(``$FACELENS_SHARED`` overrides), real people are added: two enrolled from one photo
each and shown in other photos, and two never enrolled. Both shared folders are the
demo's own choice: the runtime itself never looks beside a checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge import paths
from edge.api import FaceLens
from edge.bundle import DEFAULT_FORMAT, MANIFEST_NAME, Bundle
from edge.detect import find_yunet
from edge.display import Display
from edge.draw import annotate, contact_sheet
from edge.errors import DetectorError, FacelensError
from edge.run import FrameResult, run_to_end
from edge.sources import open_source

FRAME_W, FRAME_H, FPS = 640, 480, 8
LFW_KNOWN = ("Serena_Williams", "Tony_Blair")
LFW_STRANGERS = ("Colin_Powell", "Jennifer_Aniston")


def _bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


def sample_images() -> dict[str, np.ndarray]:
    """scikit-image's bundled photos as BGR: two people, a cat and a cup."""
    try:
        from skimage import data
    except ImportError:
        raise FacelensError(
            "edge demo takes its sample photos from scikit-image, which is not installed: "
            "`pip install scikit-image` (or `uv sync`), then run it again"
        ) from None
    return {
        "astronaut": _bgr(data.astronaut()),
        "cameraman": _bgr(data.camera()),
        "cat": _bgr(data.chelsea()),
        "coffee": _bgr(data.coffee()),
    }


def lfw_people(lfw: Path) -> dict[str, list[Path]]:
    """The demo's LFW people that exist in ``lfw/images`` (known ones need 2+ photos)."""
    people = {}
    for name in (*LFW_KNOWN, *LFW_STRANGERS):
        files = sorted((lfw / "images" / name).glob("*.jpg"))
        if len(files) >= (2 if name in LFW_KNOWN else 1):
            people[name] = files
    return people


def shared_dir() -> Path:
    """The project's shared folder: ``$FACELENS_SHARED``, else ``shared`` beside the checkout.

    Only the demo looks there (so a fresh clone's ``edge demo`` runs offline on a machine
    that has the folder); the library takes every path from its caller.
    """
    return Path(os.environ.get("FACELENS_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def find_detector() -> Path:
    """YuNet as :func:`edge.detect.find_yunet` finds it, or in the shared models folder."""
    try:
        return find_yunet(search=[shared_dir() / "models" / "yunet"])
    except DetectorError as exc:
        raise DetectorError(
            f"edge demo needs the YuNet face detector: {exc}; or set FACELENS_YUNET"
        ) from None


# -- the bundle ---------------------------------------------------------------------------


def _jitter(image: np.ndarray, rng: np.random.Generator, size: int = 320) -> np.ndarray:
    """A photo at a random scale, shift, brightness and mirror on a plain square canvas."""
    scale = rng.uniform(0.5, 0.9) * size / max(image.shape[:2])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        small = small[:, ::-1]
    small = np.clip(small * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
    canvas = np.full((size, size, 3), rng.integers(40, 200), np.uint8)
    y = rng.integers(0, size - small.shape[0] + 1)
    x = rng.integers(0, size - small.shape[1] + 1)
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return canvas


def write_calibration_images(folder: Path, samples: dict[str, np.ndarray], n: int = 24) -> Path:
    """Varied copies of the sample faces, one folder per person (convert reads identities)."""
    rng = np.random.default_rng(0)
    for person in ("astronaut", "cameraman"):
        (folder / person).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(folder / person / f"{i:03d}.png"), _jitter(samples[person], rng))
    return folder


def build_default_bundle(out: Path, calibration: Path, detector: Path) -> None:
    """``python -m convert`` in a subprocess: VGG16 with ImageNet weights, else untrained."""
    base = [
        sys.executable, "-m", "convert", "--model", "vgg16", "--formats", DEFAULT_FORMAT,
        "--calibration", str(calibration), "--calibration-count", "32", "--eval-count", "16",
        "--detector", str(detector), "--out", str(out), "--allow-failures", "--force",
    ]  # fmt: skip
    for weights in ("imagenet", "none"):
        kind = "ImageNet" if weights == "imagenet" else "seeded UNTRAINED"
        print(f"building a {DEFAULT_FORMAT} VGG16 bundle with {kind} weights at {out} ...")
        started = time.perf_counter()
        run = subprocess.run([*base, "--weights", weights], capture_output=True, text=True)
        if run.returncode == 0:
            print(f"  built in {time.perf_counter() - started:.0f} s")
            return
        reason = (run.stderr.strip().splitlines() or ["no output"])[-1]
        if "No module named" in reason:
            raise FacelensError(
                f"no bundle at {out}, and building one needs the convert tools "
                "(`pip install facelens[convert]`, or `uv sync`); or pass --bundle DIR"
            )
        print(f"  {reason}")
        if weights == "imagenet":
            print(
                "!! ImageNet weights cannot be had (offline?): building with SEEDED UNTRAINED "
                "weights instead. Such a model does not know faces: the demo then shows the "
                "pipeline working, not real recognition. !!"
            )
    raise FacelensError(f"could not build the demo bundle at {out}: {reason}")


# -- the clip -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """What the demo put where in a frame: a person's name, a stranger or a non-face."""

    label: str
    kind: str  # "known", "stranger" or "object"
    box: tuple[int, int, int, int]


def _paste(canvas: np.ndarray, image: np.ndarray, x: int, y: int, height: int) -> tuple:
    width = round(image.shape[1] * height / image.shape[0])
    width, height = min(width, FRAME_W - x), min(height, FRAME_H - y)
    canvas[y : y + height, x : x + width] = cv2.resize(image, (width, height))[:height, :width]
    return (x, y, width, height)


def make_clip(
    path: Path, samples: dict[str, np.ndarray], lfw: dict[str, list[Path]]
) -> list[list[Placed]]:
    """Write the demo clip; returns, per frame, what was placed where."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (FRAME_W, FRAME_H))
    if not writer.isOpened():
        raise FacelensError(f"cannot write the demo clip {path}")
    scenes: list[list[tuple[str, str, np.ndarray]]] = []
    astro = ("astronaut", "known", samples["astronaut"])
    scenes += [[astro]] * 16  # alone, moving and growing
    scenes += [[astro, ("cameraman", "stranger", samples["cameraman"])]] * 10
    scenes += [[("cat", "object", samples["cat"]), ("coffee", "object", samples["coffee"])]] * 6
    for name, files in lfw.items():  # other photos of the known people; strangers' photos
        shown = files[1:4] if name in LFW_KNOWN else files[:2]
        kind = "known" if name in LFW_KNOWN else "stranger"
        scenes += [[(name, kind, cv2.imread(str(f)))] for f in shown]
    truth = []
    rng = np.random.default_rng(1)
    for i, items in enumerate(scenes):
        canvas = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
        canvas[:] = (70 + i % 40, 90, 110)
        placed = []
        slot = FRAME_W // len(items)
        for j, (label, kind, image) in enumerate(items):
            height = int(rng.integers(200, 330)) if len(items) == 1 else int(rng.integers(170, 240))
            width = round(image.shape[1] * height / image.shape[0])
            x = j * slot + int(rng.integers(0, max(1, slot - width)))
            y = int(rng.integers(0, FRAME_H - height))
            placed.append(Placed(label, kind, _paste(canvas, image, x, y, height)))
        writer.write(canvas)
        truth.append(placed)
    writer.release()
    return truth


# -- scoring what the pipeline said against what the clip holds ---------------------------


def _owner(box: tuple[float, ...], placed: list[Placed]) -> Placed | None:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    for p in placed:
        x, y, w, h = p.box
        if x <= cx <= x + w and y <= cy <= y + h:
            return p
    return None


def tally(results: list[FrameResult], truth: list[list[Placed]]) -> dict[str, int]:
    """Counts of right names, misses, wrong names, and faces found on non-faces."""
    counts = dict.fromkeys(
        ("known", "named_right", "known_missed", "strangers", "strangers_rejected",
         "wrong_name", "object_faces"),
        0,
    )  # fmt: skip
    for result, placed in zip(results, truth, strict=True):
        for p in placed:
            faces = [f for f in result.faces if _owner(f.box, [p])]
            if p.kind == "object":
                counts["object_faces"] += len(faces)
                continue
            best = max(faces, key=lambda f: f.detection_score, default=None)
            if p.kind == "known":
                counts["known"] += 1
                if best is not None and best.name == p.label:
                    counts["named_right"] += 1
                elif best is None or best.name is None:
                    counts["known_missed"] += 1
                else:
                    counts["wrong_name"] += 1
            else:
                counts["strangers"] += 1
                if best is None or best.name is None:
                    counts["strangers_rejected"] += 1
                else:
                    counts["wrong_name"] += 1
    return counts


# -- the whole demo -----------------------------------------------------------------------


def _describe(bundle: Bundle) -> str:
    source = bundle.manifest.source
    fidelity = bundle.artifact(DEFAULT_FORMAT).fidelity
    text = f"{bundle.name} at {bundle.path}\n  weights: {source.weights if source else 'unknown'}"
    if fidelity:
        text += (
            f"; {DEFAULT_FORMAT} cosine to float: mean {fidelity.cosine_mean:.4f}, "
            f"min {fidelity.cosine_min:.4f}"
        )
    if bundle.manifest.untrained:
        text += (
            "\n  !! UNTRAINED weights: not a face model, so only near-identical faces match; "
            "real people from LFW are left out. For real recognition pass --bundle with a "
            "face-trained bundle (see the README) !!"
        )
    return text


def run_demo(bundle_dir: Path | None, out: Path | None, threads: int | None) -> int:
    """Run the demo; prints what it did and where the outputs are. Returns the exit code."""
    started = time.perf_counter()
    out = out or paths.home() / "demo"
    out.mkdir(parents=True, exist_ok=True)
    samples = sample_images()
    detector = find_detector()
    bundle_dir = bundle_dir or paths.default_bundle_dir()
    if not (bundle_dir / MANIFEST_NAME).is_file():
        calibration = write_calibration_images(out / "calibration", samples)
        build_default_bundle(bundle_dir, calibration, detector)
    gallery_path = out / "gallery.sqlite"
    for stale in (gallery_path, gallery_path.with_name(gallery_path.name + ".key")):
        stale.unlink(missing_ok=True)  # a fresh demo gallery every run; never the user's
    lens = FaceLens(bundle_dir, gallery_path, threads=threads, detector=detector)
    pipeline = lens.pipeline
    bundle = pipeline.bundle
    print(f"bundle: {_describe(bundle)}")
    print(f"runtime: {pipeline.embedder.format} via {pipeline.embedder.backend.runtime}, "
          f"{threads} thread(s); detector: {pipeline.detector_name} ({detector})")  # fmt: skip

    lfw_dir = shared_dir() / "data" / "lfw"
    # An untrained model cannot tell real people apart: show them only with a face model.
    untrained = bundle.manifest.untrained
    lfw = lfw_people(lfw_dir) if lfw_dir.is_dir() and not untrained else {}
    cv2.imwrite(str(out / "astronaut.png"), samples["astronaut"])
    enrolments = {"astronaut": [out / "astronaut.png"]}
    enrolments |= {name: files[:1] for name, files in lfw.items() if name in LFW_KNOWN}
    for name, photos in enrolments.items():
        face = lens.enroll(name, photos)[0].face
        print(f"enrolled {name} from {photos[0].name} (face score {face.score:.2f})")
    threshold = lens.threshold
    if not lfw and not untrained:
        print(f"(no LFW photos at {lfw_dir}: the clip uses scikit-image's samples only)")

    clip = out / "clip.mp4"
    truth = make_clip(clip, samples, lfw)
    annotated = out / "annotated.mp4"
    results: list[FrameResult] = []
    display = Display(save=annotated, fps=FPS)
    try:
        with open_source(str(clip)) as source:
            stats = run_to_end(lens, source, display, results.append)
    finally:
        display.close()
        lens.close()
    sheet = out / "contact_sheet.png"
    picks = np.linspace(0, len(results) - 1, 12).round().astype(int)
    cv2.imwrite(
        str(sheet),
        contact_sheet(
            [annotate(results[i].frame.image, results[i].faces) for i in picks], columns=4
        ),
    )

    c = tally(results, truth)
    print(f"threshold: cosine {threshold.value:.3f} ({threshold.origin})")
    print(
        f"recognised: {c['named_right']}/{c['known']} appearances of enrolled people named "
        f"right ({c['known_missed']} missed); {c['strangers_rejected']}/{c['strangers']} "
        f"strangers left unknown; {c['wrong_name']} wrong names; "
        f"{c['object_faces']} faces 'found' on the cat and the cup"
    )
    print(stats.table())
    print(f"input clip:    {clip}")
    print(f"annotated:     {annotated}")
    print(f"contact sheet: {sheet}")
    print(f"demo done in {time.perf_counter() - started:.0f} s")
    return 0
