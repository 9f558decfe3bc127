"""Every hostile input of issue 14 through the real commands: one clear error line, no
traceback, a non-zero exit, and the gallery byte-identical afterwards.

The cases are also the source of docs/refusals.md ("what facelens refuses and why"):
``FACELENS_WRITE_REFUSALS=1 uv run pytest tests/hardening/test_refusals.py`` rewrites
it from the messages the commands really print; CI checks every case is listed there.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import REPO, limit_file_size, run

DOC = REPO / "docs" / "refusals.md"
TONY = "Tony_Blair/Tony_Blair_0006.jpg"


@dataclass(frozen=True)
class Case:
    """One hostile input: ``make(ctx)`` returns the command's arguments after ``edge``."""

    id: str
    what: str
    make: Callable[[Ctx], list]
    expect: str  # a phrase the error line must hold
    module: str = "edge.cli.main"
    full_disk: int | None = None  # bytes a file may grow to (a disk that fills)


@dataclass
class Ctx:
    tmp: Path
    home: Path
    bundle: Path
    images: Path

    @property
    def gallery(self) -> Path:
        return self.home / "gallery.sqlite"

    def file(self, name: str, data: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path


def _jpeg(ctx: Ctx) -> bytes:
    return (ctx.images / TONY).read_bytes()


def _truncated(ctx: Ctx) -> Path:
    data = _jpeg(ctx)
    return ctx.file("truncated.jpg", data[: len(data) * 2 // 3])


def _garbled(ctx: Ctx) -> Path:
    data = bytearray(_jpeg(ctx))
    rng = np.random.default_rng(0)
    half = len(data) // 2
    data[half:-2] = rng.integers(0, 256, len(data) - half - 2, dtype=np.uint8).tobytes()
    return ctx.file("garbled.jpg", bytes(data))


def _zero_padded(ctx: Ctx) -> Path:
    data = bytearray(_jpeg(ctx))
    half = len(data) // 2
    data[half:-2] = bytes(len(data) - half - 2)
    return ctx.file("zeroed.jpg", bytes(data))


def _tiff_bomb(ctx: Ctx) -> Path:
    # a compressed TIFF whose header claims 30000x30000 (900 MP, 2.7 GB decoded)
    _ok, buf = cv2.imencode(".tiff", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(buf.tobytes())
    offset = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[offset : offset + 2])[0]
    for k in range(count):
        at = offset + 2 + 12 * k
        tag, kind = struct.unpack("<HH", data[at : at + 4])
        if tag in (256, 257):
            fmt = "<H" if kind == 3 else "<I"
            data[at + 8 : at + 8 + struct.calcsize(fmt)] = struct.pack(fmt, 30000)
    return ctx.file("bomb.tiff", bytes(data))


def _binary_key(ctx: Ctx) -> list:
    ctx.gallery.with_name("gallery.sqlite.key").write_bytes(bytes(range(256)))
    return ["recognize", ctx.images / TONY, "--bundle", ctx.bundle]


def _schema(ctx: Ctx) -> list:
    with sqlite3.connect(ctx.gallery) as conn:
        conn.execute("UPDATE meta SET value = 'two' WHERE key = 'schema_version'")
    return ["people"]


def _pairs(ctx: Ctx, rows: str, bom: bool = False) -> Path:
    text = "img_a,img_b,same\n" + rows
    return ctx.file("pairs.csv", (b"\xef\xbb\xbf" if bom else b"") + text.encode())


def _read_only_gallery(ctx: Ctx, readonly: Callable[[Path], Path]) -> list:
    ro = readonly(ctx.home)
    pairs = _pairs(ctx, f"{TONY},{TONY},1\n{TONY},Colin_Powell/Colin_Powell_0001.jpg,0\n")
    return ["calibrate", "--pairs", pairs, "--images", ctx.images, "--gallery",
            ro / "gallery.sqlite", "--bundle", ctx.bundle]  # fmt: skip


def _enroll(name: bytes | str) -> Callable[[Ctx], list]:
    return lambda ctx: ["enroll", name, ctx.images / TONY, "--bundle", ctx.bundle]


def _recognize(*extra: str) -> Callable[[Ctx], list]:
    return lambda ctx: ["recognize", ctx.images / TONY, "--bundle", ctx.bundle, *extra]


CASES = [
    Case(
        "name-newline",
        "a person name with a newline (fake rows in `people`)",
        _enroll("Eve\nMallory\t3 embedding(s)"),
        "control or invisible characters",
    ),
    Case(
        "name-escape",
        "a person name with a terminal escape code",
        _enroll("Eve\x1b[2J"),
        "control or invisible characters",
    ),
    Case(
        "name-bidi",
        "a person name with a right-to-left override",
        _enroll("Eve\u202egnp.exe"),
        "control or invisible characters",
    ),
    Case(
        "name-not-utf8",
        "a person name that is not valid UTF-8 (enroll)",
        _enroll(b"\xff\xfeEve"),
        "not valid UTF-8",
    ),
    Case(
        "forget-not-utf8",
        "a person name that is not valid UTF-8 (forget)",
        lambda ctx: ["forget", b"\xffEve"],
        "not valid UTF-8",
    ),
    Case(
        "forget-unknown",
        "forget someone not enrolled (the error must not list everyone)",
        lambda ctx: ["forget", "Nobody"],
        "1 person enrolled; `edge people` lists them",
    ),
    Case("threshold-2", "--threshold 2", _recognize("--threshold", "2"), "above 0 and at most 1"),
    Case(
        "threshold-neg",
        "--threshold -1 (would name every stranger)",
        _recognize("--threshold=-1"),
        "above 0 and at most 1",
    ),
    Case(
        "threshold-nan",
        "--threshold nan (would name no one)",
        _recognize("--threshold", "nan"),
        "not a finite number",
    ),
    Case(
        "threshold-inf", "--threshold inf", _recognize("--threshold", "inf"), "not a finite number"
    ),
    Case("threads-0", "--threads 0", _recognize("--threads", "0"), "give 1 or more"),
    Case("max-frames-0", "--max-frames 0", _recognize("--max-frames", "0"), "give 1 or more"),
    Case(
        "far-nan",
        "calibrate --far nan",
        lambda ctx: [
            "calibrate",
            "--pairs",
            _pairs(ctx, ""),
            "--images",
            ctx.images,
            "--far",
            "nan",
        ],
        "not a finite number",
    ),
    Case(
        "jpeg-truncated",
        "a JPEG cut short (no end-of-image marker) as a reference",
        lambda ctx: ["enroll", "x", _truncated(ctx), "--bundle", ctx.bundle],
        "cut short",
    ),
    Case(
        "jpeg-garbled",
        "a JPEG whose lower half is garbage",
        lambda ctx: ["enroll", "x", _garbled(ctx), "--bundle", ctx.bundle],
        "damaged JPEG",
    ),
    Case(
        "jpeg-zeroed",
        "a JPEG whose lower half is zeros",
        lambda ctx: ["enroll", "x", _zero_padded(ctx), "--bundle", ctx.bundle],
        "damaged JPEG",
    ),
    Case(
        "tiff-bomb",
        "a 1 kB compressed TIFF claiming 900 megapixels",
        lambda ctx: ["recognize", _tiff_bomb(ctx), "--bundle", ctx.bundle],
        "30000x30000 pixels",
    ),
    Case("key-binary", "a binary gallery key file", _binary_key, "not a text key"),
    Case(
        "schema-text",
        "a gallery whose schema version is not a number",
        _schema,
        "gallery schema 'two'",
    ),
    Case(
        "detector-not-yunet",
        "an ONNX model that is not a detector as --detector",
        lambda ctx: [
            "recognize",
            ctx.images / TONY,
            "--bundle",
            ctx.bundle,
            "--detector",
            ctx.bundle / "model.onnx",
        ],
        "is not a YuNet face detector",
    ),
    Case(
        "pairs-missing-photo",
        "a pairs row naming a photo that does not exist",
        lambda ctx: [
            "calibrate",
            "--pairs",
            _pairs(ctx, f"{TONY},{TONY},1\n{TONY},gone.jpg,0\n"),
            "--images",
            ctx.images,
            "--bundle",
            ctx.bundle,
        ],
        "pairs.csv:3:",
    ),
    Case(
        "save-full-disk",
        "--save onto a disk that fills up",
        lambda ctx: [
            "recognize",
            ctx.images / "Tony_Blair",
            "--max-frames",
            "12",
            "--bundle",
            ctx.bundle,
            "--save",
            ctx.tmp / "out.mp4",
        ],
        "was not written completely",
        full_disk=40_000,
    ),
    Case(
        "save-unwritable",
        "--save into a folder no one can write (/sys)",
        _recognize("--save", "/sys/facelens/out.mp4"),
        "cannot write the video",
    ),
    Case(
        "gallery-full-disk",
        "enrol onto a disk that fills up",
        _enroll("Colin Powell"),
        "free some space",
        full_disk=1_000,
    ),
    Case(
        "no-bundle",
        "no bundle anywhere",
        lambda ctx: ["enroll", "Tony", ctx.images / TONY, "--gallery", ctx.tmp / "new.sqlite"],
        "`edge models install dlib-resnet`",
    ),
    Case(
        "convert-unwritable",
        "convert --out under a folder no one can write (/sys)",
        lambda ctx: [
            "--model",
            "vgg16",
            "--weights",
            "none",
            "--calibration",
            ctx.images,
            "--out",
            "/sys/facelens/b",
        ],
        "cannot write the bundle",
        module="convert",
    ),
]
SPECIAL = {"calibrate-read-only": "calibrate into a read-only gallery (refused before embedding)"}

_seen: dict[str, tuple[str, str]] = {}


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, tiny_bundle, lfw_dir: Path) -> Path:
    """A data folder whose gallery holds Tony Blair (tiny bundle)."""
    home = tmp_path_factory.mktemp("enrolled") / "home"
    done = run("edge.cli.main", "enroll", "Tony Blair", lfw_dir / "images" / TONY,
               "--bundle", tiny_bundle.path, home=home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return home


@pytest.fixture
def ctx(tmp_path: Path, enrolled: Path, tiny_bundle, lfw_dir: Path) -> Ctx:
    home = tmp_path / "home"
    shutil.copytree(enrolled, home)
    return Ctx(tmp_path, home, tiny_bundle.path, lfw_dir / "images")


def _normalised(line: str, ctx: Ctx) -> str:
    for path, name in ((ctx.tmp, "<tmp>"), (ctx.bundle, "<bundle>"), (ctx.images, "<lfw>")):
        line = line.replace(str(path), name)
    return re.sub(r"OpenCV\([^)]*\) \S+ ", "OpenCV ", line)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_with_one_clear_line_and_nothing_lost(case: Case, ctx: Ctx):
    args = case.make(ctx)
    before = ctx.gallery.read_bytes()
    done = run(
        case.module,
        *args,
        home=ctx.home,
        preexec=limit_file_size(case.full_disk) if case.full_disk else None,
    )
    line = done.error_line()
    assert case.expect in line, line
    assert ctx.gallery.read_bytes() == before, "a refused command changed the gallery"
    assert done.max_rss_mb < 2048
    _seen[case.id] = (case.what, _normalised(line, ctx))


def test_calibrate_into_a_read_only_gallery_is_refused_before_the_work(ctx: Ctx, readonly_dir):
    args = _read_only_gallery(ctx, readonly_dir)
    done = run("edge.cli.main", *args, home=ctx.home)
    line = done.error_line()
    assert "read-only" in line or "Permission denied" in line, line
    assert "embedding photos" not in done.stderr  # refused before any photo was embedded
    _seen["calibrate-read-only"] = (SPECIAL["calibrate-read-only"], _normalised(line, ctx))


def test_the_refusal_table_lists_every_case():
    """docs/refusals.md is generated from these cases; it must not fall behind them."""
    ids = [c.id for c in CASES] + list(SPECIAL)
    if os.environ.get("FACELENS_WRITE_REFUSALS") and len(_seen) == len(ids):
        cell = {i: _seen[i][1].replace("|", "\\|") for i in ids}
        rows = [f"| `{i}` | {_seen[i][0]} | `` {cell[i]} `` |" for i in ids]
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(_HEADER + "\n".join(rows) + "\n" + _FOOTER)
    text = DOC.read_text()
    missing = [i for i in ids if f"| `{i}` |" not in text]
    assert not missing, f"{DOC} lacks {missing}: regenerate it (see this module's docstring)"


_HEADER = """# What facelens refuses, and why

Generated by `tests/hardening/test_refusals.py` from what the commands really print
(`FACELENS_WRITE_REFUSALS=1 uv run pytest tests/hardening/test_refusals.py`). Every row
is a CI test: one `error:` line, no traceback, a non-zero exit, the gallery unchanged,
under 2 GB of memory. Paths are shortened to `<tmp>`, `<bundle>` and `<lfw>`.

| case | input | what facelens says |
|---|---|---|
"""
_FOOTER = """
Accepted on purpose (also tested): a 1300x1 or 1x1300 image (no face, the run goes on);
a folder of junk files (a count of skipped files, three warnings at most); a pairs CSV
saved by Excel with a byte-order mark; `edge people` on another program's empty SQLite
file (reported empty and left byte-identical). Limits: images up to 100 megapixels
(25 for HDR/PFM, which decode to floats) and 200 MB; names up to 100 characters;
thresholds in (0, 1]; false-accept rates in [0, 1).
"""
