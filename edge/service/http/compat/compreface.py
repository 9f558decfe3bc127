"""The CompreFace recognition and verification API on ``edge serve``: what
``compreface-sdk`` and Double Take send and read. Differences: see ``docs/compat.md``.

A photo comes as the multipart field ``file`` (``source_image``/``target_image`` to
verify) or base64 in a JSON body; no face is HTTP 400 with CompreFace's code 28, which
Double Take treats as "nobody there".
"""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from edge.base.names import lookup_name
from edge.gallery.store import PersonInfo
from edge.service.http.compat import faces
from edge.service.http.compat.dialect import (
    compat_authorized,
    dialect_route,
    json_upload,
    read_form,
)
from edge.service.http.compat.scores import client_score
from edge.service.http.errors import ApiError
from edge.service.http.routes import State
from edge.service.http.uploads import Upload, decoded, form
from edge.service.state import Service

NO_FACE = {"message": "No face is found in the given image", "code": 28}
# image ids are names for a person's embeddings (facelens keeps no photos to number)
_IDS = uuid.UUID("6f1c3a52-2a43-4f5e-9d0c-7f6b8f0e4c11")


def _error(exc: ApiError) -> JSONResponse:
    """CompreFace's error: ``{"message", "code"}``; no face is code 28, as Double Take needs."""
    if isinstance(exc, faces.NoFace):
        return JSONResponse(NO_FACE, status_code=400)
    body = {"message": f"{exc.error} ({exc.fix})", "code": exc.status}
    return JSONResponse(body, status_code=exc.status)


Threshold = Annotated[float, Query(ge=0, le=1)]
Count = Annotated[int, Query(ge=0)]

router = APIRouter(
    prefix="/api/v1",
    tags=["CompreFace"],
    dependencies=[Depends(compat_authorized)],
    route_class=dialect_route(_error),
)


async def _upload(request: Request, field: str) -> Upload:
    """The photo in the multipart ``field``, or base64 in a JSON body's ``field``."""
    if request.headers.get("content-type", "").startswith("application/json"):
        return await json_upload(request, field)
    form = await read_form(request)
    if field not in form:
        sent = sorted(form) or "none"
        fix = f"send the photo as the form field {field!r} (or base64 in a JSON body)"
        raise ApiError(400, field, f"no {field!r} field (sent: {sent})", fix)
    return form[field][-1]


def _box(f: faces.Seen) -> dict[str, Any]:
    return {"probability": f.detection, **faces.corner_fields(f.corners)}


async def _faces(s: Service, image: np.ndarray, limit: int, det_prob: float) -> list[faces.Seen]:
    found = [f for f in await faces.recognize(s, image) if f.detection >= det_prob]
    if not found:
        raise faces.NoFace("file", "no face found")
    return found[:limit] if limit else found  # largest first, as CompreFace's limit


@router.post("/recognition/recognize", openapi_extra=form("file", base64=True))
async def recognize(
    request: Request,
    s: State,
    limit: Count = 0,
    prediction_count: Count = 1,
    det_prob_threshold: Threshold = 0.0,
) -> dict[str, Any]:
    """Every face of ``file`` with the subject facelens names (none when it names no one)."""
    async with decoded(request, [await _upload(request, "file")]) as (image,):
        found = await _faces(s, image, limit, det_prob_threshold)
    return {
        "result": [
            {
                "box": _box(f),
                "subjects": (
                    [{"subject": f.name, "similarity": f.confidence}]
                    if f.name is not None and prediction_count
                    else []
                ),
            }
            for f in found
        ]
    }


def _image_id(name: str, i: int) -> str:
    return str(uuid.uuid5(_IDS, f"{name}\n{i}"))


@router.post("/recognition/faces", openapi_extra=form("file", base64=True))
async def add_face(request: Request, s: State, subject: str = "") -> dict[str, Any]:
    """*Add* the face of ``file`` to ``subject`` (created when new); facelens' own checks of
    the face (size, sharpness) stand in for ``det_prob_threshold``."""
    name = faces.person_name(subject, "subject")
    async with decoded(request, [await _upload(request, "file")]) as images:
        total = await faces.enroll(s, name, images, "file")
    return {"image_id": _image_id(name, total - 1), "subject": name}


