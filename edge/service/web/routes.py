"""The web page's routes: a login form, then pages over the same service as the API.

The token typed into the login form is kept in an HttpOnly, SameSite=Strict cookie (no
script can read it, no other site's form can send it); every page and form checks it
as the API checks its header. Forms post and are answered with a redirect (303) to the
page, with a short message, so reloading never repeats a correction. Uploaded photos
are parsed in memory, as the API's are.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from edge.base.errors import FacelensError
from edge.service.http.errors import ApiError
from edge.service.http.routes import State
from edge.service.http.uploads import Upload, decoded, read_parts
from edge.service.web import pages

COOKIE = "facelens_token"
LIVE_FPS = 4.0  # live view frames a second: enough to watch, little for a Pi to encode
LIVE_MAX_S = 600.0  # a live view ends after this long (the page can be reloaded)


class _LoginNeeded(Exception):
    pass


def signed_in(request: Request) -> None:
    """A page dependency: the cookie must hold the service's token, else the login form."""
    given = request.cookies.get(COOKIE, "")
    if not given or not secrets.compare_digest(given.encode(), request.app.state.token.encode()):
        raise _LoginNeeded


async def _to_login(request: Request, exc: _LoginNeeded) -> Response:
    return RedirectResponse("/login", status_code=303)


open_pages = APIRouter(include_in_schema=False)
pages_router = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)


def install(app: FastAPI) -> None:
    """Add the page's routes to the app, and the redirect to the login form."""
    app.add_exception_handler(_LoginNeeded, _to_login)
    app.include_router(open_pages)
    app.include_router(pages_router)


