"""The routes, grouped by what they serve: status, recognition and the people enrolled.

Each route is a small function over the one :class:`~edge.service.state.Service` of
the app (``request.app.state.service``); every FaceLens call runs on its engine thread.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from edge.base.errors import ImageError, NoFaceError
from edge.base.names import MAX_NAME_CHARS, PersonNameError, check_name, did_you_mean, lookup_name
from edge.gallery.enroll import Enrolment
from edge.gallery.store import PersonInfo
from edge.results import Identity, with_total
from edge.service.http.auth import authorized
from edge.service.http.errors import ApiError, refusal
from edge.service.http.uploads import Upload, decoded, form, name_uploads, read_uploads
from edge.service.metrics import CONTENT_TYPE
from edge.service.state import Service


def _service(request: Request) -> Service:
    return request.app.state.service


State = Annotated[Service, Depends(_service)]

status = APIRouter()  # no token: liveness only, names no one
recognition = APIRouter(dependencies=[Depends(authorized)])
people = APIRouter(dependencies=[Depends(authorized)])


# -- status -------------------------------------------------------------------------------


@status.get("/v1/health")
async def health(s: State) -> dict[str, Any]:
    """Liveness and what is loaded (no token needed; names no one)."""
    return {
        "status": "ok",
        "bundle": s.fl.bundle.name,
        "people": len(await s.engine.run(s.fl.people)),
        "cameras": {c.name: c.status for c in s.camera_list},
        "mqtt": str(s.events.broker) if s.events else None,
        "sync": s.sync.status() if s.sync else None,
    }


@recognition.get("/metrics")
async def prometheus(s: State) -> PlainTextResponse:
    """Every series in Prometheus' text format."""
    people = len(await s.engine.run(s.fl.people))
    return PlainTextResponse(s.metrics.render(s.gauges(people)), media_type=CONTENT_TYPE)


# -- recognition --------------------------------------------------------------------------


def _identity(face: Identity) -> dict[str, Any]:
    return {
        "box": [round(float(v), 1) for v in face.box],
        "name": face.name,
        "score": round(float(face.score), 4),  # match confidence (edge.gallery.confidence)
        "cosine": None if face.cosine is None else round(float(face.cosine), 4),
        "nearest": face.nearest,
        "detection_score": round(float(face.detection_score), 4),
    }


@recognition.post("/v1/identify", openapi_extra=form("image"))
async def identify(request: Request, s: State) -> dict[str, Any]:
    """Every face in the ``image`` field: box, name (null = unknown), score."""
    upload = (await read_uploads(request, "image"))["image"][0]
    t0 = time.perf_counter()
    async with decoded(request, [upload]) as (image,):
        decode_ms = (time.perf_counter() - t0) * 1000
        result = await s.engine.run(s.fl.recognize, image)
        await s.engine.run(s.watch.photo, image, result)  # kept only with --keep-recent
    ms = with_total({**result.ms, "decode": decode_ms})
    s.count("http", len(result.faces), ms)
    return {
        "faces": [_identity(f) for f in result.faces],
        "ms": {k: round(v, 2) for k, v in ms.items()},
    }


@recognition.post("/v1/verify", openapi_extra=form("a", "b"))
async def verify(request: Request, s: State) -> dict[str, Any]:
    """Are the photos ``a`` and ``b`` the same person?"""
    uploads = await read_uploads(request, "a", "b")
    async with decoded(request, [uploads["a"][0], uploads["b"][0]]) as (a, b):
        try:
            v = await s.engine.run(s.fl.verify, a, b)
        except ImageError as exc:
            field = "a, b"
            if isinstance(exc, NoFaceError):
                field = "a" if not await s.engine.run(s.fl.faces, a) else "b"
            raise ApiError(
                422, field, f"{field}: {exc}", "send a photo with one clear, frontal face"
            ) from None
    cosine = None if v.cosine is None else round(v.cosine, 4)
    return {
        "same": v.same,
        "score": round(v.score, 4),
        "threshold": round(v.threshold, 4),
        "cosine": cosine,
    }


