"""The validators where data enters, and the legal inputs they must keep accepting."""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import sqlite3
import struct
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.base.errors import FacelensError, GalleryError, ImageError
from edge.base.names import PersonNameError, check_name, escape
from edge.base.progress import progress
from edge.cli import argtypes
from edge.gallery import store as gallery_module
from edge.gallery.openset import read_pairs
from edge.gallery.store import Gallery
from edge.media.image_size import sniff
from edge.media.images import MAX_PIXELS, decode_image, jpeg_damage
from edge.video.stats import Sightings

from .conftest import REPO, run

sys.path.append(str(REPO / "benchmarks"))
import _bombs  # benchmarks/ is a folder of scripts, not a package

FP = "0123456789abcdef"
FORMATS = (".jpg", ".png", ".webp", ".avif", ".tiff", ".jp2", ".bmp", ".gif", ".ppm", ".pam",
           ".pfm", ".hdr", ".ras")  # fmt: skip


def _encode(ext: str, w: int = 72, h: int = 64) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    pixels = image.astype(np.float32) / 255 if ext in (".pfm", ".hdr") else image
    ok, buf = cv2.imencode(ext, pixels)
    assert ok, ext
    return buf.tobytes()


@pytest.mark.parametrize("ext", FORMATS)
def test_every_format_header_gives_the_size_opencv_decodes(ext: str):
    data = _encode(ext)
    header = sniff(data)
    assert header is not None and (header.width, header.height) == (72, 64), header
    assert decode_image(data, f"x{ext}").shape == (64, 72, 3)


def _claim(ext: str, width: int, height: int) -> bytes:
    """A small valid file whose header is rewritten to claim ``width`` x ``height``."""
    data = bytearray(_encode(ext))
    if ext == ".png":
        data[16:24] = struct.pack(">II", width, height)
    elif ext == ".jpg":
        at = data.find(b"\xff\xc0")
        data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    elif ext == ".bmp":
        data[18:26] = struct.pack("<ii", width, height)
    elif ext == ".gif":
        data[6:10] = struct.pack("<HH", width, height)
    elif ext == ".jp2":
        at = data.find(b"\xff\x4f\xff\x51")
        data[at + 8 : at + 16] = struct.pack(">II", width, height)
    elif ext == ".ras":
        data[4:12] = struct.pack(">II", width, height)
    elif ext in (".ppm", ".pfm", ".hdr", ".pam"):
        text = bytes(data).replace(b"72 64", f"{width} {height}".encode(), 1)
        text = text.replace(b"-Y 64 +X 72", f"-Y {height} +X {width}".encode(), 1)
        text = text.replace(b"WIDTH 72", f"WIDTH {width}".encode())
        return text.replace(b"HEIGHT 64", f"HEIGHT {height}".encode())
    elif ext == ".webp":  # VP8L: 14-bit sizes, so at most 16384 a side (268 MP)
        assert data[12:16] == b"VP8L"
        bits = (
            (width - 1)
            | ((height - 1) << 14)
            | (int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1))
        )
        data[21:25] = bits.to_bytes(4, "little")
    elif ext == ".avif":
        at = data.find(b"ispe")
        data[at + 8 : at + 16] = struct.pack(">II", width, height)
    elif ext == ".tiff":
        offset = struct.unpack("<I", data[4:8])[0]
        for k in range(struct.unpack("<H", data[offset : offset + 2])[0]):
            at = offset + 2 + 12 * k
            tag, kind = struct.unpack("<HH", data[at : at + 4])
            if tag in (256, 257):
                fmt = "<H" if kind == 3 else "<I"
                data[at + 8 : at + 8 + struct.calcsize(fmt)] = struct.pack(
                    fmt, width if tag == 256 else height
                )
    return bytes(data)


@pytest.mark.parametrize("ext", [e for e in FORMATS if e != ".webp"] + [".webp"])
def test_a_header_claiming_too_many_pixels_is_refused_before_decoding(ext: str):
    side = 16000 if ext == ".webp" else 30000  # > 100 MP either way
    data = _claim(ext, side, side)
    assert sniff(data) is not None and sniff(data).pixels > MAX_PIXELS, ext
    with pytest.raises(ImageError, match=f"{side}x{side} pixels"):
        decode_image(data, f"bomb{ext}")


