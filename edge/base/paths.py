"""Where facelens keeps its default bundle and gallery.

``$FACELENS_HOME`` when set, else the user's data folder
(``platformdirs.user_data_dir("facelens")``, e.g. ``~/.local/share/facelens``).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from platformdirs import user_data_dir


def home() -> Path:
    """The folder holding the default bundle, gallery and demo output."""
    return Path(os.environ.get("FACELENS_HOME") or user_data_dir("facelens"))


def default_bundle_dir() -> Path:
    return home() / "bundle"


def default_gallery_path() -> Path:
    return home() / "gallery.sqlite"


def cannot_write(folder: Path) -> OSError | None:
    """Why nothing could be written in ``folder`` (made later if missing), or ``None``.

    Probes the nearest existing folder with an anonymous temporary file, so it creates
    nothing: the check a command makes before minutes of work, not after.
    """
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        return NotADirectoryError(errno.ENOTDIR, "Not a directory", str(existing))
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        return exc
    return None
