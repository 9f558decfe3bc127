"""Reading image files safely: clear errors for missing, empty, corrupt, truncated or huge files.

Every image facelens reads comes through :func:`decode_image` (files through
:func:`read_image`): the header is read first (:mod:`edge.media.image_size`), so a file
claiming more than :data:`MAX_PIXELS` is refused before a byte is decoded, whatever
its format; a JPEG that is cut short or whose compressed data is damaged is refused
too, because OpenCV would decode it silently with a grey or smeared lower part.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from edge.base.errors import ImageError
from edge.media.image_size import FORMATS, sniff

IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".avif", ".tif", ".tiff",
    ".jp2", ".j2k", ".gif", ".ppm", ".pgm", ".pbm", ".pnm", ".pam", ".pfm", ".hdr", ".ras",
)  # fmt: skip
MAX_BYTES = 200 * 1024 * 1024
MAX_PIXELS = 100_000_000  # 100 MP; a decompression bomb is refused before it is decoded
MAX_CHANNELS = 4
# Radiance HDR and PFM decode to 32-bit floats (4x the bytes of 8-bit) before conversion.
FLOAT_FORMATS = ("HDR", "PFM")


def max_pixels(fmt: str) -> int:
    """The largest image facelens decodes in format ``fmt``: memory stays under ~1.5 GB."""
    return MAX_PIXELS // 4 if fmt in FLOAT_FORMATS else MAX_PIXELS


# After a JPEG scan header, 0xFF starts a marker unless stuffed (FF 00) or a fill byte.
_JPEG_MARKER = re.compile(rb"\xff+([^\x00\xff])")
# Markers that may legally follow entropy-coded data: DHT, DAC, DQT, DRI, SOS, EOI, APPn, COM.
# An encoder pads a scan's last byte with 1-bits (T.81 F.1.2.3), so entropy data never ends in
# a run of zero bytes; a copy cut short and padded out does. (Zero runs *inside* the data are
# normal: white backgrounds coded with optimised tables.)
_PADDED_TAIL = bytes(512)
_AFTER_SCAN = {0xC4, 0xCC, 0xDB, 0xDD, 0xDA, 0xD9, 0xFE, *range(0xE0, 0xF0)}


def _first_scan(data: bytes) -> int:
    """Offset of the first start-of-scan marker, walking the header segment by segment."""
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xDA:
            return at
        if marker == 0xFF:
            at += 1
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return -1


def jpeg_damage(data: bytes) -> str | None:
    """Why a JPEG's compressed data is damaged (cut short, garbage markers), or ``None``."""
    at = _first_scan(data)
    if at < 0:
        return "it has no image data (no start of scan)"
    restart = 0
    while True:
        m = _JPEG_MARKER.search(data, at + 2)
        if m is None:
            return "it is cut short (no end-of-image marker)"
        marker = m[1][0]
        if 0xD0 <= marker <= 0xD7:  # restart markers cycle RST0..RST7 in order
            if marker - 0xD0 != restart % 8:
                return "its compressed data is damaged (restart markers out of order)"
            restart += 1
            at = m.end() - 2
            continue
        if marker not in _AFTER_SCAN:
            return f"its compressed data is damaged (stray marker 0x{marker:02X})"
        if marker == 0xD9:
            if data.endswith(_PADDED_TAIL, 0, m.start()):
                return "its compressed data ends in zero bytes (a copy cut short and padded out)"
            return None
        restart = 0
        at = m.end() - 2
        if marker != 0xDA:  # a table between scans: skip its segment
            at += int.from_bytes(data[at + 2 : at + 4], "big")


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode image bytes to a BGR uint8 array; ``name`` is used in error messages.

    Raises :class:`ImageError` for an empty, unrecognised, oversized, truncated or
    corrupt image, before decoding wherever the header tells.
    """
    if not data:
        raise ImageError(f"{name} is empty (0 bytes); give a JPEG or PNG photo")
    header = sniff(data)
    if header is None:
        raise ImageError(
            f"{name} is not an image OpenCV can read (facelens reads {FORMATS}); "
            "give a JPEG or PNG photo"
        )
    if header.width <= 0 or header.height <= 0:
        raise ImageError(
            f"{name} claims a {header.width}x{header.height} {header.format} image (no pixels); "
            "the file is corrupt: export the photo again"
        )
    if header.pixels > max_pixels(header.format):
        raise ImageError(
            f"{name} is {header.width}x{header.height} pixels ({header.format}), more than "
            f"facelens reads ({max_pixels(header.format) // 1_000_000} MP); downscale it first"
        )
    if header.channels is not None and not 1 <= header.channels <= MAX_CHANNELS:
        raise ImageError(
            f"{name} claims {header.channels} channels per pixel; facelens reads grey, colour "
            "and colour+alpha images: export it as an ordinary JPEG or PNG"
        )
    if header.format == "JPEG":
        damage = jpeg_damage(data)
        if damage is not None:
            raise ImageError(f"{name} is a damaged JPEG: {damage}; copy or export the photo again")
    # A corrupt file makes OpenCV log its own [ERROR] lines; the ImageError says it better.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        reason = " ".join(exc.msg.split())[:160]
        raise ImageError(
            f"{name} cannot be decoded as {header.format} ({reason}); the file is "
            "corrupt or truncated: export the photo again"
        ) from exc
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is None or image.size == 0:
        raise ImageError(
            f"{name} is not an image OpenCV can read (its {header.format} data is corrupt, "
            "truncated or an unsupported variant); give a JPEG or PNG photo"
        )
    return image


def read_image(path: Path | str) -> np.ndarray:
    """Read an image file as BGR uint8, or raise :class:`ImageError` saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path} does not exist; check the path")
    if not path.is_file():
        raise ImageError(f"{path} is not a file; give an image file")
    nbytes = path.stat().st_size
    if nbytes > MAX_BYTES:
        raise ImageError(
            f"{path} is {nbytes / 1e6:.0f} MB, more than facelens reads "
            f"({MAX_BYTES // 1_000_000} MB); downscale or recompress it"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {path} ({exc.strerror}); check its permissions") from exc
    return decode_image(data, str(path))


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is named like an image facelens reads (by its suffix)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path | str, recursive: bool = True) -> list[Path]:
    """The image files in ``folder`` (and, if ``recursive``, its subfolders), sorted by path.

    An empty list when there are none; :class:`ImageError` when ``folder`` is not a
    readable folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"image folder {folder} does not exist or is not a folder; check the path")
    try:
        found = folder.rglob("*") if recursive else folder.iterdir()
        return sorted(p for p in found if is_image_file(p) and p.is_file())
    except OSError as exc:
        raise ImageError(
            f"cannot read image folder {folder} ({exc.strerror}); check permissions"
        ) from exc
