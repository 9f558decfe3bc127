"""Where facelens keeps its default bundle and gallery.

``$FACELENS_HOME`` when set, else the user's data folder
(``platformdirs.user_data_dir("facelens")``, e.g. ``~/.local/share/facelens``).
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir


def home() -> Path:
    """The folder holding the default bundle, gallery and demo output."""
    return Path(os.environ.get("FACELENS_HOME") or user_data_dir("facelens"))


def default_bundle_dir() -> Path:
    return home() / "bundle"


def default_gallery_path() -> Path:
    return home() / "gallery.sqlite"
