"""``edge serve``'s HTTP API (FastAPI + uvicorn, the ``serve`` extra; only ``edge serve``
imports it). Every call but health needs ``Authorization: Bearer TOKEN``:

- ``POST /v1/identify`` (multipart ``image``) -> every face: box, name or null, score;
- ``POST /v1/verify`` (``a``, ``b``) -> same, score, threshold;
- ``PUT /v1/people/{name}`` (one or more ``image``) enrols them; ``GET /v1/people[/{name}]``;
  ``DELETE /v1/people/{name}`` erases them for good (as ``edge forget``);
- ``GET /v1/health`` (no token) and ``GET /metrics`` (Prometheus text).

``app`` assembles the app and runs it; ``routes`` holds the routes over one
:class:`~edge.service.state.Service`; ``uploads`` reads photos into memory only, up to a
limit checked before the body is read; ``auth`` the token; ``errors`` the JSON refusals;
``compat`` the DeepStack / CodeProject.AI and CompreFace APIs and Frigate (docs/compat.md).
"""

from edge.service.http.app import create_app, run

__all__ = ["create_app", "run"]