@router.get("/recognition/faces")
async def list_faces(
    s: State, page: Count = 0, size: Annotated[int, Query(ge=1)] = 20, subject: str = ""
) -> dict[str, Any]:
    """Every embedding enrolled (one per photo kept), ``size`` a page."""
    people: list[PersonInfo] = await s.engine.run(s.fl.people)
    wanted = lookup_name(subject) if subject else None
    rows = [
        {"image_id": _image_id(p.name, i), "subject": p.name}
        for p in people
        if wanted in (None, p.name)
        for i in range(p.embeddings)
    ]
    return {
        "faces": rows[page * size : (page + 1) * size],
        "page_number": page,
        "page_size": size,
        "total_pages": math.ceil(len(rows) / size),
        "total_elements": len(rows),
    }


async def _forget_all(s: Service, names: list[str]) -> int:
    return sum([await s.forget(n) for n in names])


@router.delete("/recognition/faces")
async def delete_faces(s: State, subject: str = "") -> dict[str, Any]:
    """Erase ``subject`` for good (everyone when no subject is given); counts embeddings."""
    everyone = [p.name for p in await s.engine.run(s.fl.people)]
    return {"deleted": await _forget_all(s, [lookup_name(subject)] if subject else everyone)}


@router.delete("/recognition/faces/{image_id}")
async def delete_face(image_id: str) -> dict[str, Any]:
    """Not in facelens: it erases whole subjects."""
    raise ApiError(
        400,
        "image_id",
        "facelens erases a subject's faces together, not one photo",
        "DELETE /api/v1/recognition/faces?subject=NAME (or /recognition/subjects/NAME)",
    )


@router.get("/recognition/subjects")
async def subjects(s: State) -> dict[str, Any]:
    """Everyone enrolled."""
    return {"subjects": [p.name for p in await s.engine.run(s.fl.people)]}


@router.post("/recognition/subjects")
async def add_subject() -> dict[str, Any]:
    """Not in facelens: a subject comes with its first face."""
    raise ApiError(
        400,
        "subject",
        "facelens keeps no subject without a face",
        "add a face with POST /api/v1/recognition/faces?subject=NAME: it creates the subject",
    )


@router.delete("/recognition/subjects/{subject}")
async def delete_subject(subject: str, s: State) -> dict[str, Any]:
    """Erase ``subject`` for good, as ``edge forget`` does."""
    name = lookup_name(subject)
    if not await s.forget(name):
        raise ApiError(404, "subject", f"{name!r} is not enrolled", "see /recognition/subjects")
    return {"subject": name}


@router.delete("/recognition/subjects")
async def delete_subjects(s: State) -> dict[str, Any]:
    """Erase everyone for good; counts the subjects."""
    everyone = [p.name for p in await s.engine.run(s.fl.people)]
    await _forget_all(s, everyone)
    return {"deleted": len(everyone)}


@router.post(
    "/verification/verify", openapi_extra=form("source_image", "target_image", base64=True)
)
async def verify(
    request: Request, s: State, limit: Count = 0, det_prob_threshold: Threshold = 0.0
) -> dict[str, Any]:
    """The dominant face of ``source_image`` against every face of ``target_image``."""
    uploads = [await _upload(request, "source_image"), await _upload(request, "target_image")]

    def compare(source: np.ndarray, target: np.ndarray) -> tuple[list, list]:
        a = s.fl.faces(source)[:1]  # the dominant face
        b = [f for f in s.fl.faces(target) if f.score >= det_prob_threshold]
        embed = s.fl.embed
        return [(f, embed(source, f)[0]) for f in a], [(f, embed(target, f)[0]) for f in b]

    async with decoded(request, uploads) as (source, target):  # both within the budget
        a, b = await s.engine.run(compare, source, target)
    if not a or not b:
        raise faces.NoFace("source_image" if not a else "target_image", "no face found")
    b = sorted(b, key=lambda fe: -fe[0].box[2] * fe[0].box[3])
    t = s.fl.threshold.value  # faces against each other: the cosine that decides

    def box(face: Any) -> dict[str, Any]:
        corners = faces.corner_fields(faces.corners(face.box))
        return {"probability": round(float(face.score), 4), **corners}

    (source_face, ea), *_ = a
    matches = [
        {"box": box(f), "similarity": client_score(float(ea @ e), t, lowest=-1.0)}
        for f, e in (b[:limit] if limit else b)
    ]
    return {"result": [{"source_image_face": {"box": box(source_face)}, "face_matches": matches}]}
