"""The service's engine: one thread owns the model and the gallery.

HTTP requests and camera frames take turns on it, so SQLite and the runtimes stay on
the thread that made them, writes are serialised and a reader never sees a person
half enrolled (each enrolment is one SQLite transaction as well).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from edge.api import FaceLens

T = TypeVar("T")


class Engine:
    """Runs every :class:`FaceLens` call on one thread (SQLite and runtimes stay on it)."""

    def __init__(self, make: Callable[[], FaceLens]) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="facelens-engine")
        self.fl = self.call(lambda: make().load())

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the engine thread, waiting for it (camera loop, start-up)."""
        return self._pool.submit(fn, *args).result()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the engine thread, awaited (HTTP routes)."""
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    def close(self) -> None:
        self.call(self.fl.close)
        self._pool.shutdown()
