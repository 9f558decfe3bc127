"""Connections that cannot tie the service up: idle and slow ones are closed, and an error
repeated by the thousand (an accept loop out of file descriptors) is logged once a minute."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0  # a connection must send a whole request head within this
MIN_BODY_RATE = 1000  # bytes/s a request body must keep up, averaged over HEADER_TIMEOUT_S


class HeaderTimeout(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that has no request in progress after
    :data:`HEADER_TIMEOUT_S` (opened and idle, or sending its headers a byte at a time),
    or whose request body arrives slower than :data:`MIN_BODY_RATE` (a byte at a time
    once the headers are in). Between requests uvicorn's own keep-alive timeout applies."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._received = 0
        self._mark: tuple[object, int] = (None, 0)  # (the request, bytes) at the last check
        self._deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._check)

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        super().data_received(data)

    def _body_too_slow(self) -> bool:
        """Whether the body of the request in progress came slower than the rate since the
        last check (a request first seen now gets a whole period)."""
        cycle, before = self._mark
        self._mark = (self.cycle, self._received)
        if not self.cycle.more_body or self.flow.read_paused:  # all in, or the app's turn
            return False
        return cycle is self.cycle and self._received - before < MIN_BODY_RATE * HEADER_TIMEOUT_S

    def _check(self) -> None:
        if self.transport.is_closing():
            return
        busy = self.cycle is not None and not self.cycle.response_complete
        if busy and self._body_too_slow():
            self.transport.close()
            return
        if busy or self.timeout_keep_alive_task is not None:  # a request, or keep-alive's turn
            self._deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._check)
            return
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.cancel()
        super().connection_lost(exc)


class OncePer(logging.Filter):
    """Lets each distinct message through once per ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self._last: dict[Any, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg)[:200])
        now = time.monotonic()
        if now - self._last.get(key, -self.seconds) < self.seconds:
            return False
        if len(self._last) > 1000:  # bounded: forget the oldest
            self._last.pop(next(iter(self._last)))
        self._last[key] = now
        return True
