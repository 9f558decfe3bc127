"""The ``edge`` command: enrol people, recognise them in a camera/video/images, manage the gallery.

Every problem with the user's input ends as one ``error: ...`` line on stderr and exit
code 1, never a traceback; Ctrl-C stops cleanly (exit code 130): see :mod:`edge.commandline`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge import paths
from edge.bundle import DEFAULT_FORMAT, RUNTIME_FORMATS
from edge.commandline import run_command
from edge.errors import FacelensError

if TYPE_CHECKING:  # the library loads OpenCV and a runtime: only once a command runs
    from edge.api import FaceLens
    from edge.run import FrameResult

log = logging.getLogger("edge")


def _default_threads() -> int:
    return min(4, os.cpu_count() or 1)


def _add_bundle(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, help="model bundle folder (default: <data>/bundle)")
    p.add_argument("--gallery", type=Path, help="gallery file (default: <data>/gallery.sqlite)")


def _add_engine(p: argparse.ArgumentParser) -> None:
    _add_bundle(p)
    p.add_argument(
        "--format", default=DEFAULT_FORMAT, choices=RUNTIME_FORMATS, help="artifact to run"
    )
    p.add_argument(
        "--runtime",
        choices=("litert", "onnxruntime", "opencv"),
        help="inference runtime (default: litert for .tflite, onnxruntime for .onnx)",
    )
    p.add_argument("--threads", type=int, default=_default_threads(), help="inference threads")
    p.add_argument("--detector", type=Path, help="YuNet .onnx file (default: cached download)")
    p.add_argument(
        "--no-detect",
        action="store_true",
        help="no face detection: the whole image is the face (the original notebook's mode)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge",
        description="Recognise enrolled people on a CPU with a facelens model bundle. "
        f"<data> is {paths.home()} ($FACELENS_HOME overrides); the gallery key comes "
        "from $FACELENS_KEY (64 hex chars or base64) or a 0600 key file beside the gallery.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="say more on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("enroll", help="add a person from one or more photos")
    p.add_argument("name")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--face", type=int, help="which face to use when several are alike (#N)")
    _add_engine(p)

    p = sub.add_parser("recognize", help="name the faces in a camera, video, image or folder")
    p.add_argument("source", help="camera index (0), video file, stream URL, image or folder")
    p.add_argument("--threshold", type=float, help="cosine threshold (overrides calibration)")
    p.add_argument("--json", action="store_true", help="one JSON line per face, then a summary")
    p.add_argument("--show", action="store_true", help="show a window (needs an OpenCV GUI)")
    p.add_argument("--save", type=Path, metavar="OUT.mp4", help="write the annotated video")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    _add_engine(p)

    p = sub.add_parser("people", help="list who is enrolled (no key needed)")
    p.add_argument("--gallery", type=Path, help="gallery file (default: <data>/gallery.sqlite)")

    p = sub.add_parser("forget", help="erase a person from the gallery for good")
    p.add_argument("name")
    p.add_argument("--gallery", type=Path, help="gallery file (default: <data>/gallery.sqlite)")

    p = sub.add_parser("calibrate", help="choose the threshold on labelled pairs")
    p.add_argument("--pairs", type=Path, required=True, help="CSV with img_a,img_b,same")
    p.add_argument("--images", type=Path, required=True, help="folder the pair paths are in")
    p.add_argument("--far", type=float, default=0.001, help="target false-accept rate")
    _add_engine(p)

    p = sub.add_parser(
        "demo", help="one-shot recognition end to end (real people, a clip): no camera, no network"
    )
    p.add_argument("--bundle", type=Path, help="bundle to use (default: built if missing)")
    p.add_argument("--out", type=Path, help="output folder (default: <data folder>/demo)")
    p.add_argument("--threads", type=int, default=_default_threads(), help="inference threads")
    p.add_argument(
        "--people",
        type=Path,
        help="real people: one sub-folder of photos each (default: LFW in the shared folder)",
    )
    return parser


def _lens(args: argparse.Namespace) -> FaceLens:
    """The FaceLens the command's options describe (people/forget give only --gallery)."""
    from edge.api import FaceLens

    engine = {}
    if hasattr(args, "format"):
        engine = dict(
            fmt=args.format,
            runtime=args.runtime,
            threads=args.threads,
            detector=args.detector,
            detect=not args.no_detect,
            threshold=getattr(args, "threshold", None),
        )
    return FaceLens(getattr(args, "bundle", None), args.gallery, **engine)


