"""Uploads: bounded before they are read, parsed in memory, decoded off the event loop.

No photo ever touches the disk: the multipart body is parsed from memory (never
spooled), and a body over the limit gets 413 before it is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from edge.base.errors import ImageError
from edge.media.image_size import sniff
from edge.media.images import MAX_PIXELS, decode_image
from edge.service.http.errors import ApiError

DEFAULT_MAX_UPLOAD_MB = 10.0
MAX_BOUNDARY = 70  # RFC 2046's limit on a multipart boundary


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets 413 before it is read.

    A declared Content-Length is refused at once; a chunked body is cut off as soon
    as it passes the limit.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    def _error(self) -> ApiError:
        mb = self.limit / 1e6
        return ApiError(
            413,
            "image",
            f"the upload is larger than this service accepts ({mb:g} MB)",
            "send a smaller photo (a face needs no more than ~1 MP), or start the service "
            "with a larger --max-upload-mb",
        )

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._error().response()(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._error().response()(scope, receive, send)


def form(
    *photos: str, many: tuple[str, ...] = (), text: tuple[str, ...] = (), base64: bool = False
) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads its form itself: the schema (and
    ``/docs``) then show the fields to send. ``photos`` are required files, ``many`` files
    that repeat, ``text`` optional text fields; ``base64`` also takes the photos as base64
    strings in a JSON body (CompreFace's way)."""
    binary = {"type": "string", "format": "binary"}
    fields: dict[str, Any] = {f: binary for f in photos}
    fields.update({f: {"type": "array", "items": binary} for f in many})
    fields.update({f: {"type": "string"} for f in text})
    required = [*photos, *many]
    content = {"multipart/form-data": {"schema": _object(fields, required)}}
    if base64:
        strings = {f: {"type": "string", "description": "base64"} for f in photos}
        content["application/json"] = {"schema": _object(strings, list(photos))}
    return {"requestBody": {"required": bool(required), "content": content}}


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


@dataclass(frozen=True)
class Upload:
    field: str
    filename: str
    data: bytes


def _boundary(content_type: str) -> bytes:
    kind, params = parse_options_header(content_type)
    fix = "send the photo as a form field, e.g. curl -F image=@photo.jpg"
    if kind != b"multipart/form-data":
        got = content_type[:80] or "no Content-Type"
        raise ApiError(415, "image", f"expected a multipart/form-data upload, got {got}", fix)
    boundary = params.get(b"boundary", b"")
    if not 1 <= len(boundary) <= MAX_BOUNDARY:
        raise ApiError(
            400,
            "Content-Type",
            f"the multipart/form-data upload has a boundary of {len(boundary)} characters "
            f"(1-{MAX_BOUNDARY} are valid)",
            fix + " (curl and every HTTP library set the boundary for you)",
        )
    return boundary


def parse_multipart(boundary: bytes, body: bytes) -> list[Upload]:
    """Every part of a multipart/form-data body, in memory (never spooled to disk)."""
    parts: list[Upload] = []
    current: dict[str, Any] = {}

    def on_part_begin() -> None:
        current.clear()
        current.update(headers={}, name=b"", value=b"", data=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        current["name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        current["value"] += data[start:end]

    def on_header_end() -> None:
        current["headers"][current["name"].lower()] = current["value"]
        current["name"], current["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        current["data"] += data[start:end]

    def on_part_end() -> None:
        _, options = parse_options_header(current["headers"].get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename", b"").decode("utf-8", "replace")
        parts.append(Upload(name, filename or name, bytes(current["data"])))

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises several types for a broken body
        raise ApiError(
            400,
            "image",
            f"the multipart body cannot be parsed ({str(exc)[:120]})",
            "send a well-formed form",
        ) from None
    return parts


async def read_parts(request: Request) -> list[Upload]:
    """Every part of the request's multipart form (text fields too), in memory."""
    boundary = _boundary(request.headers.get("content-type", ""))  # before reading the body
    # A body of many tiny parts takes seconds to parse: off the event loop, like decoding.
    return await run_in_threadpool(parse_multipart, boundary, await request.body())


async def read_uploads(
    request: Request, *fields: str, many: bool = False
) -> dict[str, list[Upload]]:
    """The uploads of ``fields`` (each required; only ``many`` allows several per field)."""
    parts = await read_parts(request)
    found: dict[str, list[Upload]] = {f: [p for p in parts if p.field == f] for f in fields}
    for field, uploads in found.items():
        if not uploads:
            sent = sorted({p.field for p in parts}) or "none"
            raise ApiError(
                400,
                field,
                f"no {field!r} field in the form (fields sent: {sent})",
                f"send the photo as the form field {field!r}, e.g. curl -F {field}=@photo.jpg",
            )
        if len(uploads) > 1 and not many:
            raise ApiError(400, field, f"{len(uploads)} {field!r} fields", "send exactly one")
    return found


class PixelBudget:
    """Decoded pixels the service holds at once: requests wait their turn past it.

    A 94 kB PNG can decode to 100 MP (300 MB); without a budget, six of them in one
    request, or in six requests at once, take gigabytes.
    """

    def __init__(self, total: int = MAX_PIXELS) -> None:
        self.total, self.free = total, total
        self._changed: asyncio.Condition | None = None  # made on the server's event loop

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        self._changed = self._changed or asyncio.Condition()
        async with self._changed:
            await self._changed.wait_for(lambda: self.free >= pixels)
            self.free -= pixels
        try:
            yield
        finally:
            async with self._changed:
                self.free += pixels
                self._changed.notify_all()


def _pixels(uploads: list[Upload]) -> int:
    """What the uploads will decode to, from their headers (0 for what is not an image:
    decoding refuses it without allocating)."""
    sizes = [sniff(u.data) for u in uploads]
    return sum(min(h.pixels, MAX_PIXELS + 1) if h else 0 for h in sizes)


@asynccontextmanager
async def decoded(request: Request, uploads: list[Upload]) -> AsyncIterator[list[np.ndarray]]:
    """The uploads decoded one at a time, held within the app's :class:`PixelBudget`."""
    pixels = _pixels(uploads)
    budget: PixelBudget = request.app.state.pixels
    if pixels > budget.total and len(uploads) > 1:
        raise ApiError(
            413,
            "image",
            f"the {len(uploads)} photos hold {pixels / 1e6:.0f} MP together, more than this "
            f"service decodes for one request ({budget.total // 1_000_000} MP)",
            "send smaller photos (a face needs no more than ~1 MP each), or fewer at a time",
        )
    async with budget.hold(min(pixels, budget.total)):
        yield [await decode(u) for u in uploads]


async def decode(upload: Upload) -> np.ndarray:
    """The uploaded photo as an image (422 naming the field when it is not one)."""
    try:
        return await run_in_threadpool(decode_image, upload.data, repr(upload.filename))
    except ImageError as exc:
        raise ApiError(
            422, upload.field, str(exc), "send a JPEG or PNG photo in this field"
        ) from None


def name_uploads(message: str, uploads: list[Upload]) -> str:
    """FaceLens calls uploaded images ``image #i``; say which file that was."""
    for i, u in enumerate(uploads):
        message = message.replace(f"image #{i}", f"{u.filename!r} (image #{i})")
    return message
