"""Uploads: bounded before they are read, parsed in memory, decoded off the event loop.

No photo ever touches the disk: the multipart body is parsed from memory (never
spooled), and a body over the limit gets 413 before it is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from edge.base.errors import ImageError
from edge.media.images import decode_image
from edge.service.http.errors import ApiError

DEFAULT_MAX_UPLOAD_MB = 10.0


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


@dataclass(frozen=True)
class Upload:
    field: str
    filename: str
    data: bytes


def _boundary(content_type: str) -> bytes:
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(
            415,
            "image",
            f"expected a multipart/form-data upload, got {content_type or 'no Content-Type'}",
            "send the photo as a form field, e.g. curl -F image=@photo.jpg",
        )
    return params[b"boundary"]


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

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises several types for a broken body
        raise ApiError(
            400, "image", f"the multipart body cannot be parsed ({exc})", "send a well-formed form"
        ) from None
    return parts


async def read_parts(request: Request) -> list[Upload]:
    """Every part of the request's multipart form (text fields too), in memory."""
    boundary = _boundary(request.headers.get("content-type", ""))  # before reading the body
    return parse_multipart(boundary, await request.body())


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