def test_unknown_formats_fail_closed():
    with pytest.raises(ImageError, match="not an image OpenCV can read"):
        decode_image(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "x.svg")


def test_real_jpegs_are_not_taken_for_damaged_ones(lfw_dir: Path):
    photos = sorted((lfw_dir / "images").glob("*/*.jpg"))[::40]
    assert len(photos) > 50
    assert [p for p in photos if jpeg_damage(p.read_bytes())] == []


def test_names_are_checked_and_escaped():
    assert check_name("Zoe\u0308") == "Zo\u00eb"  # NFD (macOS) and NFC are one person
    assert check_name("👩\u200d🔬 Ada") == "👩\u200d🔬 Ada"
    for bad in ("", "  ", " Ada", "A\nB", "A\tB", "A\x1b[2J", "A\u202eB", "\udcff", "x" * 101):
        with pytest.raises(PersonNameError):
            check_name(bad)
    assert escape("A\nB\x1b") == "A\\nB\\x1b"


def test_pairs_with_a_byte_order_mark_are_read(tmp_path: Path):
    images = tmp_path / "img"
    images.mkdir()
    for n in ("a.jpg", "b.jpg"):
        (images / n).write_bytes(b"x")
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes(b"\xef\xbb\xbfimg_a,img_b,same\r\na.jpg,a.jpg,1\r\na.jpg,b.jpg,0\r\n")
    assert len(read_pairs(pairs, images)) == 2
    pairs.write_bytes(b"img_a,img_b,same\na.jpg,a\x00.jpg,1\n")
    with pytest.raises(FacelensError, match=r"pairs\.csv:2:"):
        read_pairs(pairs, images)


def test_people_on_another_programs_empty_sqlite_file_leaves_it_untouched(tmp_path: Path):
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("PRAGMA user_version = 7")
    before = other.read_bytes()
    with Gallery(other) as g:
        assert g.people() == [] and g.threshold(FP) is None
    assert other.read_bytes() == before


