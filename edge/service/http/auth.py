"""The bearer token: where it comes from, and the check every route but health makes."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from fastapi import Request

from edge.base.errors import FacelensError
from edge.service.http.errors import ApiError

log = logging.getLogger(__name__)

TOKEN_ENV = "FACELENS_TOKEN"
MIN_TOKEN_CHARS = 16  # a shorter token can be guessed over the network


def load_token(path: Path) -> tuple[str, str]:
    """The API token and where it came from: ``$FACELENS_TOKEN``, else a 0600 file.

    The file is created with a fresh random token on first start (returned origin
    starts with ``created``); the token itself is never printed (logs keep it).
    """
    if os.environ.get(TOKEN_ENV):
        token = os.environ[TOKEN_ENV].strip()
        if len(token) < MIN_TOKEN_CHARS:
            raise FacelensError(
                f"${TOKEN_ENV} is {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
                "random ones (e.g. python -c 'import secrets; print(secrets.token_urlsafe())'), "
                f"or unset it to get a token file"
            )
        return token, f"${TOKEN_ENV}"
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


def authorized(request: Request) -> None:
    """A route dependency: 401 unless ``Authorization: Bearer`` carries the app's token."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    fix = f"send the header 'Authorization: Bearer TOKEN' (the token is ${TOKEN_ENV} or "
    fix += "the token file `edge serve` printed on its first start)"
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "Authorization", "no bearer token", fix)
    token: str = request.app.state.token
    if not secrets.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "Authorization", "wrong token", fix)
