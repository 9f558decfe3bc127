"""The ``edge`` command: enrol people, recognise them in a camera/video/images, manage the gallery.

Every problem with the user's input ends as one ``error: ...`` line on stderr and exit
code 1, never a traceback; Ctrl-C stops cleanly (exit code 130): see :mod:`edge.cli.commandline`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.base import paths
from edge.base.errors import FacelensError
from edge.base.names import did_you_mean, escape, lookup_name, shown
from edge.cli import argtypes, review
from edge.cli.commandline import run_command
from edge.model.bundle import DEFAULT_FORMAT, RUNTIME_FORMATS

if TYPE_CHECKING:  # the library loads OpenCV and a runtime: only once a command runs
    from edge.api import FaceLens
    from edge.gallery.openset import OpenSetReport
    from edge.media.sources import Frame, Source
    from edge.results import Identity
    from edge.service.mqtt import MqttEvents
    from edge.video.display import Display
    from edge.video.keep import Keeper
    from edge.video.loop import FrameResult
    from edge.video.track import Appearance

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

log = logging.getLogger("edge")
LEFT_OUT_SHOWN = 12  # enrolment from a video leaves out hundreds of frames: list a few


def _default_threads() -> int:
    return min(4, os.cpu_count() or 1)


def _add_gallery(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gallery", type=Path, help="gallery file (default: <data>/gallery.sqlite)")


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=argtypes.positive_int,
        default=_default_threads(),
        help="inference threads",
    )


def _add_engine(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bundle",
        type=Path,
        help="model bundle folder (default: the one the gallery was enrolled with, else "
        "<data>/bundle)",
    )
    _add_gallery(p)
    p.add_argument(
        "--format", default=DEFAULT_FORMAT, choices=RUNTIME_FORMATS, help="artifact to run"
    )
    p.add_argument(
        "--runtime",
        choices=("litert", "onnxruntime", "opencv"),
        help="inference runtime (default: litert for .tflite, onnxruntime for .onnx)",
    )
    _add_threads(p)
    p.add_argument("--detector", type=Path, help="YuNet .onnx file (default: cached download)")
    p.add_argument(
        "--no-detect",
        action="store_true",
        help="no face detection: the whole image is the face (the original notebook's mode)",
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="embed each face with its mirror image too: twice the model time per face, more "
        "people named (faceres, LFW open set, 3 photos each: 97.4%% named / 97.3%% of strangers "
        "rejected, against 97.1 / 96.7 without). Chosen for a new gallery or calibration; "
        "afterwards the gallery decides (it records how its embeddings were made)",
    )


def _add_operating_point(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--threshold",
        type=argtypes.threshold,
        help="match confidence in (0, 1] at which a face is named (default 0.5: about 1 "
        "stranger in 100 named; 0.75: 1 in 1,000); the unit every score is shown in",
    )
    g.add_argument(
        "--fpir",
        type=argtypes.rate,
        help="the same as a share of strangers that may be named, e.g. 0.01 (= --threshold 0.5)",
    )


def _add_mqtt(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mqtt",
        metavar="URL",
        help="publish person events to this broker: mqtt://HOST[:PORT] (mqtts:// for TLS)",
    )
    p.add_argument("--device", help="this device's name in MQTT topics (default: the hostname)")
    p.add_argument(
        "--ha-discovery", action="store_true", help="announce a sensor per camera to Home Assistant"
    )
    p.add_argument(
        "--mqtt-images", action="store_true", help="add the face as base64 JPEG to each event"
    )
    p.add_argument(
        "--appearance-gap",
        type=argtypes.positive_number,
        metavar="S",
        help="a person unseen for S seconds appears anew (one event per appearance; default 2)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("facelens")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "(not installed)"


def _add_sync(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sync",
        metavar="URL",
        help="share the gallery with a fleet of devices through this broker: "
        "mqtt://HOST[:PORT]/FLEET (mqtts:// for TLS); needs the fleet key (`edge fleet`)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge",
        description="Recognise enrolled people on a CPU with a facelens model bundle. "
        f"<data> is {paths.home()} ($FACELENS_HOME overrides); the gallery key comes "
        "from $FACELENS_KEY (64 hex chars or base64) or a 0600 key file beside the gallery.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="say more on stderr")
    parser.add_argument("--version", action="version", version=f"facelens {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = (_enroll_parser, _recognize_parser, _serve_parser, _gallery_parsers, _fleet_parser)
    for add in (*commands, _calibrate_parser, _demo_parser, _add_model_commands):
        add(sub)
    review.add_parsers(sub, _add_engine)
    return parser


def _enroll_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "enroll", help="add a person from photos, folders, a video or a camera (best views)"
    )
    p.add_argument("name")
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="photos or folders")
    p.add_argument("--video", metavar="SRC", help="take the views from a video file or stream")
    p.add_argument(
        "--camera",
        type=argtypes.int_at_least(0),
        metavar="N",
        help="take the views live from camera N",
    )
    p.add_argument(
        "--max-views",
        type=argtypes.positive_int,
        metavar="K",
        help="keep at most K distinct views (default 5)",
    )
    p.add_argument(
        "--face",
        type=argtypes.int_at_least(0),
        help="which face to use when several are alike (#N)",
    )
    _add_engine(p)


def _recognize_parser(sub: Subparsers) -> None:
    p = sub.add_parser("recognize", help="name the faces in a camera, video, image or folder")
    p.add_argument(
        "source",
        nargs="+",
        metavar="SOURCE",
        help="camera index (0), video file, stream URL, image or folder; several run side by "
        "side, each optionally named NAME=SOURCE",
    )
    _add_operating_point(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON line per face (and, in a video, per appearance), then a summary",
    )
    p.add_argument(
        "--detect-every",
        type=argtypes.positive_int,
        metavar="N",
        help="video: full detection every Nth frame, faces followed in between (default 5)",
    )
    p.add_argument("--show", action="store_true", help="show a window (needs an OpenCV GUI)")
    p.add_argument("--save", type=Path, metavar="OUT.mp4", help="write the annotated video")
    p.add_argument(
        "--max-frames", type=argtypes.positive_int, metavar="N", help="stop after N frames"
    )
    p.add_argument(
        "--index",
        default="auto",
        help="gallery search: auto (exact; FAISS IVF past 50,000 embeddings), exact, flat, "
        "ivf or hnsw",
    )
    review.add_keep_recent(p)
    _add_engine(p)
    _add_mqtt(p)
    _add_sync(p)


def _serve_parser(sub: Subparsers) -> None:
    p = sub.add_parser("serve", help="a local HTTP API, cameras and MQTT events (serve extra)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument(
        "--camera",
        action="append",
        metavar="NAME=SOURCE",
        help="a camera to watch (index, stream URL or file); repeat for more",
    )
    _add_operating_point(p)
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest upload accepted (MB)")
    p.add_argument(
        "--token-file", type=Path, help="bearer token file (default: <data>/serve.token)"
    )
    p.add_argument(
        "--docs",
        action="store_true",
        help="serve /openapi.json and /docs, both behind the token (/docs loads Swagger UI "
        "from a CDN)",
    )
    p.add_argument("--no-access-log", action="store_true", help="no log line per request on stderr")
    p.add_argument(
        "--frigate",
        metavar="URL",
        help="name the people of Frigate's person events (heard on --mqtt) as their sub-labels: "
        "Frigate's API, e.g. http://frigate:5000",
    )
    review.add_keep_recent(p)
    _add_engine(p)
    _add_mqtt(p)
    _add_sync(p)


def _gallery_parsers(sub: Subparsers) -> None:
    """The commands that need only the gallery (no key for ``people``, no model)."""
    _add_gallery(sub.add_parser("people", help="list who is enrolled (no key needed)"))
    p = sub.add_parser("forget", help="erase a person from the gallery for good")
    p.add_argument("name")
    _add_gallery(p)


def _fleet_parser(sub: Subparsers) -> None:
    p = sub.add_parser("fleet", help="the key that lets devices share one gallery (--sync)")
    fleet = p.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    fleet.add_parser("init", help="print a new fleet key (once per fleet)")
    join = fleet.add_parser("join", help="keep the fleet key beside this device's gallery (0600)")
    join.add_argument("key", help="the key `edge fleet init` printed")
    _add_gallery(join)


def _calibrate_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "calibrate", help="measure the rule on your own people (or on labelled pairs)"
    )
    p.add_argument(
        "--people",
        type=Path,
        help="folder with one sub-folder of photos per person (at least 20 people)",
    )
    p.add_argument("--pairs", type=Path, help="or: a CSV with img_a,img_b,same")
    p.add_argument("--images", type=Path, help="with --pairs: the folder the pair paths are in")
    p.add_argument(
        "--far", type=argtypes.rate, default=0.001, help="target false-accept rate in [0, 1)"
    )
    p.add_argument(
        "--fpir",
        type=argtypes.rate,
        help="open set: the share of strangers the rule is measured for, for this "
        "gallery's size (default 0.01); naming later follows --threshold/--fpir",
    )
    _add_engine(p)


def _demo_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "demo", help="one-shot recognition end to end (real people, a clip): no camera, no network"
    )
    p.add_argument("--bundle", type=Path, help="bundle to use (default: built if missing)")
    p.add_argument("--out", type=Path, help="output folder (default: <data folder>/demo)")
    _add_threads(p)
    p.add_argument(
        "--people",
        type=Path,
        help="real people: one sub-folder of photos each (default: LFW in the shared folder)",
    )


def _add_model_commands(sub: Subparsers) -> None:
    """``edge models`` (shipped models, built here) and ``edge bundle`` (bundles that travel)."""
    p = sub.add_parser("models", help="list the shipped models, or install one (no TensorFlow)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="which models can be installed here, and which are coming")
    q = actions.add_parser("install", help="build a shipped model's bundle here, verified")
    q.add_argument("name", help="a name from `edge models list` (e.g. dlib-resnet)")
    q.add_argument("--out", type=Path, help="bundle folder (default: <data>/bundle)")
    q.add_argument(
        "--format",
        action="append",
        choices=("tflite-int8", "onnx-int8"),
        help="artifact(s) to write (default: one per installed runtime)",
    )
    q.add_argument("--force", action="store_true", help="replace a bundle already there")
    p = sub.add_parser("bundle", help="carry a bundle to another machine: export / import")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("export", help="pack a bundle (checked) into one .tar.gz")
    q.add_argument("archive", type=Path, help="the .tar.gz to write")
    q.add_argument("--bundle", type=Path, help="bundle folder (default: <data>/bundle)")
    q = actions.add_parser("import", help="unpack a bundle archive, checking every sha256")
    q.add_argument("archive", type=Path, help="a .tar.gz from `edge bundle export`")
    q.add_argument("--out", type=Path, help="bundle folder (default: <data>/bundle)")
    q.add_argument("--force", action="store_true", help="replace a bundle already there")


def _lens(args: argparse.Namespace) -> FaceLens:
    """The FaceLens the command's options describe (people/forget give only --gallery)."""
    from edge.api import FaceLens

    reads = args.command in ("people", "forget", "recognize", "calibrate")
    if reads and args.gallery is not None and not Path(args.gallery).exists():
        raise FacelensError(  # a typo is not an empty gallery
            f"there is no gallery at {args.gallery}; check the path (`edge enroll` creates one)"
        )

    engine = {}
    if hasattr(args, "format"):
        engine = dict(
            fmt=args.format,
            runtime=args.runtime,
            threads=args.threads,
            detector=args.detector,
            detect=not args.no_detect,
            threshold=getattr(args, "threshold", None),
            fpir=getattr(args, "fpir", None) if hasattr(args, "threshold") else None,
            index=getattr(args, "index", "auto"),
            flip=args.flip or None,  # not given: as the gallery was made
        )
    return FaceLens(getattr(args, "bundle", None), args.gallery, **engine)


