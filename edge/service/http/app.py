"""The FastAPI app of ``edge serve``: its routes, middleware and error handlers over one
:class:`~edge.service.state.Service`, and :func:`run`, which serves it with uvicorn."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from edge.api import FaceLens
from edge.media.cameras import Cameras
from edge.service.engine import Engine
from edge.service.http import routes
from edge.service.http.auth import load_token
from edge.service.http.corrections import review
from edge.service.http.errors import answer_errors_as_json
from edge.service.http.uploads import DEFAULT_MAX_UPLOAD_MB, BodyLimit
from edge.service.mqtt import MqttEvents
from edge.service.state import Service
from edge.service.web import routes as web

log = logging.getLogger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: Service = app.state.service
    service.start()
    try:
        yield
    finally:
        service.close()


async def _measure(request: Request, call_next: Callable) -> Any:
    """Count each request and its latency by route (``unmatched`` for no route)."""
    t0 = time.perf_counter()
    response = await call_next(request)
    path = getattr(request.scope.get("route"), "path", "unmatched")
    metrics = request.app.state.service.metrics
    labels = {"route": path, "status": str(response.status_code)}
    metrics.inc("facelens_http_requests_total", labels)
    metrics.observe("facelens_http_request_seconds", time.perf_counter() - t0, {"route": path})
    return response


def create_app(
    engine: Engine,
    token: str,
    *,
    max_upload: int = int(DEFAULT_MAX_UPLOAD_MB * 1e6),
    cameras: Cameras | None = None,
    events: MqttEvents | None = None,
    appearance_gap_s: float | None = None,
    keep_recent_days: float | None = None,
) -> FastAPI:
    """The service's FastAPI app over ``engine``; starts and stops the camera loop.

    Each camera's faces are followed and decided as appearances (a person unseen for
    ``appearance_gap_s`` seconds, default 2, appears anew); ``events`` publishes each
    one when it is decided.
    """
    app = FastAPI(
        title="facelens",
        summary="Local face recognition: identify, verify, enrol, forget.",
        lifespan=_lifespan,
        docs_url=None,  # no third-party JavaScript from a CDN: this service is offline
        redoc_url=None,
    )
    app.state.service = Service(engine, cameras, events, appearance_gap_s, keep_recent_days)
    app.state.token = token
    app.add_middleware(BodyLimit, limit=max_upload)
    app.middleware("http")(_measure)  # added last: it also times BodyLimit's refusals
    answer_errors_as_json(app)
    for router in (routes.status, routes.recognition, routes.people, review):
        app.include_router(router)
    web.install(app)
    return app


def _announce(token: str, origin: str, token_file: Path, host: str) -> None:
    """Print the token once when it is new, and warn when listening beyond loopback."""
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
    keep_recent_days: float | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM; prints where, and the token once when it is new."""
    import uvicorn

    token, origin = load_token(token_file)
    engine = Engine(make)
    _announce(token, origin, token_file, host)
    print(f"{engine.call(engine.fl.describe)}\nserving on http://{host}:{port}", flush=True)
    app = create_app(
        engine,
        token,
        max_upload=int(max_upload_mb * 1e6),
        cameras=cameras,
        events=events,
        appearance_gap_s=appearance_gap_s,
        keep_recent_days=keep_recent_days,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )
    try:
        server.run()
    finally:
        engine.close()
    return 0