def cmd_enroll(args: argparse.Namespace) -> int:
    with _lens(args) as lens:
        report = lens.enroll(args.name, args.images, args.face)
        for photo in report:
            x, y, w, h = (round(v) for v in photo.face.box)
            print(
                f"{photo.path}: face at ({x}, {y}, {w}x{h}) score {photo.face.score:.2f}"
                f" (of {photo.faces_found} found)"
            )
        total = sum(p.embeddings for p in lens.people() if p.name == args.name)
        print(
            f"enrolled {args.name!r} from {len(report)} photo(s) into {lens.gallery_path}"
            f" ({total} embedding(s) in all)"
        )
    return 0


def cmd_recognize(args: argparse.Namespace) -> int:
    from edge.api import STAGES
    from edge.display import Display
    from edge.run import recognize_frames
    from edge.sources import open_source
    from edge.stats import RunStats

    with _lens(args) as lens:
        lens.load()
        print(lens.describe(), file=sys.stderr)
        if not len(lens.matcher):
            log.warning("no one is enrolled in the gallery: every face is unknown (`edge enroll`)")
        stats = RunStats(STAGES)
        interrupted = False
        with open_source(args.source) as source:
            display = Display(args.show, args.save, source.fps) if args.show or args.save else None
            frames = recognize_frames(lens, source, stats, display, args.max_frames)
            try:
                for result in frames:
                    for line in _face_lines(result, args.json):
                        print(line, flush=True)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                if display is not None:
                    display.close()
    print(json.dumps({"summary": stats.summary()}) if args.json else stats.table())
    if args.save:
        print(f"annotated video: {args.save}", file=sys.stderr)
    return 130 if interrupted else 0


def _face_lines(result: FrameResult, as_json: bool) -> list[str]:
    frame = result.frame
    if as_json:
        ms = {k: round(v, 2) for k, v in result.ms.items()}
        return [
            json.dumps(
                {
                    "source": frame.name,
                    "frame": frame.index,
                    "box": [round(v, 1) for v in face.box],
                    "name": face.name,
                    "score": round(face.score, 4),
                    "ms": ms,
                }
            )
            for face in result.faces
        ]
    return [
        f"{frame.name} frame {frame.index}: {face.name or 'unknown'} {face.score:.3f} at "
        f"({', '.join(str(round(v)) for v in face.box)})"
        for face in result.faces
    ]


def cmd_people(args: argparse.Namespace) -> int:
    with _lens(args) as lens:
        people = lens.people()
        if not people:
            print(f"no one is enrolled in {lens.gallery_path}")
            return 0
        for p in people:
            print(
                f"{p.name}\t{p.embeddings} embedding(s)\tsince {p.enrolled}\tbundle {p.fingerprint}"
            )
        print(f"{len(people)} people in {lens.gallery_path}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    with _lens(args) as lens:
        removed = lens.forget(args.name)
        if not removed:
            names = ", ".join(p.name for p in lens.people()) or "no one"
            raise FacelensError(
                f"{args.name!r} is not in the gallery {lens.gallery_path} (enrolled: {names})"
            )
        print(
            f"forgot {args.name!r}: removed {removed} encrypted embedding(s) from "
            f"{lens.gallery_path} (secure delete + vacuum)"
        )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    with _lens(args) as lens:
        result = lens.calibrate(args.pairs, args.images, args.far, progress=sys.stderr.isatty())
        bundle = lens.bundle
        print(
            f"threshold {result.cosine:.4f} ({result.how})\n"
            f"at this threshold: FAR {result.far:.4f}, TAR {result.tar:.4f}, "
            f"accuracy {result.accuracy:.4f} on {result.genuine_pairs} same + "
            f"{result.impostor_pairs} different pairs ({result.skipped_pairs} skipped: no face)\n"
            f"stored in {lens.gallery_path} for bundle {bundle.name} ({bundle.fingerprint})"
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo import run_demo

    return run_demo(args.bundle, args.out, args.threads, args.people)


COMMANDS = {
    "enroll": cmd_enroll,
    "recognize": cmd_recognize,
    "people": cmd_people,
    "forget": cmd_forget,
    "calibrate": cmd_calibrate,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edge`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    return run_command(lambda: COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