def cmd_enroll(args: argparse.Namespace) -> int:
    if not args.images and args.video is None and args.camera is None:
        raise FacelensError(
            f"nothing to enrol {args.name!r} from: give photos or folders, --video FILE "
            "or --camera N"
        )
    if args.video is not None and args.camera is not None:
        raise FacelensError("give --video or --camera, not both")
    video = str(args.camera) if args.camera is not None else args.video
    if args.camera is not None:
        print(
            f"camera {args.camera}: look at it and turn your head a little, slowly...",
            file=sys.stderr,
        )
    options = {} if args.max_views is None else {"max_views": args.max_views}
    with _lens(args) as lens:
        enrolment = lens.enroll(args.name, args.images, args.face, video=video, **options)
        for photo in enrolment:
            x, y, w, h = (round(v) for v in photo.face.box)
            print(
                f"kept {photo.path}: face at ({x}, {y}, {w}x{h}) score {photo.face.score:.2f}"
                f" (of {photo.faces_found} found), {photo.quality.describe()}"
            )
        for source, reason in enrolment.left_out[:LEFT_OUT_SHOWN]:
            print(f"left out {escape(str(source))}: {reason}")
        if len(enrolment.left_out) > LEFT_OUT_SHOWN:
            print(f"... and {len(enrolment.left_out) - LEFT_OUT_SHOWN} more left out")
        name = lookup_name(args.name)
        total = sum(p.embeddings for p in lens.people() if p.name == name)
        print(
            f"enrolled {shown(name)} from {len(enrolment)} view(s) into {lens.gallery_path}"
            f" ({total} embedding(s) in all)"
        )
    return 0


