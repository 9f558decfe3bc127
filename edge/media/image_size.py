"""An image's format and size read from its header, before anything is decoded.

A few kilobytes of compressed TIFF or PNG can claim 900 megapixels, which OpenCV
would decode into gigabytes. :func:`sniff` recognises every format the OpenCV build
reads (JPEG, PNG, WebP, AVIF, TIFF, JPEG 2000, BMP, GIF, PNM/PAM/PFM, Radiance HDR,
Sun raster) and returns the size its header claims, so the caller can refuse a bomb
without decoding it. A file it cannot recognise is ``None``: callers refuse it
rather than let OpenCV guess (fail closed: no format slips past the size check).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

FORMATS = "JPEG, PNG, WebP, AVIF, TIFF, JPEG 2000, BMP, GIF, PNM/PAM/PFM, Radiance HDR, Sun raster"


@dataclass(frozen=True)
class HeaderSize:
    """What a header claims: format name, width, height and channels (``None``: unstated)."""

    format: str
    width: int
    height: int
    channels: int | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _jpeg(data: bytes) -> HeaderSize | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return HeaderSize("JPEG", width, height, data[i + 9] if i + 9 < len(data) else None)
        i += 2 + length
    return None


def _png(data: bytes) -> HeaderSize | None:
    if len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return HeaderSize("PNG", width, height)


def _webp(data: bytes) -> HeaderSize | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return HeaderSize("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return HeaderSize("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return HeaderSize("WebP", width, height)
    return None


def _avif(data: bytes) -> HeaderSize | None:
    # Every image item has an 'ispe' property (width, height); a grid's is the full canvas.
    sizes = [
        struct.unpack(">II", data[m.end() + 4 : m.end() + 12])
        for m in re.finditer(b"ispe", data)
        if m.end() + 12 <= len(data)
    ]
    if not sizes:
        return None
    width, height = max(sizes, key=lambda s: s[0] * s[1])
    return HeaderSize("AVIF", width, height)


def _tiff(data: bytes) -> HeaderSize | None:
    end = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(end + "H", data[2:4])[0] == 43
    try:
        if big:
            (offset,) = struct.unpack(end + "Q", data[8:16])
            (count,) = struct.unpack(end + "Q", data[offset : offset + 8])
            entry, first, value_at = 20, offset + 8, 12
        else:
            (offset,) = struct.unpack(end + "I", data[4:8])
            (count,) = struct.unpack(end + "H", data[offset : offset + 2])
            entry, first, value_at = 12, offset + 2, 8
        tags: dict[int, int] = {}
        for k in range(min(count, 4096)):
            at = first + k * entry
            tag, kind = struct.unpack(end + "HH", data[at : at + 4])
            if tag in (256, 257, 277):  # ImageWidth, ImageLength, SamplesPerPixel
                raw = data[at + value_at : at + value_at + 8]
                fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
                if fmt is None:
                    return None
                value = struct.unpack(end + fmt, raw[: struct.calcsize(fmt)])[0]
                # A tag given twice: libtiff keeps the first, another reader may keep the
                # last; the larger claim is the one to check (fail closed).
                tags[tag] = max(tags.get(tag, 0), value)
    except struct.error:
        return None
    if 256 not in tags or 257 not in tags:
        return None
    return HeaderSize("TIFF", tags[256], tags[257], tags.get(277))


def _j2k_codestream(data: bytes, name: str, at: int = 0) -> HeaderSize | None:
    """The size in the SIZ segment of a codestream starting at ``at`` (SOC then SIZ)."""
    if data[at : at + 4] != b"\xff\x4f\xff\x51" or at + 42 > len(data):
        return None
    x, y, x0, y0 = struct.unpack(">IIII", data[at + 8 : at + 24])
    (components,) = struct.unpack(">H", data[at + 40 : at + 42])
    return HeaderSize(name, max(x - x0, 0), max(y - y0, 0), components)


def _boxes(data: bytes, start: int, stop: int) -> list[tuple[bytes, int, int]]:
    """The JP2 boxes between ``start`` and ``stop``: (type, content start, content end)."""
    boxes = []
    while start + 8 <= stop:
        length, kind = struct.unpack(">I4s", data[start : start + 8])
        head = 8
        if length == 1 and start + 16 <= stop:
            (length,) = struct.unpack(">Q", data[start + 8 : start + 16])
            head = 16
        elif length == 0:  # the last box runs to the end
            length = stop - start
        if length < head:
            break
        boxes.append((kind, start + head, min(start + length, stop)))
        start += length
    return boxes


def _jp2(data: bytes) -> HeaderSize | None:
    """A JP2 file's size as OpenJPEG decodes it: its codestream box (``jp2c``), walked box by
    box; the image header (``ihdr``) must not claim more (a fake size elsewhere is ignored)."""
    boxes = _boxes(data, 0, len(data))
    streams = [_j2k_codestream(data, "JPEG 2000", s) for kind, s, _ in boxes if kind == b"jp2c"]
    headers = [
        struct.unpack(">IIH", data[s : s + 10])
        for kind, start, stop in boxes
        if kind == b"jp2h"
        for inner, s, e in _boxes(data, start, stop)
        if inner == b"ihdr" and e - s >= 10
    ]
    if not streams or streams[0] is None:
        return None
    size = streams[0]
    if any(h * w > size.pixels for h, w, _ in headers):  # fail closed: the larger claim
        h, w, c = max(headers, key=lambda hw: hw[0] * hw[1])
        return HeaderSize("JPEG 2000", w, h, c)
    return size


def _bmp(data: bytes) -> HeaderSize | None:
    if len(data) < 26:
        return None
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return HeaderSize("BMP", width, abs(height))


def _gif(data: bytes) -> HeaderSize | None:
    if len(data) < 10:
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return HeaderSize("GIF", width, height)


_PNM_TOKENS = re.compile(rb"(?:\s|#[^\n]*\n?)*(\d+)")


def _pnm(data: bytes) -> HeaderSize | None:
    head = data[:4096]
    if head[:2] == b"P7":  # PAM: WIDTH and HEIGHT lines
        width = re.search(rb"\nWIDTH\s+(\d+)", head)
        height = re.search(rb"\nHEIGHT\s+(\d+)", head)
        depth = re.search(rb"\nDEPTH\s+(\d+)", head)
        if not (width and height):
            return None
        return HeaderSize("PAM", int(width[1]), int(height[1]), int(depth[1]) if depth else None)
    numbers, at = [], 2
    for _ in range(2):
        m = _PNM_TOKENS.match(head, at)
        if m is None:
            return None
        numbers.append(int(m[1]))
        at = m.end()
    return HeaderSize("PFM" if head[1:2] in b"Ff" else "PNM", numbers[0], numbers[1])


_HDR_SIZE = re.compile(rb"\n([-+][YX]) (\d+) ([-+][YX]) (\d+)\s*\n")


def _hdr(data: bytes) -> HeaderSize | None:
    m = _HDR_SIZE.search(data[:8192])
    if m is None:
        return None
    first, second = int(m[2]), int(m[4])
    # "-Y rows +X columns" is the usual order; "+X ... -Y ..." is a rotated image.
    width, height = (second, first) if m[1].endswith(b"Y") else (first, second)
    return HeaderSize("HDR", width, height)


def _sun(data: bytes) -> HeaderSize | None:
    if len(data) < 16:
        return None
    width, height, depth = struct.unpack(">III", data[4:16])
    return HeaderSize("Sun raster", width, height, max(depth // 8, 1))


def sniff(data: bytes) -> HeaderSize | None:
    """The format and size that ``data``'s header claims, or ``None`` when unrecognised."""
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data[4:8] == b"ftyp" and (b"avif" in data[8:64] or b"avis" in data[8:64]):
        return _avif(data)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff(data)
    if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
        return _jp2(data)
    if data[:4] == b"\xff\x4f\xff\x51":
        return _j2k_codestream(data, "JPEG 2000 codestream")
    if data[:2] == b"BM":
        return _bmp(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(data)
    if data[:1] == b"P" and data[1:2] in b"1234567Ff" and len(data) > 2:
        return _pnm(data)
    if data[:10] == b"#?RADIANCE" or data[:6] == b"#?RGBE":
        return _hdr(data)
    if data[:4] == b"\x59\xa6\x6a\x95":
        return _sun(data)
    return None
