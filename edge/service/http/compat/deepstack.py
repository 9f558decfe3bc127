"""The DeepStack / CodeProject.AI face API on ``edge serve``: the paths and JSON their
clients (Home Assistant's ``deepstack_face``, CodeProject.AI's integration, Double Take,
Blue Iris, Agent DVR) send and read. Differences from DeepStack: see ``docs/compat.md``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from edge.base.names import lookup_name
from edge.service.http.compat import faces
from edge.service.http.compat.dialect import compat_authorized, dialect_route, read_form, text_field
from edge.service.http.errors import ApiError
from edge.service.http.routes import State
from edge.service.http.uploads import Upload, decoded, form

UNKNOWN = "unknown"


def _error(exc: ApiError) -> JSONResponse:
    """DeepStack's error: ``{"success": false, "error", "code"}`` (with facelens' fix)."""
    body = {"success": False, "error": f"{exc.error} ({exc.fix})", "code": exc.status}
    return JSONResponse(body, status_code=exc.status)


Form = Annotated[dict[str, list[Upload]], Depends(read_form)]

router = APIRouter(
    prefix="/v1/vision/face",
    tags=["DeepStack / CodeProject.AI"],
    dependencies=[Depends(compat_authorized)],
    route_class=dialect_route(_error),
)


def _upload(form: dict[str, list[Upload]], field: str = "image") -> Upload:
    if field not in form:
        sent = sorted(form) or "none"
        raise ApiError(400, field, f"no {field!r} field in the form (sent: {sent})", "send it")
    return form[field][-1]


def _min_confidence(form: dict[str, list[Upload]], default: float) -> float:
    value = text_field(form, "min_confidence")
    try:
        return default if value in (None, "") else float(value)
    except ValueError:
        raise ApiError(400, "min_confidence", f"{value!r} is no number", "give 0 to 1") from None


@router.post("/register", openapi_extra=form(many=("image",), text=("userid", "api_key")))
async def register(request: Request, form: Form, s: State) -> dict[str, Any]:
    """Add the photos ``image`` (or ``image1``…``imageN``) to ``userid``. Unlike DeepStack,
    which replaces a person's photos, facelens adds them."""
    name = faces.person_name(text_field(form, "userid"), "userid")
    fields = sorted(f for f in form if f == "image" or f.removeprefix("image").isdigit())
    if not fields:
        raise ApiError(400, "image", "no 'image' field in the form", "send the photo as 'image'")
    async with decoded(request, [u for f in fields for u in form[f]]) as images:  # bounded
        await faces.enroll(s, name, images, "image")
    return {"success": True, "message": "face added"}


@router.post("/recognize", openapi_extra=form("image", text=("min_confidence", "api_key")))
async def recognize(request: Request, form: Form, s: State) -> dict[str, Any]:
    """Every face of ``image``: ``userid`` (``unknown`` with confidence 0 when facelens does
    not name it, or names it below ``min_confidence``) and its corners."""
    floor = _min_confidence(form, 0.0)
    async with decoded(request, [_upload(form)]) as (image,):
        seen = await faces.recognize(s, image)
    predictions = []
    for f in seen:
        known = f.name is not None and f.confidence >= floor
        userid, confidence = (f.name, f.confidence) if known else (UNKNOWN, 0.0)
        corners = faces.corner_fields(f.corners)
        predictions.append({"userid": userid, "confidence": confidence, **corners})
    return {"success": True, "predictions": predictions}


@router.post("", openapi_extra=form("image", text=("min_confidence", "api_key")))
async def detect(request: Request, form: Form, s: State) -> dict[str, Any]:
    """Every face of ``image`` with its detection confidence (at least ``min_confidence``)."""
    floor = _min_confidence(form, 0.0)
    async with decoded(request, [_upload(form)]) as (image,):
        found = await s.engine.run(s.fl.faces, image)
    return {
        "success": True,
        "predictions": [
            {"confidence": round(float(f.score), 4), **faces.corner_fields(faces.corners(f.box))}
            for f in found
            if f.score >= floor
        ],
    }


@router.post("/list", openapi_extra=form(text=("api_key",)))
async def listed(s: State) -> dict[str, Any]:
    """Everyone enrolled."""
    return {"success": True, "faces": [p.name for p in await s.engine.run(s.fl.people)]}


@router.post("/delete", openapi_extra=form(text=("userid", "api_key")))
async def delete(form: Form, s: State) -> dict[str, Any]:
    """Erase ``userid`` for good (secure delete + vacuum), as ``edge forget`` does."""
    name = lookup_name(text_field(form, "userid") or "")
    if not await s.forget(name):
        raise ApiError(404, "userid", f"{name!r} is not enrolled", "see /v1/vision/face/list")
    return {"success": True}


@router.post("/match", openapi_extra=form("image1", "image2", text=("api_key",)))
async def match(request: Request, form: Form, s: State) -> dict[str, Any]:
    """How alike the faces of ``image1`` and ``image2`` are, on the clients' scale."""
    async with decoded(request, [_upload(form, "image1"), _upload(form, "image2")]) as (a, b):
        similarity = await faces.similarity(s, a, b, ("image1", "image2"))
    return {"success": True, "similarity": similarity}