def _events(args: argparse.Namespace, cameras: list[str]) -> MqttEvents | None:
    if not args.mqtt:
        return None
    from edge.service.mqtt import MqttEvents

    return MqttEvents(
        args.mqtt,
        cameras,
        device=args.device,
        discovery=args.ha_discovery,
        images=args.mqtt_images,
    )


@dataclass(frozen=True)
class _InPlace:
    """One source read in this thread (``edge recognize FILE``): its error stops the command,
    where a watched camera (several sources, ``--mqtt``) is retried or fails alone."""

    name: str
    source: Source

    @property
    def stills(self) -> bool:
        return self.source.stills

    def clock(self, frame_index: int) -> float:
        return self.source.clock(frame_index)


@dataclass
class _Feeds:
    """Where ``edge recognize`` reads frames: one source in place, or cameras watched."""

    frames: Iterator[tuple[Any, Frame]]  # (feed, frame): feeds are _InPlace or Camera
    feeds: list[Any]
    on_error: Callable[[Any, Frame, FacelensError], None] | None = None  # None: errors stop
    display: Display | None = None


def _in_place(args: argparse.Namespace, text: str, stack: ExitStack) -> _Feeds:
    from edge.media.cameras import CameraSpec
    from edge.media.sources import open_source
    from edge.video.display import Display

    spec = CameraSpec.parse(text)
    source = stack.enter_context(open_source(spec.source))
    # named as the user named it, else as the source calls itself (a path, "camera 0")
    feed = _InPlace(spec.name if text != spec.source else source.label, source)
    display = None
    if args.show or args.save:
        display = Display(args.show, args.save, source.fps)
        stack.callback(display.close)
    return _Feeds(((feed, frame) for frame in source), [feed], display=display)


