"""Reading image files safely: clear errors for missing, empty, corrupt or huge files."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
MAX_BYTES = 200 * 1024 * 1024
MAX_PIXELS = 100_000_000  # 100 MP; a decompression bomb is refused before it is decoded


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, without decoding; ``None`` if unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            i += 2 + length
    return None


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode image bytes to a BGR uint8 array; ``name`` is used in error messages."""
    if not data:
        raise ImageError(f"{name} is empty (0 bytes); give a JPEG or PNG photo")
    size = _header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise ImageError(
            f"{name} is {size[0]}x{size[1]} pixels, more than facelens reads "
            f"({MAX_PIXELS // 1_000_000} MP); downscale it first"
        )
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageError(f"{name} cannot be decoded ({exc.msg.strip()}); is it an image?") from exc
    if image is None or image.size == 0:
        raise ImageError(
            f"{name} is not an image OpenCV can read (corrupt, truncated or another file type); "
            "give a JPEG or PNG photo"
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
