"""Small files that claim or hold huge images: the decompression bombs of issue 20.

Shared by ``benchmarks/serve_memory.py`` (the server's peak memory under them) and the
tests that check they are refused before decoding (``tests/hardening``, ``tests/edge``).
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

LARGEST_SIDE = 9990  # 99.8 MP: just under the 100 MP cap, so decoded for real


def jp2_fake_size(side: int = 12000) -> bytes:
    """A real ``side`` x ``side`` grey JPEG 2000 (under 1 kB; 144 MP decoded by default),
    behind a box holding a fake codestream header that claims 72x64 (a reader taking
    the first header it finds is fooled). Encoding it takes ~1 GB for a few seconds."""
    ok, buf = cv2.imencode(".jp2", np.zeros((side, side), np.uint8))
    assert ok
    fake = b"\xff\x4f\xff\x51" + bytes(4) + struct.pack(">IIII", 72, 64, 0, 0) + bytes(24)
    box = struct.pack(">I4s", 8 + len(fake), b"uuid") + fake
    data = buf.tobytes()
    after = 12 + struct.unpack(">I", data[12:16])[0]  # the signature box, then ftyp
    return data[:after] + box + data[after:]


def tiff_width_twice(width: int = 1_000_000, height: int = 144) -> bytes:
    """A real ``width`` x ``height`` grey TIFF (144 MP by default) tagging its ImageWidth
    twice: ``width`` first (libtiff keeps the first), then 72 (a check keeping the last)."""
    ok, buf = cv2.imencode(".tiff", np.zeros((height, width), np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    offset = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[offset : offset + 2])[0]
    entries = [bytes(data[offset + 2 + 12 * k : offset + 14 + 12 * k]) for k in range(count)]
    first = next(e for e in entries if struct.unpack("<H", e[:2])[0] == 256)
    entries.insert(entries.index(first) + 1, struct.pack("<HHII", 256, 4, 1, 72))
    ifd = struct.pack("<H", count + 1) + b"".join(entries) + b"\0\0\0\0"
    data[4:8] = struct.pack("<I", len(data))  # the new directory goes at the end
    return bytes(data) + ifd


def largest_png(side: int = LARGEST_SIDE) -> bytes:
    """A legal grey PNG just under the pixel cap: ~100 kB that decodes to 300 MB of BGR."""
    image = np.zeros((side, side), np.uint8)
    image[::97] = 200
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return buf.tobytes()
