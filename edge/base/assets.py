"""Files facelens fetches once and pins: sha256 hashing, the user cache, verified downloads."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from platformdirs import user_cache_dir

from edge.base.errors import FacelensError


def sha256_file(path: Path | str) -> str:
    """The sha256 of a file's bytes, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """Where downloads are kept: ``$FACELENS_CACHE``, else the user cache folder."""
    return Path(os.environ.get("FACELENS_CACHE", user_cache_dir("facelens")))


def download_verified(
    url: str,
    dest: Path,
    sha256: str,
    timeout: float = 30.0,
    error: type[FacelensError] = FacelensError,
) -> Path:
    """Download ``url`` to ``dest`` atomically, refusing content whose sha256 differs.

    Failures raise ``error`` (the caller's error type, e.g. :class:`DetectorError`).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise error(
            f"cannot download {url} ({exc}); you may be offline: fetch the file by hand "
            f"and pass its path, or put it at {dest}"
        ) from exc
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise error(f"download of {url} has sha256 {got}, expected {sha256}; not saved")
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, dest)
    return dest
