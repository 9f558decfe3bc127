"""Command-line number types shared by ``edge``, ``convert`` and ``explain``.

argparse calls these on the text the user typed; a bad value is refused before any
work starts, with the option's legal range in the message (no NaN, no infinity).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from edge.base.errors import FacelensError
from edge.base.paths import cannot_write


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a finite number")
    return value


def int_at_least(low: int, high: int = 1_000_000) -> Callable[[str], int]:
    """An integer in [``low``, ``high``] (``--threads 1``, ``--stride 1``, ``--face 0``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too small: give {low} or more")
        if value > high:
            raise argparse.ArgumentTypeError(f"{str(value)[:20]} is too large: give {high} or less")
        return value

    parse.__name__ = f"integer >= {low}"  # what argparse names in its message
    return parse


positive_int = int_at_least(1)


def threshold(text: str) -> float:
    """A match confidence in (0, 1] (see :mod:`edge.gallery.confidence`)."""
    from edge.gallery.confidence import check_confidence  # pulls in numpy: not at `--help`

    try:
        return check_confidence(_number(text), "the threshold")
    except FacelensError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def rate(text: str) -> float:
    """A false-accept rate in [0, 1)."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not a rate: give 0 <= rate < 1, e.g. 0.001")
    return value


def cosine(text: str) -> float:
    """A cosine in [-1, 1] (a fidelity floor)."""
    value = _number(text)
    if not -1 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not a cosine: give -1 to 1, e.g. 0.98")
    return value


def positive_number(text: str) -> float:
    """A finite number above 0 (a step size)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value:g} is too small: give a number above 0")
    return value


def grey_level(text: str) -> float:
    """A pixel value in [0, 255] (an occlusion patch's fill)."""
    value = _number(text)
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"{value:g} is not a grey level: give 0 to 255")
    return value


def output_folder(text: str) -> Path:
    """A folder results can be written to (made later, by the command): a file, or a place
    that cannot be written, is refused before any work starts. Nothing is created here."""
    path = Path(text)
    if path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is a file: give a folder path for the results")
    exc = cannot_write(path)
    if exc is not None:
        raise argparse.ArgumentTypeError(
            f"cannot write to {text} ({exc.strerror or exc}): choose a folder you can write to, "
            "on a disk with free space"
        )
    return path
