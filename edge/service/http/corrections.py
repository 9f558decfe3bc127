"""The review routes: recent appearances, corrections on them, and recurring visitors.

- ``GET /v1/recent`` lists what ``--keep-recent`` kept; ``GET /v1/recent/{id}/thumbnail``
  is the face (JPEG); ``DELETE /v1/recent/{id}`` erases one for good;
- ``POST /v1/recent/{id}/confirm`` (``?name=`` when it was unnamed or someone else),
  ``/rename?name=`` and ``/reject`` correct one (each one gallery transaction);
- ``GET /v1/visitors`` groups the unknown ones; ``POST /v1/visitors/{n}/name?name=``
  enrols a visitor from its best views.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Response

from edge.base.errors import GalleryError, NotKeptError
from edge.base.names import PersonNameError
from edge.gallery.review import Review
from edge.service.http.auth import authorized
from edge.service.http.errors import ApiError, without_paths
from edge.service.http.routes import NAME_FIX, State

review = APIRouter(dependencies=[Depends(authorized)])
T = TypeVar("T")


async def reviewing(s: State, fn: Callable[[Review], T]) -> T:
    """``fn(the lens's Review)`` on the engine thread; 404/400/409 for what cannot be done."""
    try:
        return await s.engine.run(lambda: fn(s.fl.review))
    except PersonNameError as exc:
        raise ApiError(400, "name", str(exc), NAME_FIX) from None
    except GalleryError as exc:
        status = 404 if isinstance(exc, NotKeptError) else 409
        message = without_paths(str(exc))  # never the server's own paths
        fix = "see the message; GET /v1/recent lists them"
        raise ApiError(status, "id", message, fix) from None


@review.get("/v1/recent")
async def recent(s: State) -> dict[str, Any]:
    """Every kept appearance, newest first (none unless served with --keep-recent)."""
    kept = await reviewing(s, lambda r: r.recent.list())
    return {"appearances": [k.to_dict() for k in kept]}


@review.get("/v1/recent/{kept_id}/thumbnail")
async def thumbnail(kept_id: int, s: State) -> Response:
    """The appearance's face, as kept (JPEG, decrypted for this answer only)."""
    data = await reviewing(s, lambda r: r.recent.face(r.recent.get(kept_id)).thumbnail)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@review.post("/v1/recent/{kept_id}/{action}")
async def act(kept_id: int, action: str, s: State, name: str | None = None) -> dict[str, Any]:
    """``confirm`` (``?name=``), ``rename?name=`` or ``reject`` one appearance."""
    if action not in ("confirm", "rename", "reject"):
        raise ApiError(404, "action", f"no correction {action!r}", "confirm, rename or reject")
    if action == "rename" and not name:
        raise ApiError(400, "name", "rename needs ?name=", "say who it was: ?name=Ben")
    args = (kept_id,) if action == "reject" else (kept_id, name)
    kept = await reviewing(s, lambda r: getattr(r, action)(*args))
    return kept.to_dict()


@review.delete("/v1/recent/{kept_id}")
async def delete(kept_id: int, s: State) -> dict[str, Any]:
    """Erase one appearance for good (secure delete + vacuum)."""
    await reviewing(s, lambda r: r.delete(kept_id))
    return {"id": kept_id, "erased": "secure delete + vacuum"}


@review.get("/v1/visitors")
async def visitors(s: State) -> dict[str, Any]:
    """Unknown appearances grouped by face, most seen first."""
    found = await reviewing(s, lambda r: r.visitors(s.fl.threshold.value))
    return {
        "visitors": [
            {
                "visitor": v.number,
                "seen": len(v.appearances),
                "appearances": [k.id for k in v.appearances],
                "last": v.last.to_dict(),
            }
            for v in found
        ]
    }


@review.post("/v1/visitors/{number}/name")
async def name_visitor(number: int, name: str, s: State) -> dict[str, Any]:
    """Enrol visitor ``number`` as ``name`` from its best distinct views."""
    views = await reviewing(s, lambda r: r.name_visitor(number, name, s.fl.threshold.value))
    return {"name": name, "views": [k.id for k in views]}