def test_a_locked_gallery_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.add("Ada", np.ones((1, 4), np.float32), FP)
    monkeypatch.setattr(gallery_module, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Gallery(path) as g, pytest.raises(GalleryError, match="another process has held"):
            g.add("Grace", np.ones((1, 4), np.float32), FP)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _enrol_one(args: tuple[str, str]) -> str:
    path, name = args
    try:
        with Gallery(path) as g:
            g.add(name, np.ones((1, 4), np.float32), FP)
        return "ok"
    except Exception as exc:  # the race used to raise "not a facelens gallery"/"File exists"
        return f"{type(exc).__name__}: {exc}"


def test_four_writers_racing_on_a_new_gallery_all_succeed(tmp_path: Path):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        for trial in range(15):
            path = str(tmp_path / f"g{trial}.sqlite")
            results = pool.map(_enrol_one, [(path, f"p{i}") for i in range(4)])
            assert results == ["ok"] * 4, (trial, results)
            with Gallery(path) as g:
                assert len(g.people()) == 4


def test_progress_prints_lines_when_not_a_terminal():
    out = io.StringIO()
    assert list(progress(range(5), "embedding photos", "photos", stream=out, every=0.0)) == [
        *range(5)
    ]
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("embedding photos: 1/5 photos (20%") and len(lines) == 5
    quiet = io.StringIO()
    list(progress(range(5), "x", stream=quiet, every=3600))
    assert quiet.getvalue() == ""  # short work stays silent


def test_sightings_summarise_who_was_seen():
    seen = Sightings()
    for name, score, nearest in [("Ada", 0.9, "Ada"), ("Ada", 0.7, "Ada"), (None, 0.3, "Ada")]:
        seen.add(name, score, nearest)
    assert seen.lines() == [
        "seen: Ada: 2 face(s), best score 0.900",
        "unknown: 1 face(s); nearest: Ada (1x, best 0.300)",
    ]


def test_newcomers_path_enrol_then_recognize_without_bundle(
    tmp_path: Path, tiny_plain_bundle, lfw_dir
):
    home = tmp_path / "home"
    tony = lfw_dir / "images" / "Tony_Blair"
    done = run("edge.cli.main", "enroll", "Tony Blair", tony / "Tony_Blair_0006.jpg",
               "--bundle", tiny_plain_bundle.path, home=home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    junk = tmp_path / "photos"
    junk.mkdir()
    for i in range(1000):
        (junk / f"junk{i:04d}.jpg").write_bytes(b"not a photo %d" % i)
    (junk / "tony.jpg").write_bytes((tony / "Tony_Blair_0006.jpg").read_bytes())
    done = run("edge.cli.main", "recognize", junk, home=home)  # no --bundle: the gallery's
    assert done.returncode == 0, done.stderr
    assert f"bundle {tiny_plain_bundle.path}" in done.stderr
    assert "seen: Tony Blair: 1 face(s), best score 1.000" in done.stdout
    assert "skipped 1000 unreadable file(s)" in done.stderr
    assert done.stderr.count("WARNING: skipping") == 3


def test_raw_names_in_an_old_gallery_are_printed_escaped(tmp_path: Path):
    path = tmp_path / "home" / "gallery.sqlite"
    with Gallery(path) as g:
        g.add("Ada", np.ones((1, 4), np.float32), FP)
    with sqlite3.connect(path) as conn:  # as an older facelens would have stored it
        conn.execute("UPDATE chunks SET person = ?", ("Eve\n\x1b[2Jroot\t9 embedding(s)",))
    done = run("edge.cli.main", "people", home=tmp_path / "home")
    assert done.returncode == 0
    assert "\x1b" not in done.stdout and "Eve\\n\\x1b[2Jroot\\t9" in done.stdout
    assert len(done.stdout.splitlines()) == 2


@settings(derandomize=True, max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, min_codepoint=0), max_size=40))
def test_any_text_is_a_safe_stored_name_or_a_clear_refusal(text: str):
    try:
        name = check_name(text)
    except PersonNameError as exc:
        assert "\n" not in str(exc) and "\x1b" not in str(exc)
        return
    assert escape(name) == name  # what is stored prints as itself: nothing to escape
    assert name == name.strip() and 0 < len(name) <= 100


@settings(derandomize=True, max_examples=400, deadline=None)
@given(st.one_of(st.floats().map(repr), st.text(max_size=12)))
def test_any_threshold_text_is_in_range_or_refused(text: str):
    try:
        value = argtypes.threshold(text)
    except argparse.ArgumentTypeError:
        return
    assert math.isfinite(value) and 0 < value <= 1


@pytest.mark.parametrize(
    ("make", "ext"), [(_bombs.tiff_width_twice, ".tiff"), (_bombs.jp2_fake_size, ".jp2")]
)
def test_the_issues_bombs_are_refused_before_opencv_decodes_a_byte(make, ext: str, monkeypatch):
    # Real bombs: OpenCV decodes each to 144 MP (checked at 1/8 scale), while the first
    # header a naive check reads (the TIFF's last width, the JP2's fake box) says 72x64.
    bomb = make()
    side = cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8).shape
    claim = sniff(bomb)
    assert claim.pixels == 144_000_000 and side == (claim.height // 8, claim.width // 8)
    calls: list[int] = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append(1) or real(*a))
    with pytest.raises(ImageError, match=f"{claim.width}x{claim.height} pixels"):
        decode_image(bomb, "bomb")
    assert calls == []  # refused from the header alone
    assert decode_image(_encode(ext), f"real{ext}").shape == (64, 72, 3)


def test_a_white_background_jpeg_with_long_zero_runs_is_accepted(lfw_dir: Path):
    # Optimised Huffman tables code a white background as long runs of zero bytes (7 kB here).
    face = cv2.imread(str(sorted((lfw_dir / "images" / "Colin_Powell").glob("*.jpg"))[0]))
    canvas = np.full((1364, 2048, 3), 255, np.uint8)
    canvas[500:750, 900:1150] = face
    _ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    data = buf.tobytes()
    assert bytes(4096) in data
    assert decode_image(data, "studio.jpg").shape == (1364, 2048, 3)