def _watched(texts: list[str], stack: ExitStack) -> _Feeds:
    from edge.media.cameras import Camera, Cameras, unique_specs

    cameras = stack.enter_context(Cameras(unique_specs(texts)))
    return _Feeds(cameras.frames(), list(cameras.cameras), on_error=Camera.frame_failed)


class _Report:
    """What ``edge recognize`` prints: each source's faces and appearances as they come,
    then per source who was seen and the timings."""

    def __init__(self, args: argparse.Namespace, feeds: list[Any]) -> None:
        from edge.results import STAGES
        from edge.video.stats import RunStats, Sightings

        self.as_json = args.json
        self.feeds = {f.name: f for f in feeds}
        self.stats = {name: RunStats(STAGES) for name in self.feeds}
        self.seen = {name: Sightings() for name in self.feeds}

    def frame(self, feed: Any, result: FrameResult) -> None:
        for face in result.faces:
            self.seen[feed.name].add(face.name, face.score, face.nearest)
        # photos face by face, a video per appearance (and face by face with --json)
        if feed.stills or self.as_json:
            for line in _face_lines(result, self.as_json, tracked=not feed.stills):
                print(line, flush=True)
        self.appearances(feed.name, result.appearances)

    def appearances(self, name: str, appearances: list[Appearance]) -> None:
        if not self.feeds[name].stills:
            for appearance in appearances:
                print(_appearance_line(appearance, name), flush=True)

    def summaries(self) -> None:
        for name, feed in self.feeds.items():
            stats, seen = self.stats[name], self.seen[name]
            skipped = getattr(feed.source, "skipped", None) or []
            if self.as_json:
                summary = stats.summary() | seen.summary() | {"skipped": len(skipped)}
                print(json.dumps({"source": name, "summary": summary}))
            else:
                lines = "\n".join([*seen.lines(escape), stats.table()])
                print(f"{escape(name)}: {lines}" if len(self.feeds) > 1 else lines)
            if skipped:
                log.warning(
                    "skipped %d unreadable file(s) of %s (first: %s); -v lists each",
                    len(skipped),
                    name,
                    skipped[0],
                )