# -- people -------------------------------------------------------------------------------

NAME_FIX = (
    f"use 1-{MAX_NAME_CHARS} characters without control characters or spaces at either end, "
    "as `edge enroll` does (URL-encode spaces: Ada%20Lovelace)"
)


def _new_name(name: str) -> str:
    """``name`` from the URL as the gallery keeps it (the one rule, edge.base.names), or 400."""
    try:
        return check_name(name)
    except PersonNameError as exc:
        raise ApiError(400, "name", str(exc), NAME_FIX) from None


def _person(p: PersonInfo) -> dict[str, Any]:
    return {"name": p.name, "embeddings": p.embeddings, "enrolled": p.enrolled}


def _unknown(name: str, everyone: list[PersonInfo]) -> ApiError:
    """404 for a name no one has: a close name is suggested, the others are not listed."""
    hint = did_you_mean(name, [p.name for p in everyone])
    return ApiError(
        404, "name", f"{name!r} is not enrolled{hint}", "GET /v1/people lists who is enrolled"
    )


def _photos(uploads: list[Upload], enrolment: Enrolment) -> list[dict[str, Any]]:
    """One entry per upload, in upload order: kept (where its face is) or left out (why)."""
    kept = {p.path: p for p in enrolment.kept}
    left_out = dict(enrolment.left_out)
    out = []
    for i, u in enumerate(uploads):
        entry: dict[str, Any] = {"photo": u.filename}
        k = kept.get(f"image #{i}")
        if k is not None:
            entry.update(
                kept=True,
                box=[round(float(v), 1) for v in k.face.box],
                detection_score=round(float(k.face.score), 4),
                faces_found=k.faces_found,
            )
        else:
            reason = left_out.get(f"image #{i}", "not needed")
            entry.update(kept=False, reason=name_uploads(reason, uploads))
        out.append(entry)
    return out


@people.put("/v1/people/{name}", openapi_extra=form(many=("image",)))
async def enroll(name: str, request: Request, s: State, face: int | None = None) -> dict[str, Any]:
    """Enrol ``name`` from the ``image`` fields (all or none: one bad photo enrols none).

    The answer has one entry per photo, in upload order: kept, or left out and why (a
    near-duplicate of another, or more than the views kept).
    """
    name = _new_name(name)
    uploads = (await read_uploads(request, "image", many=True))["image"]

    async with decoded(request, uploads) as images:

        def write() -> tuple[Enrolment, list[PersonInfo]]:
            return s.fl.enroll(name, images, face=face), s.fl.people()

        try:
            enrolment, everyone = await s.engine.run(write)
        except ImageError as exc:
            raise ApiError(
                422,
                "image",
                name_uploads(refusal(exc).error, uploads),
                "send photos with one clear face each (or ?face=N to choose one); "
                "nothing was enrolled",
            ) from None
    person = next(p for p in everyone if p.name == name)
    return {"name": name, "photos": _photos(uploads, enrolment), "embeddings": person.embeddings}


@people.get("/v1/people")
async def everyone(s: State) -> dict[str, Any]:
    """Everyone enrolled."""
    return {"people": [_person(p) for p in await s.engine.run(s.fl.people)]}


@people.get("/v1/people/{name}")
async def person(name: str, s: State) -> dict[str, Any]:
    """One person enrolled: name, embeddings, when."""
    name = lookup_name(name)  # valid UTF-8 in NFC, as stored
    enrolled = await s.engine.run(s.fl.people)
    found = next((p for p in enrolled if p.name == name), None)
    if found is None:
        raise _unknown(name, enrolled)
    return _person(found)


@people.delete("/v1/people/{name}")
async def forget(name: str, s: State) -> dict[str, Any]:
    """Erase ``name`` for good (secure delete + vacuum), as ``edge forget`` does."""
    name = lookup_name(name)
    removed = await s.forget(name)
    if not removed:
        raise _unknown(name, await s.engine.run(s.fl.people))
    return {"name": name, "removed_embeddings": removed, "erased": "secure delete + vacuum"}
