"""``edge serve``: recognition as a local HTTP service, with cameras and MQTT events.

A client of :class:`edge.FaceLens` (FastAPI + uvicorn, the ``serve`` extra; only
``edge serve`` imports this module):

- ``POST /v1/identify`` (multipart ``image``) -> every face: box, name or null, score;
- ``POST /v1/verify`` (``a``, ``b``) -> same, score, threshold;
- ``PUT /v1/people/{name}`` (one or more ``image``) enrols them; ``GET /v1/people[/{name}]``;
  ``DELETE /v1/people/{name}`` erases them for good (as ``edge forget``);
- ``GET /v1/health`` (no token) and ``GET /metrics`` (Prometheus text).

Every call but health needs ``Authorization: Bearer TOKEN``. Uploads are read into
memory only, up to a limit checked before the body is read; no photo ever touches the
disk. One engine thread owns the model and the gallery, so HTTP requests and camera
frames take turns on it: writes are serialised and a reader never sees a person half
enrolled (each enrolment is one SQLite transaction as well).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.api import FaceLens
from edge.base.errors import FacelensError, GalleryError, ImageError, NoFaceError
from edge.media.cameras import Camera, Cameras
from edge.media.images import decode_image
from edge.media.sources import Frame
from edge.results import Identity
from edge.service.metrics import CONTENT_TYPE, Metrics
from edge.service.mqtt import MqttEvents
from edge.video.loop import FrameResult, recognize_cameras
from edge.video.recognizer import CameraTracks

log = logging.getLogger(__name__)

TOKEN_ENV = "FACELENS_TOKEN"
DEFAULT_MAX_UPLOAD_MB = 10.0
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/]")
T = TypeVar("T")


class ApiError(Exception):
    """A 4xx answer: what is wrong with which field, and how to fix it."""

    def __init__(self, status: int, field: str, error: str, fix: str) -> None:
        super().__init__(error)
        self.status, self.field, self.error, self.fix = status, field, error, fix

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        body = {"error": self.error, "field": self.field, "fix": self.fix}
        return JSONResponse(body, status_code=self.status, headers=headers)


# -- the token ----------------------------------------------------------------------------


def load_token(path: Path) -> tuple[str, str]:
    """The API token and where it came from: ``$FACELENS_TOKEN``, else a 0600 file.

    The file is created with a fresh random token on first start; the token is then
    printed once by the caller (returned origin starts with ``created``).
    """
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    if path.is_file():
        if path.stat().st_mode & 0o077:
            log.warning("token file %s is readable by others: chmod 600 it", path)
        token = path.read_text().strip()
        if not token:
            raise FacelensError(f"the token file {path} is empty: delete it to get a new token")
        return token, f"the token file {path}"
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, f"created {path}"


# -- uploads: bounded, in memory ----------------------------------------------------------


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


async def _images(request: Request, *fields: str, many: bool = False) -> dict[str, list[Upload]]:
    """The uploads of ``fields`` (each required; only ``many`` allows several per field)."""
    boundary = _boundary(request.headers.get("content-type", ""))  # before reading the body
    parts = parse_multipart(boundary, await request.body())
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


async def _decode(upload: Upload) -> Any:
    try:
        return await run_in_threadpool(decode_image, upload.data, repr(upload.filename))
    except ImageError as exc:
        raise ApiError(
            422, upload.field, str(exc), "send a JPEG or PNG photo in this field"
        ) from None


def _check_name(name: str) -> str:
    if not name.strip() or len(name) > 200 or _BAD_NAME.search(name):
        raise ApiError(
            400,
            "name",
            f"{name!r} is not a usable name",
            "use 1-200 printable characters without '/' (URL-encode spaces: Ada%20Lovelace)",
        )
    return name


# -- the engine: one thread owns the model and the gallery --------------------------------


class Engine:
    """Runs every :class:`FaceLens` call on one thread (SQLite and runtimes stay on it)."""

    def __init__(self, make: Callable[[], FaceLens]) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="facelens-engine")
        self.fl = self.call(lambda: make().load())

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        return self._pool.submit(fn, *args).result()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    def close(self) -> None:
        self.call(self.fl.close)
        self._pool.shutdown()


# -- metrics ------------------------------------------------------------------------------


def _new_metrics() -> Metrics:
    m = Metrics()
    for name, kind, text in (
        ("facelens_http_requests_total", "counter", "HTTP requests by route and status"),
        ("facelens_http_request_seconds", "summary", "HTTP request latency by route"),
        ("facelens_frames_total", "counter", "images recognised, by camera (http = API calls)"),
        ("facelens_faces_total", "counter", "faces found, by camera"),
        ("facelens_stage_seconds", "summary", "recognition latency per stage"),
        ("facelens_errors_total", "counter", "recognition and camera errors, by camera"),
        ("facelens_events_total", "counter", "MQTT person events published, by camera"),
        ("facelens_camera_up", "gauge", "1 when the camera delivers frames"),
        ("facelens_camera_fps", "gauge", "frames recognised per second, last 5 s"),
        ("facelens_camera_reconnects_total", "counter", "times the camera was reopened"),
        ("facelens_camera_dropped_frames_total", "counter", "frames replaced by newer ones"),
        ("facelens_people", "gauge", "people enrolled"),
    ):
        m.describe(name, kind, text)
    return m


def _camera_gauges(cameras: Iterable[Camera]) -> list[tuple[str, Mapping[str, str], float]]:
    out = []
    for c in cameras:
        label = {"camera": c.name}
        out += [
            ("facelens_camera_up", label, 1.0 if c.up else 0.0),
            ("facelens_camera_fps", label, round(c.fps(), 2)),
            ("facelens_camera_reconnects_total", label, c.reconnects),
            ("facelens_camera_dropped_frames_total", label, c.frames_read - c.frames_taken),
        ]
    return out


def _count(metrics: Metrics, camera: str, faces: int, stage_ms: Mapping[str, float]) -> None:
    metrics.inc("facelens_frames_total", {"camera": camera})
    metrics.inc("facelens_faces_total", {"camera": camera}, faces)
    for stage, ms in stage_ms.items():
        metrics.observe("facelens_stage_seconds", ms / 1000, {"stage": stage})


# -- the app ------------------------------------------------------------------------------


def _identity(face: Identity) -> dict[str, Any]:
    return {
        "box": [round(float(v), 1) for v in face.box],
        "name": face.name,
        "score": round(float(face.score), 4),
        "nearest": face.nearest,
        "detection_score": round(float(face.detection_score), 4),
    }


def _person(p: Any) -> dict[str, Any]:
    return {"name": p.name, "embeddings": p.embeddings, "enrolled": p.enrolled}


def _name_uploads(message: str, uploads: list[Upload]) -> str:
    """FaceLens calls uploaded images ``image #i``; say which file that was."""
    for i, u in enumerate(uploads):
        message = message.replace(f"image #{i}", f"{u.filename!r} (image #{i})")
    return message