FLEET_WAIT_S = 15.0  # a broker on the LAN replays a fleet's records in well under that


def _join_fleet(url: str, lens: FaceLens, stack: ExitStack) -> None:
    """Keep ``lens``'s gallery in step with the fleet, first waiting a while for its
    records: a photo or a video is then recognised against everyone the fleet knows."""
    from edge.service.fleet.sync import FleetSync

    sync = FleetSync(url, lens)
    stack.callback(sync.close)
    print(f"catching up with the fleet {sync.url} ...", file=sys.stderr)
    if sync.caught_up.wait(FLEET_WAIT_S):
        n = len(lens.people())
        print(f"caught up: {n} {'person' if n == 1 else 'people'} enrolled", file=sys.stderr)
    else:
        log.warning(
            "not caught up with the fleet %s after %.0f s (is the broker reachable?): "
            "recognising with the people this device has; the fleet's arrive once it connects",
            sync.url,
            FLEET_WAIT_S,
        )


def cmd_recognize(args: argparse.Namespace) -> int:
    """One source read in place, or several side by side (and/or MQTT events) read by a
    thread each, frames in turn: each source's faces followed and decided as appearances."""
    from edge.video.loop import recognize_frames
    from edge.video.recognizer import DETECT_EVERY, CameraTracks

    watch = len(args.source) > 1 or bool(args.mqtt)
    if watch and (args.show or args.save):
        raise FacelensError("--show and --save take one source and no --mqtt")
    interrupted = False
    with _lens(args) as lens, ExitStack() as stack:
        lens.load()
        print(lens.describe(), file=sys.stderr)
        if args.sync:
            _join_fleet(args.sync, lens, stack)
        if not len(lens.matcher):
            log.warning("no one is enrolled in the gallery: every face is unknown (`edge enroll`)")
        feeds = _watched(args.source, stack) if watch else _in_place(args, args.source[0], stack)
        report = _Report(args, feeds.feeds)
        events = _events(args, list(report.feeds))
        if events is not None:
            stack.enter_context(events)
        tracks = CameraTracks(lens, args.detect_every or DETECT_EVERY, args.appearance_gap)
        keeper = _keeper(lens, args.keep_recent)
        results = recognize_frames(
            feeds.frames,
            tracks,
            lambda feed: report.stats[feed.name],
            feeds.display,
            args.max_frames,
            feeds.on_error,
        )
        try:
            for feed, result in results:
                report.frame(feed, result)
                if keeper is not None:
                    keeper.frame(feed.name, result)
                if events is not None:
                    events.frame(feed.name, result)
        except KeyboardInterrupt:
            interrupted = True
        for name, step in tracks.finish().items():  # what was still in view when they stopped
            report.appearances(name, step.ended)
            if keeper is not None:
                keeper.ended(name, step.ended)
            if events is not None:
                events.appearances(name, step.decided, step.ended)
    report.summaries()
    if args.save:
        print(f"annotated video: {args.save}", file=sys.stderr)
    failed = [f for f in feeds.feeds if getattr(f, "status", None) == "failed"]
    if failed:
        raise FacelensError("; ".join(f"camera {c.name}: {c.last_error}" for c in failed))
    return 130 if interrupted else 0


