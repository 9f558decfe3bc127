"""Progress on long work: a bar on a terminal, a line every few seconds in a log.

tqdm's bar redraws one line with carriage returns, which a log file or a pipe shows
as nothing (or as one endless line); there a plain line every ``every`` seconds says
that work goes on and how far it is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(
    items: Sequence[T],
    desc: str,
    unit: str = "item",
    enabled: bool = True,
    stream: TextIO | None = None,
    every: float = 10.0,
) -> Iterator[T]:
    """Yield ``items``, showing progress on ``stream`` (stderr) unless ``enabled`` is false."""
    stream = stream or sys.stderr
    if not enabled:
        yield from items
        return
    if stream.isatty():
        yield from tqdm(items, desc=desc, unit=unit, file=stream)
        return
    start = last = time.monotonic()
    said = False
    for done, item in enumerate(items, start=1):
        yield item
        now = time.monotonic()
        if now - last >= every or (said and done == len(items)):
            share = f"{done / len(items):.0%}"
            line = f"{desc}: {done}/{len(items)} {unit} ({share}, {now - start:.0f} s)"
            print(line, file=stream, flush=True)
            last, said = now, True
