"""Counters and latency summaries in Prometheus' text exposition format (version 0.0.4).

Small on purpose: the service needs a handful of series, so no client library. A
summary keeps its last ``window`` observations for its quantiles, plus a sum and a
count over all time, as Prometheus expects.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping

import numpy as np

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = (0.5, 0.9, 0.99)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Mapping[str, str] | Labels | None) -> str:
    items = labels.items() if isinstance(labels, Mapping) else (labels or ())
    parts = [f'{k}="{_escape(str(v))}"' for k, v in items]
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Metrics:
    """Thread-safe counters and summaries; gauges are given at render time."""

    def __init__(self, window: int = 1024) -> None:
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}
        self._counters: dict[str, dict[Labels, float]] = {}
        self._summaries: dict[str, dict[Labels, tuple[deque[float], list[float]]]] = {}
        self._window = window

    def describe(self, name: str, kind: str, text: str) -> None:
        """Declare a series (``counter``, ``gauge`` or ``summary``) so it is listed even at 0."""
        self._help[name] = (kind, text)
        if kind == "counter":
            self._counters.setdefault(name, {})
        elif kind == "summary":
            self._summaries.setdefault(name, {})

    def inc(self, name: str, labels: Mapping[str, str] | None = None, by: float = 1) -> None:
        key = tuple(sorted((labels or {}).items()))
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0) + by

    def observe(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        key = tuple(sorted((labels or {}).items()))
        with self._lock:
            series = self._summaries.setdefault(name, {})
            recent, total = series.setdefault(key, (deque(maxlen=self._window), [0.0, 0]))
            recent.append(value)
            total[0] += value
            total[1] += 1

    def render(self, gauges: Iterable[tuple[str, Mapping[str, str] | None, float]] = ()) -> str:
        """The exposition text; ``gauges`` are ``(name, labels, value)`` read just now."""
        by_name: dict[str, list[str]] = {}
        with self._lock:
            for name, series in self._counters.items():
                by_name[name] = [f"{name}{_labels(k)} {_number(v)}" for k, v in series.items()]
            for name, series in self._summaries.items():
                lines = by_name.setdefault(name, [])
                for key, (recent, (total, count)) in series.items():
                    values = np.asarray(recent)
                    for q in QUANTILES:
                        labels = _labels((*key, ("quantile", str(q))))
                        lines.append(f"{name}{labels} {_number(float(np.quantile(values, q)))}")
                    lines.append(f"{name}_sum{_labels(key)} {_number(total)}")
                    lines.append(f"{name}_count{_labels(key)} {_number(count)}")
        for name, labels, value in gauges:
            by_name.setdefault(name, []).append(f"{name}{_labels(labels)} {_number(value)}")
        out = []
        for name, lines in by_name.items():
            kind, text = self._help.get(name, ("untyped", name))
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *lines]
        return "\n".join(out) + "\n"