def _keeper(lens: FaceLens, days: float | None) -> Keeper | None:
    """What keeps each appearance's best face, with ``--keep-recent DAYS`` (else nothing)."""
    if days is None:
        return None
    from edge.gallery.recent import Recent
    from edge.video.keep import Keeper

    return Keeper(Recent(lens.gallery), lens.fingerprint, days)


def _appearance_line(appearance: Appearance, source: str) -> str:
    """One JSON event per appearance of a person (``name`` null for a stranger)."""
    return json.dumps({"event": "appearance", "source": source, **appearance.to_dict()})


def _face_lines(result: FrameResult, as_json: bool, tracked: bool) -> list[str]:
    frame = result.frame
    if as_json:
        ms = {k: round(v, 2) for k, v in result.ms.items()}
        lines = []
        for face in result.faces:
            line = {
                "source": frame.name,
                "frame": frame.index,
                "box": [round(v, 1) for v in face.box],
                "name": face.name,
                "score": round(face.score, 4),
                "cosine": None if face.cosine is None else round(face.cosine, 4),
            }
            if face.problem:
                line["cant_tell"] = face.problem
            if tracked and face.track_id is not None:
                line.update(track=face.track_id, label=face.label)
            lines.append(json.dumps({**line, "ms": ms}))
        return lines
    from edge.media.images import is_image_file

    # a photo is named by its file; a video's or camera's frames by their number
    where = frame.name if is_image_file(Path(frame.name)) else f"{frame.name} frame {frame.index}"
    return [
        f"{where}: {escape(_who(face))} {face.score:.3f} at "
        f"({', '.join(str(round(v)) for v in face.box)})"
        for face in result.faces
    ]


def _who(face: Identity) -> str:
    if face.problem:
        return f"can't tell ({face.problem})"
    return face.name or "unknown"


