"""What the compatible APIs share: their clients' ways to send the token, forms and JSON
bodies, and errors in each API's own shape.

Their clients cannot send ``Authorization: Bearer``, so these routes also take the
service token as DeepStack's ``api_key`` form field, CompreFace's ``x-api-key`` header,
or the password of HTTP Basic auth (``http://facelens:TOKEN@host:port``: the one way a
client that sends no key at all, such as ``codeproject-ai-api``, can carry it).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from edge.service.http.auth import TOKEN_ENV
from edge.service.http.errors import ApiError
from edge.service.http.uploads import Upload, parse_multipart

Render = Callable[[ApiError], JSONResponse]


def dialect_route(render: Render) -> type[APIRoute]:
    """A route class whose refusals (auth, fields, photos) answer as ``render`` shapes them."""

    class DialectRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def answer(request: Request) -> Response:
                try:
                    return await handler(request)
                except ApiError as exc:
                    return render(exc)
                except RequestValidationError as exc:
                    first = exc.errors()[0] if exc.errors() else {}
                    field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
                    msg = first.get("msg", "invalid request")
                    return render(ApiError(400, field, f"{field}: {msg}", "check it"))

            return answer

    return DialectRoute


async def read_form(request: Request) -> dict[str, list[Upload]]:
    """Every field of a multipart or url-encoded form (an empty body is an empty form),
    parsed once per request: the token check and the route both read it."""
    cached = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    body = await request.body()
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind == b"multipart/form-data" and b"boundary" in params:
        # many tiny parts take seconds to parse: off the event loop, as read_parts does
        parts = await run_in_threadpool(parse_multipart, params[b"boundary"], body)
    elif kind == b"application/x-www-form-urlencoded" or not body:
        text = body.decode("utf-8", "replace")
        parts = [Upload(k, k, v.encode()) for k, v in parse_qsl(text, keep_blank_values=True)]
    else:
        parts = []
    form: dict[str, list[Upload]] = {}
    for part in parts:
        form.setdefault(part.field, []).append(part)
    request.state.form = form
    return form


def text_field(form: dict[str, list[Upload]], name: str, default: str | None = None) -> str | None:
    """A form field's text (the last one sent), or ``default``."""
    return form[name][-1].data.decode("utf-8", "replace").strip() if name in form else default


async def json_upload(request: Request, field: str) -> Upload:
    """The photo in a JSON body's base64 ``field`` (CompreFace's alternative to a form),
    still encoded: routes decode it within the service's pixel budget."""
    try:
        value = json.loads(await request.body())[field]
        data = base64.b64decode(value.split(",", 1)[-1], validate=True)  # a data: URL too
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise ApiError(
            400,
            field,
            f"the JSON body has no base64 image in {field!r}",
            f'send {{"{field}": "<base64 JPEG>"}}, or a multipart form with the field {field!r}',
        ) from None
    return Upload(field, field, data)


def _basic_password(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip()).decode().partition(":")[2]
    except (ValueError, UnicodeDecodeError):
        return None


async def given_token(request: Request) -> str | None:
    """The token a compatible client sent, however its API sends one."""
    header = request.headers.get("authorization", "")
    scheme, _, bearer = header.partition(" ")
    if scheme.lower() == "bearer" and bearer.strip():
        return bearer.strip()
    for candidate in (request.headers.get("x-api-key"), _basic_password(header)):
        if candidate:
            return candidate
    if request.method == "POST":
        return text_field(await read_form(request), "api_key") or None
    return None


async def compat_authorized(request: Request) -> None:
    """A route dependency: 401 unless the request carries the service token in any of the
    ways the module lists."""
    given = await given_token(request)
    fix = (
        f"give the service token (${TOKEN_ENV} or the token file `edge serve` printed) as the "
        "client's API key, or as the password in the server URL (http://facelens:TOKEN@host)"
    )
    if not given:
        raise ApiError(401, "api_key", "no API key", fix)
    if not secrets.compare_digest(given.encode(), request.app.state.token.encode()):
        raise ApiError(401, "api_key", "wrong API key", fix)