def create_app(
    engine: Engine,
    token: str,
    *,
    max_upload: int = int(DEFAULT_MAX_UPLOAD_MB * 1e6),
    cameras: Cameras | None = None,
    events: MqttEvents | None = None,
    appearance_gap_s: float | None = None,
) -> FastAPI:
    """The service's FastAPI app over ``engine``; starts and stops the camera loop.

    Each camera's faces are followed and decided as appearances (a person unseen for
    ``appearance_gap_s`` seconds, default 2, appears anew); ``events`` publishes each
    one when it is decided.
    """
    metrics = _new_metrics()
    fl = engine.fl
    stop = threading.Event()
    tracks = CameraTracks(fl, gap_s=appearance_gap_s)

    def counted(published: list[dict[str, Any]]) -> None:
        for event in published:
            metrics.inc("facelens_events_total", {"camera": event["camera"]})

    def on_frame(camera: Camera, frame: Frame, result: FrameResult) -> None:
        _count(metrics, camera.name, len(result.faces), result.ms)
        if events is not None:
            counted(events.frame(camera.name, result))

    def on_error(camera: Camera, exc: Exception) -> None:
        metrics.inc("facelens_errors_total", {"camera": camera.name})

    def watch() -> None:
        assert cameras is not None
        recognize_cameras(cameras, lambda c, f: engine.call(tracks, c, f), on_frame, on_error, stop)
        for name, step in engine.call(tracks.finish).items():  # the cameras ended or stopped
            if events is not None:
                counted(events.appearances(name, step.decided, step.ended))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = None
        if cameras is not None:
            cameras.start()
            watcher = threading.Thread(target=watch, name="cameras", daemon=True)
            watcher.start()
        try:
            yield
        finally:
            stop.set()
            if cameras is not None:
                cameras.close()
            if watcher is not None:
                watcher.join(timeout=10)
            if events is not None:
                events.close()

    app = FastAPI(
        title="facelens",
        summary="Local face recognition: identify, verify, enrol, forget.",
        lifespan=lifespan,
        docs_url=None,  # no third-party JavaScript from a CDN: this service is offline
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, limit=max_upload)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable) -> Any:
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        status = str(response.status_code)
        metrics.inc("facelens_http_requests_total", {"route": path, "status": status})
        metrics.observe("facelens_http_request_seconds", time.perf_counter() - t0, {"route": path})
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        fix = "see the README for the routes" if exc.status_code == 404 else "check the request"
        return ApiError(exc.status_code, "path", str(exc.detail), fix).response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return ApiError(400, field, first.get("msg", "invalid request"), "check it").response()

    def authorized(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        fix = f"send the header 'Authorization: Bearer TOKEN' (the token is ${TOKEN_ENV} or "
        fix += "the token file `edge serve` printed on its first start)"
        if scheme.lower() != "bearer" or not given:
            raise ApiError(401, "Authorization", "no bearer token", fix)
        if not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(401, "Authorization", "wrong token", fix)

    auth = [Depends(authorized)]

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        """Liveness and what is loaded (no token needed; names no one)."""
        return {
            "status": "ok",
            "bundle": fl.bundle.name,
            "people": len(await engine.run(fl.people)),
            "cameras": {c.name: c.status for c in (cameras.cameras if cameras else [])},
            "mqtt": str(events.broker) if events else None,
        }

    @app.get("/metrics", dependencies=auth)
    async def prometheus() -> PlainTextResponse:
        people = len(await engine.run(fl.people))
        gauges = [("facelens_people", None, people)]
        gauges += _camera_gauges(cameras.cameras if cameras else [])
        return PlainTextResponse(metrics.render(gauges), media_type=CONTENT_TYPE)

    @app.post("/v1/identify", dependencies=auth)
    async def identify(request: Request) -> dict[str, Any]:
        """Every face in the ``image`` field: box, name (null = unknown), score."""
        upload = (await _images(request, "image"))["image"][0]
        t0 = time.perf_counter()
        image = await _decode(upload)
        decode_ms = (time.perf_counter() - t0) * 1000
        result = await engine.run(fl.recognize, image)
        ms = {**result.ms, "decode": decode_ms, "total": result.ms["total"] + decode_ms}
        _count(metrics, "http", len(result.faces), ms)
        return {
            "faces": [_identity(f) for f in result.faces],
            "ms": {k: round(v, 2) for k, v in ms.items()},
        }

    @app.post("/v1/verify", dependencies=auth)
    async def verify(request: Request) -> dict[str, Any]:
        """Are the photos ``a`` and ``b`` the same person?"""
        uploads = await _images(request, "a", "b")
        a, b = [await _decode(uploads[f][0]) for f in ("a", "b")]
        try:
            v = await engine.run(fl.verify, a, b)
        except ImageError as exc:
            field = "a, b"
            if isinstance(exc, NoFaceError):
                field = "a" if not await engine.run(fl.faces, a) else "b"
            raise ApiError(
                422, field, f"{field}: {exc}", "send a photo with one clear, frontal face"
            ) from None
        return {"same": v.same, "score": round(v.score, 4), "threshold": round(v.threshold, 4)}

    @app.put("/v1/people/{name}", dependencies=auth)
    async def enroll(name: str, request: Request, face: int | None = None) -> dict[str, Any]:
        """Enrol ``name`` from the ``image`` fields (all or none: one bad photo enrols none)."""
        _check_name(name)
        uploads = (await _images(request, "image", many=True))["image"]
        images = [await _decode(u) for u in uploads]

        def write() -> tuple[list, list]:
            return fl.enroll(name, images, face=face), fl.people()

        try:
            report, people = await engine.run(write)
        except ImageError as exc:
            raise ApiError(
                422,
                "image",
                _name_uploads(str(exc), uploads),
                "send photos with one clear face each (or ?face=N to choose one); "
                "nothing was enrolled",
            ) from None
        except GalleryError as exc:
            raise ApiError(409, "name", str(exc), "see the message") from None
        person = next(p for p in people if p.name == name)
        return {
            "name": name,
            "enrolled": [
                {
                    "photo": u.filename,
                    "box": [round(float(v), 1) for v in r.face.box],
                    "detection_score": round(float(r.face.score), 4),
                    "faces_found": r.faces_found,
                }
                for u, r in zip(uploads, report, strict=True)
            ],
            "embeddings": person.embeddings,
        }

    @app.get("/v1/people", dependencies=auth)
    async def people() -> dict[str, Any]:
        """Everyone enrolled."""
        return {"people": [_person(p) for p in await engine.run(fl.people)]}

    def _unknown(name: str, people: list) -> ApiError:
        names = ", ".join(p.name for p in people) or "no one"
        return ApiError(404, "name", f"{name!r} is not enrolled", f"enrolled: {names}")

    @app.get("/v1/people/{name}", dependencies=auth)
    async def person(name: str) -> dict[str, Any]:
        everyone = await engine.run(fl.people)
        found = next((p for p in everyone if p.name == name), None)
        if found is None:
            raise _unknown(name, everyone)
        return _person(found)

    @app.delete("/v1/people/{name}", dependencies=auth)
    async def forget(name: str) -> dict[str, Any]:
        """Erase ``name`` for good (secure delete + vacuum), as ``edge forget`` does."""
        removed = await engine.run(fl.forget, name)
        if not removed:
            raise _unknown(name, await engine.run(fl.people))
        return {"name": name, "removed_embeddings": removed, "erased": "secure delete + vacuum"}

    return app


def run(
    make: Callable[[], FaceLens],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token_file: Path,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    cameras: Cameras | None = None,
    events: MqttEvents | None = None,
    appearance_gap_s: float | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM; prints where, and the token once when it is new."""
    import uvicorn

    token, origin = load_token(token_file)
    engine = Engine(make)
    if origin.startswith("created"):
        print(
            f"API token (shown once; kept in {token_file}, mode 0600): {token}\n"
            f"clients send: Authorization: Bearer {token}",
            flush=True,
        )
    else:
        print(f"API token from {origin}", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "listening on %s: anyone who can reach it and has the token can enrol and identify; "
            "put TLS in front (a reverse proxy) beyond a trusted network",
            host,
        )
    print(f"{engine.call(engine.fl.describe)}\nserving on http://{host}:{port}", flush=True)
    app = create_app(
        engine,
        token,
        max_upload=int(max_upload_mb * 1e6),
        cameras=cameras,
        events=events,
        appearance_gap_s=appearance_gap_s,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )
    try:
        server.run()
    finally:
        engine.close()
    return 0