def _back(page: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{page}?msg={quote(message)}", status_code=303)


async def _attempt(page: str, s: State, fn: Callable[[], Any], done: Callable[[Any], str]) -> Any:
    """Run ``fn`` on the engine thread; back to ``page`` saying what happened or went wrong."""
    try:
        result = await s.engine.run(fn)
    except (FacelensError, ApiError) as exc:
        return _back(page, f"Not done: {exc}")
    return _back(page, done(result))


# -- logging in ----------------------------------------------------------------------------


@open_pages.get("/login")
async def login_form() -> HTMLResponse:
    return HTMLResponse(pages.login())


@open_pages.post("/login")
async def login(request: Request) -> Response:
    token = str((await request.form()).get("token", "")).strip()
    if not secrets.compare_digest(token.encode(), request.app.state.token.encode()):
        return HTMLResponse(pages.login("Wrong token: try again."), status_code=401)
    answer = RedirectResponse("/", status_code=303)
    answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return answer


@open_pages.post("/logout")
async def logout() -> Response:
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/")
    return answer


# -- pages -----------------------------------------------------------------------------------


@pages_router.get("/")
async def status(s: State, msg: str | None = None) -> HTMLResponse:
    def info() -> dict[str, Any]:
        keeping = s.watch.keeper.days if s.watch.keeper else None
        return {
            "model": s.fl.describe(),
            "people": len(s.fl.people()),
            "cameras": ", ".join(f"{c.name}: {c.status}" for c in s.camera_list) or "none",
            "MQTT": str(s.events.broker) if s.events else "off",
            "recent faces": f"kept {keeping:g} day(s)" if keeping else "not kept (off)",
            "kept now": len(s.fl.review.recent.list()),
        }

    return HTMLResponse(pages.status(await s.engine.run(info), msg))


@pages_router.get("/people")
async def people(s: State, msg: str | None = None) -> HTMLResponse:
    return HTMLResponse(pages.people(await s.engine.run(s.fl.people), msg))


async def _form_parts(request: Request) -> tuple[dict[str, str], list[Upload]]:
    """A multipart form, in memory: its text fields and its photos (field ``image``)."""
    parts = await read_parts(request)
    texts = {p.field: p.data.decode("utf-8", "replace") for p in parts if p.field != "image"}
    return texts, [p for p in parts if p.field == "image" and p.data]


@pages_router.post("/people/enrol")
async def enrol(request: Request, s: State) -> Response:
    texts, uploads = await _form_parts(request)
    name = texts.get("name", "").strip()
    try:
        async with decoded(request, uploads) as images:  # within the service's pixel budget
            return await _attempt(
                "/people",
                s,
                lambda: s.fl.enroll(name, images),
                lambda e: f"Enrolled {name} from {len(e)} photo(s).",
            )
    except ApiError as exc:
        return _back("/people", f"Not enrolled: {exc}")


@pages_router.post("/people/forget")
async def forget(name: str, s: State) -> Response:
    return await _attempt(
        "/people", s, lambda: s.fl.forget(name), lambda n: f"Forgot {name} ({n} view(s) erased)."
    )


@pages_router.get("/recent")
async def recent(s: State, msg: str | None = None) -> HTMLResponse:
    kept = await s.engine.run(lambda: s.fl.review.recent.list())
    keeping = s.watch.keeper.days if s.watch.keeper else None
    return HTMLResponse(pages.recent(kept, keeping, msg))


@pages_router.get("/recent/{kept_id}.jpg")
async def face(kept_id: int, s: State) -> Response:
    def thumbnail() -> bytes:
        recent = s.fl.review.recent
        return recent.face(recent.get(kept_id)).thumbnail

    try:
        data = await s.engine.run(thumbnail)
    except FacelensError:
        return Response(status_code=404)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@pages_router.post("/recent/identify")
async def identify(request: Request, s: State) -> Response:
    _, uploads = await _form_parts(request)
    if not uploads:
        return _back("/recent", "Choose a photo first.")

    def run(image: np.ndarray) -> str:
        result = s.fl.recognize(image)
        s.watch.photo(image, result)
        names = [f.name or "unknown" for f in result.faces if not f.problem]
        return ", ".join(names) or "no clear face"

    try:
        async with decoded(request, uploads[:1]) as (image,):
            return await _attempt("/recent", s, lambda: run(image), "Identified: {}".format)
    except ApiError as exc:
        return _back("/recent", f"Not identified: {exc}")


@pages_router.post("/recent/{kept_id}/{action}")
async def correct(kept_id: int, action: str, request: Request, s: State) -> Response:
    name = str((await request.form()).get("name", "")).strip() or None
    corrections: dict[str, Callable[[], Any]] = {
        "confirm": lambda: s.fl.review.confirm(kept_id, name),
        "rename": lambda: s.fl.review.rename(kept_id, name or ""),
        "reject": lambda: s.fl.review.reject(kept_id),
        "delete": lambda: s.fl.review.delete(kept_id),
    }
    if action not in corrections:
        return _back("/recent", f"No correction {action!r}.")
    return await _attempt(
        "/recent", s, corrections[action], lambda _: f"#{kept_id}: {action} done."
    )


@pages_router.get("/visitors")
async def visitors(s: State, msg: str | None = None) -> HTMLResponse:
    found = await s.engine.run(lambda: s.fl.review.visitors(s.fl.threshold.value))
    return HTMLResponse(pages.visitors(found, msg))


@pages_router.post("/visitors/{number}/name")
async def name_visitor(number: int, request: Request, s: State) -> Response:
    name = str((await request.form()).get("name", "")).strip()
    return await _attempt(
        "/visitors",
        s,
        lambda: s.fl.review.name_visitor(number, name, s.fl.threshold.value),
        lambda views: f"Enrolled {name} from {len(views)} view(s) of visitor {number}.",
    )


@pages_router.get("/cameras")
async def cameras(s: State) -> HTMLResponse:
    names = [c.name for c in s.camera_list]
    return HTMLResponse(pages.cameras(names, {c.name: c.status for c in s.camera_list}))


@pages_router.get("/cameras/{name}/live")
async def live(name: str, request: Request, s: State) -> Response:
    """MJPEG: the camera's latest frame with boxes and names, a few times a second."""
    if name not in {c.name for c in s.camera_list}:
        return Response(status_code=404)

    async def frames() -> AsyncIterator[bytes]:
        for _ in range(int(LIVE_MAX_S * LIVE_FPS)):
            if await request.is_disconnected():
                return
            jpeg = await run_in_threadpool(s.watch.live, name)
            if jpeg is not None:
                yield b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n"
            await asyncio.sleep(1 / LIVE_FPS)

    return StreamingResponse(frames(), media_type="multipart/x-mixed-replace; boundary=frame")
