"""The FastAPI app of ``edge serve``: its routes, middleware and error handlers over one
:class:`~edge.service.state.Service`, and :func:`run`, which serves it with uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import resource
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from edge.api import FaceLens
from edge.media.cameras import Cameras
from edge.service.engine import Engine
from edge.service.fleet.sync import FleetSync
from edge.service.http import routes
from edge.service.http.auth import authorized, load_token
from edge.service.http.compat import compreface, deepstack
from edge.service.http.compat.frigate import Frigate
from edge.service.http.connections import HeaderTimeout, OncePer
from edge.service.http.corrections import review
from edge.service.http.errors import ApiError, answer_errors_as_json, route_template
from edge.service.http.uploads import DEFAULT_MAX_UPLOAD_MB, BodyLimit, PixelBudget
from edge.service.mqtt import MqttEvents
from edge.service.state import Service
from edge.service.web import routes as web

log = logging.getLogger(__name__)
access = logging.getLogger("edge.service.access")
LOCAL_NAMES = ("localhost", socket.gethostname().lower(), socket.gethostname().lower() + ".local")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: Service = app.state.service
    service.start()
    try:
        yield
    finally:
        service.close()


async def _measure(request: Request, call_next: Callable) -> Any:
    """Count each request and its latency by route (``unmatched`` for no route); log it.

    The log line names the route's template (``/v1/people/{name}``), never a person.
    """
    t0 = time.perf_counter()
    response = await call_next(request)
    path = route_template(request)
    metrics = request.app.state.service.metrics
    labels = {"route": path, "status": str(response.status_code)}
    metrics.inc("facelens_http_requests_total", labels)
    seconds = time.perf_counter() - t0
    metrics.observe("facelens_http_request_seconds", seconds, {"route": path})
    client = request.client.host if request.client else "-"
    access.info(
        "%s %s %s %d %.1f ms", client, request.method, path, response.status_code, seconds * 1e3
    )
    return response


def _host_allowed(host: str, listening: str) -> bool:
    """Whether a Host header names this service: an IP address, the address it listens
    on, or this machine's name. A DNS-rebinding page sends its own domain name."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in (*LOCAL_NAMES, listening.lower())


async def _check_host(request: Request, call_next: Callable) -> Any:
    host = request.headers.get("host", "")
    if not _host_allowed(host, request.app.state.host):
        return ApiError(
            421,
            "Host",
            f"this service does not answer for the host {host[:80]!r}",
            "call it by its IP address, localhost or this machine's name",
        ).response()
    return await call_next(request)


def _add_docs(app: FastAPI) -> None:
    """``/openapi.json`` and ``/docs``, both behind the token (``edge serve --docs``)."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(authorized)])
    async def schema() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(authorized)])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="facelens")


def create_app(
    engine: Engine,
    token: str,
    *,
    max_upload: int = int(DEFAULT_MAX_UPLOAD_MB * 1e6),
    cameras: Cameras | None = None,
    events: MqttEvents | None = None,
    appearance_gap_s: float | None = None,
    host: str = "127.0.0.1",
    docs: bool = False,
    frigate: str | None = None,
    sync: FleetSync | None = None,
    keep_recent_days: float | None = None,
) -> FastAPI:
    """The service's FastAPI app over ``engine``; starts and stops the camera loop.

    ``host`` is what it listens on (Host headers must name it, an IP address or this
    machine); ``docs`` serves ``/openapi.json`` and ``/docs`` behind the token.

    Each camera's faces are followed and decided as appearances (a person unseen for
    ``appearance_gap_s`` seconds, default 2, appears anew); ``events`` publishes each
    one when it is decided; ``sync`` keeps the gallery in step with a fleet. ``frigate``
    (Frigate's URL) names Frigate's person events, heard on the broker of ``events``.
    """
    app = FastAPI(
        title="facelens",
        summary="Local face recognition: identify, verify, enrol, forget.",
        lifespan=_lifespan,
        docs_url=None,  # off by default; --docs serves them behind the token
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = Service(engine, cameras, events, appearance_gap_s, sync, keep_recent_days)
    if frigate is not None:
        if events is None:
            raise ValueError("Frigate's events come through the broker of `events`: give both")
        app.state.service.frigate = Frigate(frigate, events.broker, app.state.service)
    app.state.token, app.state.host, app.state.pixels = token, host, PixelBudget()
    app.add_middleware(BodyLimit, limit=max_upload)
    app.middleware("http")(_check_host)
    app.middleware("http")(_measure)  # added last: it also times BodyLimit's refusals
    answer_errors_as_json(app)
    compat = (deepstack.router, compreface.router)  # their clients' paths, JSON and keys
    for router in (routes.status, routes.recognition, routes.people, review, *compat):
        app.include_router(router)
    web.install(app)
    if docs:
        _add_docs(app)
    return app


def _announce(origin: str, token_file: Path, host: str) -> None:
    """Say where the token is (never the token: stdout may go to a journal), and warn
    when listening beyond loopback."""
    if origin.startswith("created"):
        print(
            f"a new API token is in {token_file} (mode 0600); clients send the header "
            f"'Authorization: Bearer TOKEN' with it, e.g. "
            f'curl -H "Authorization: Bearer $(cat {token_file})" ...',
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


def _connection_limit() -> int:
    """As many connections as the open-file limit allows (raised to its hard limit), with
    room for the model, the gallery and the cameras."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        soft = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return max(soft - 128, 64)


def _quiet_repeats() -> None:
    """One line per repeated error a minute (an accept loop out of files logs one per try)."""
    for name in ("asyncio", "uvicorn.error"):
        logging.getLogger(name).addFilter(OncePer(60.0))


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
    docs: bool = False,
    access_log: bool = True,
    frigate: str | None = None,
    sync: Callable[[FaceLens], FleetSync] | None = None,
    keep_recent_days: float | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM; prints where, and where the token is when it is new.

    Idle and slow connections are closed (no complete request within
    :data:`~edge.service.http.connections.HEADER_TIMEOUT_S`, keep-alive 5 s); one line
    per request goes to the ``edge.service.access`` log unless ``access_log`` is off.
    ``sync`` makes the fleet sync of the loaded lens.
    """
    import uvicorn

    token, origin = load_token(token_file)
    engine = Engine(make)
    _announce(origin, token_file, host)
    _quiet_repeats()
    access.setLevel(logging.INFO if access_log else logging.WARNING)
    if access_log and not logging.getLogger().handlers:  # else the command's handler shows it
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        access.addHandler(handler)
    print(f"{engine.call(engine.fl.describe)}\nserving on http://{host}:{port}", flush=True)
    app = create_app(
        engine,
        token,
        max_upload=int(max_upload_mb * 1e6),
        cameras=cameras,
        events=events,
        appearance_gap_s=appearance_gap_s,
        host=host,
        docs=docs,
        frigate=frigate,
        sync=sync(engine.fl) if sync is not None else None,
        keep_recent_days=keep_recent_days,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,  # ours names the route, not the path (a path may hold a name)
        http=HeaderTimeout,
        timeout_keep_alive=5,
        limit_concurrency=_connection_limit(),
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        engine.close()
    return 0