def cmd_people(args: argparse.Namespace) -> int:
    with _lens(args) as lens:
        people = lens.people()
        if not people:
            print(f"no one is enrolled in {lens.gallery_path}")
            return 0
        for p in people:
            print(
                f"{escape(p.name)}\t{p.embeddings} embedding(s)\tsince {p.enrolled}"
                f"\tbundle {p.fingerprint}"
            )
        print(f"{len(people)} {'person' if len(people) == 1 else 'people'} in {lens.gallery_path}")
        with contextlib.suppress(FacelensError):  # it needs the bundle; listing people does not
            print(lens.operating_point(len({p.name for p in people})))
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    with _lens(args) as lens:
        removed = lens.forget(args.name)
        if not removed:
            names = sorted({p.name for p in lens.people()})
            raise FacelensError(
                f"{shown(args.name)} is not in the gallery {lens.gallery_path}"
                f"{did_you_mean(lookup_name(args.name), names)} ({len(names)} "
                f"{'person' if len(names) == 1 else 'people'} enrolled; `edge people` lists them)"
            )
        print(
            f"forgot {shown(lookup_name(args.name))}: removed {removed} encrypted "
            f"embedding(s) from {lens.gallery_path} (secure delete + vacuum)"
        )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    if (args.people is None) == (args.pairs is None) or (args.pairs is None) != (
        args.images is None
    ):
        raise FacelensError(
            "give --people DIR (one folder of photos per person), or --pairs CSV with --images DIR"
        )
    options = {} if args.fpir is None else {"fpir": args.fpir}
    with _lens(args) as lens:
        result = lens.calibrate(
            args.pairs, args.images, args.far, progress=True, people=args.people, **options
        )
        if result.people is not None:
            print(f"used {result.people} people, {result.photos} photos of {args.people}")
        print(
            f"raw cosine {result.cosine:.4f} ({result.how})\n"
            f"at this cosine: FAR {result.far:.4f}, TAR {result.tar:.4f}, "
            f"accuracy {result.accuracy:.4f} on {result.genuine_pairs} same + "
            f"{result.impostor_pairs} different pairs ({result.skipped_pairs} skipped: no face)"
        )
        if result.open_set is not None:
            print(_open_set_lines(result.open_set, len(lens.people())))
        print(f"stored in {lens.gallery_path} for bundle {lens.bundle.name} ({lens.fingerprint})")
        print(lens.operating_point())
    return 0


def _open_set_lines(report: OpenSetReport, enrolled: int) -> str:
    """The open-set operating point ``edge calibrate`` chose, as the user reads it."""
    from edge.gallery.confidence import confidence_of_fpir
    from edge.gallery.openset import MULTI_VIEWS

    rule = report.open_set
    size = f"your {report.people} people" if enrolled else f"a gallery of {report.people}"
    several = report.several_view_dir

    def tried(name: str, dir_one: float) -> str:
        more = several.get(name)
        return f"{name} {dir_one:.3f}" + (f" / {more:.3f}" if more is not None else "")

    delivered = report.independence_fpir.get(report.rule, {})
    lines = [
        f"open set: {rule.label} "
        f"against {report.cohort_faces} cohort faces, margin {rule.margin:g}",
        f"  rules tried, DIR at FPIR {rule.fpir:g} predicted from one photo each"
        + (
            f" / measured from {MULTI_VIEWS}"
            if any(v is not None for v in several.values())
            else ""
        )
        + ": "
        + "; ".join(tried(k, v) for k, v in report.by_norm.items()),
        *(
            [
                "  thresholds measured on simulated galleries of held-out people: the "
                "per-comparison rule alone would have named "
                + ", ".join(f"{f:.1%} of strangers ({w})" for w, f in delivered.items())
            ]
            if delivered
            else []
        ),
        f"for {size}: normalised score {report.threshold:.3f}, predicted "
        f"DIR {report.dir:.3f} (named right) at FPIR {rule.fpir:g} (strangers named)"
        + (
            f"; measured FPIR {report.measured_fpir:.3f} on {report.stranger_faces} held-out "
            "strangers against your gallery"
            if report.measured_fpir is not None
            else ""
        ),
        "  FPIR   --threshold   DIR (predicted)",
        *(f"  {f:<6g} {confidence_of_fpir(f):11.2f}   {d:.3f}" for f, _, d in report.curve),
        "the threshold follows the gallery's size as people are enrolled or forgotten",
    ]
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from edge.service import http as serve
    except ImportError as exc:
        raise FacelensError(
            f"`edge serve` needs the serve extra ({exc.name} is not installed): "
            "pip install 'facelens[serve]'"
        ) from None
    from edge.media.cameras import Cameras, unique_specs

    specs = unique_specs(args.camera or [])
    if args.frigate and not args.mqtt:
        raise FacelensError(
            "--frigate hears Frigate's events on its MQTT broker: give it as --mqtt too "
            "(e.g. --mqtt mqtt://frigate-broker:1883)"
        )
    return serve.run(
        lambda: _lens(args),
        host=args.host,
        port=args.port,
        token_file=args.token_file or paths.home() / "serve.token",
        max_upload_mb=args.max_upload_mb,
        cameras=Cameras(specs) if specs else None,
        events=_events(args, [s.name for s in specs]),
        appearance_gap_s=args.appearance_gap,
        docs=args.docs,
        access_log=not args.no_access_log,
        frigate=args.frigate,
        sync=_sync_maker(args.sync, args.gallery),
        keep_recent_days=args.keep_recent,
    )


