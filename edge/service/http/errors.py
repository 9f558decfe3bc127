"""Every refusal as JSON: which field is wrong, what is wrong with it, how to fix it."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from edge.base.errors import FacelensError, GalleryError, ImageError
from edge.base.names import PersonNameError

log = logging.getLogger(__name__)

# A client learns no absolute path of the server's files: only their names.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s/'\"]+/)+([^\s/'\"()]+)")


class ApiError(Exception):
    """A 4xx answer: what is wrong with which field, and how to fix it."""

    def __init__(self, status: int, field: str, error: str, fix: str) -> None:
        super().__init__(error)
        self.status, self.field, self.error, self.fix = status, field, error, fix

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        body = {"error": self.error, "field": self.field, "fix": self.fix}
        return JSONResponse(body, status_code=self.status, headers=headers)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return exc.response()


def without_paths(message: str) -> str:
    """``message`` with every absolute path cut to its last part."""
    return _ABSOLUTE_PATH.sub(r"\1", message)


def refusal(exc: FacelensError) -> ApiError:
    """What a :class:`FacelensError` from a route means over HTTP (always a 4xx)."""
    message = without_paths(str(exc))
    if isinstance(exc, PersonNameError):
        return ApiError(400, "name", message, "change the name as the message says")
    if isinstance(exc, ImageError):
        return ApiError(422, "image", message, "send a photo with one clear, frontal face")
    if isinstance(exc, GalleryError):
        fix = "the gallery cannot be used now: its owner must act on the message"
        return ApiError(409, "gallery", message, fix + " (nothing was changed)")
    return ApiError(422, "request", message, "change the request as the message says")


async def _facelens_error(request: Request, exc: FacelensError) -> JSONResponse:
    log.info("refused %s %s: %s", request.method, route_template(request), type(exc).__name__)
    return refusal(exc).response()


def route_template(request: Request) -> str:
    """The route's template (``/v1/people/{name}``), never the name itself."""
    return getattr(request.scope.get("route"), "path", "unmatched")


PEOPLE = "/v1/people/"


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    name = request.url.path.removeprefix(PEOPLE)
    if exc.status_code == 404 and request.url.path.startswith(PEOPLE) and "/" in name:
        # a person's name in the URL held a '/' (even sent as %2F): it split the path
        return ApiError(
            404,
            "name",
            f"{name!r} holds '/', which separates the parts of a URL path",
            "use a name without '/' over HTTP (`edge enroll` and `edge forget` accept it)",
        ).response()
    fix = "see the README for the routes" if exc.status_code == 404 else "check the request"
    return ApiError(exc.status_code, "path", str(exc.detail)[:200], fix).response()


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
    return ApiError(400, field, first.get("msg", "invalid request"), "check it").response()


async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
    """The client went (or was cut off, sending too slowly) before its body arrived: no one
    reads the answer, and it is no server error."""
    log.info(
        "%s %s: the client left before sending its whole body",
        request.method,
        route_template(request),
    )
    return ApiError(
        400, "body", "the connection closed before the body arrived", "resend"
    ).response()


def answer_errors_as_json(app: FastAPI) -> None:
    """Refusals, unknown routes and invalid parameters all answer in :class:`ApiError`'s form."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(FacelensError, _facelens_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(ClientDisconnect, _gone)