def _sync_maker(url: str | None, gallery: Path | None) -> Callable[[FaceLens], Any] | None:
    """What makes the fleet sync of serve's lens (URL and key checked now, before the model)."""
    if not url:
        return None
    from edge.service.fleet.records import load_key
    from edge.service.fleet.sync import FleetSync, FleetUrl

    FleetUrl.parse(url)
    load_key(gallery or paths.default_gallery_path())
    return lambda lens: FleetSync(url, lens)


def cmd_fleet(args: argparse.Namespace) -> int:
    from edge.service.fleet import records

    if args.fleet_command == "init":
        print(
            f"{records.new_key()}\ngive it to each device: `edge fleet join KEY` (or "
            f"${records.FLEET_KEY_ENV}); anyone with it can add and remove people",
            flush=True,
        )
        return 0
    gallery = args.gallery or paths.default_gallery_path()
    print(f"fleet key kept in {records.store_key(gallery, args.key)} (mode 0600)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.cli.demo import run_demo

    return run_demo(args.bundle, args.out, args.threads, args.people)


def cmd_models(args: argparse.Namespace) -> int:
    from edge.model import shipped

    if args.action == "list":
        for row in shipped.describe_all():
            print(f"{row['name']}\t{row['status']}\t{row['summary']}")
        return 0
    out = args.out or paths.default_bundle_dir()
    print(f"building {args.name} at {out} ...", file=sys.stderr)
    bundle = shipped.install(args.name, out, args.format, args.force)
    for fmt in bundle.formats:
        a = bundle.artifact(fmt)
        print(
            f"{fmt}: {a.file} ({a.bytes / 1e6:.1f} MB, sha256 checked); cosine to float on "
            f"{a.fidelity.eval_count} held-out faces: mean {a.fidelity.cosine_mean:.4f}, "
            f"min {a.fidelity.cosine_min:.4f}"
        )
    print(f"installed {bundle.name} at {out} (fingerprint {bundle.fingerprint})")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from edge.model.transfer import export_bundle, import_bundle

    if args.action == "export":
        source = args.bundle or paths.default_bundle_dir()
        archive = export_bundle(source, args.archive)
        print(f"exported {source} to {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
        return 0
    out = args.out or paths.default_bundle_dir()
    bundle = import_bundle(args.archive, out, args.force)
    print(f"imported {bundle.name} to {out}: {', '.join(bundle.formats)}, every sha256 checked")
    return 0


COMMANDS = {
    "enroll": cmd_enroll,
    "recognize": cmd_recognize,
    "people": cmd_people,
    "forget": cmd_forget,
    "calibrate": cmd_calibrate,
    "serve": cmd_serve,
    "fleet": cmd_fleet,
    "demo": cmd_demo,
    "models": cmd_models,
    "bundle": cmd_bundle,
    **review.commands(_lens),
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
