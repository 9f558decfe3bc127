"""Run statistics: frames, faces, FPS, per-stage latency percentiles, and who was seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 99)


class RunStats:
    """Collects each frame's stage timings (ms) and summarises them."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        self.stages = (*stages, "total")
        self.frames = 0
        self.faces = 0
        self._ms: dict[str, list[float]] = {s: [] for s in self.stages}
        self._start = time.perf_counter()

    def add(self, ms: dict[str, float], faces: int) -> None:
        self.frames += 1
        self.faces += faces
        for stage in self.stages:
            self._ms[stage].append(ms.get(stage, 0.0))

    def summary(self) -> dict[str, Any]:
        """``frames``, ``faces``, ``seconds``, ``fps`` and ``latency_ms[stage][pNN]``."""
        seconds = time.perf_counter() - self._start
        latency = {
            stage: (
                {f"p{p}": round(float(np.percentile(v, p)), 2) for p in PERCENTILES}
                if (v := self._ms[stage])
                else {}
            )
            for stage in self.stages
        }
        return {
            "frames": self.frames,
            "faces": self.faces,
            "seconds": round(seconds, 3),
            "fps": round(self.frames / seconds, 2) if seconds > 0 else 0.0,
            "latency_ms": latency,
        }

    def table(self) -> str:
        """The summary as a few human-readable lines."""
        s = self.summary()
        lines = [
            f"{s['frames']} frames, {s['faces']} faces in {s['seconds']:.1f} s: {s['fps']:.1f} FPS",
            f"{'stage':<8}" + "".join(f"{'p' + str(p):>9}" for p in PERCENTILES) + "  (ms)",
        ]
        for stage, pct in s["latency_ms"].items():
            if pct:
                lines.append(f"{stage:<8}" + "".join(f"{pct[f'p{p}']:>9.2f}" for p in PERCENTILES))
        return "\n".join(lines)


class Sightings:
    """Who a run saw: per person how many faces and the best score; unknown faces by nearest.

    The summary a folder or video run ends with (``edge recognize``).
    """

    def __init__(self) -> None:
        self.known: dict[str, list[float]] = {}
        self.unknown: dict[str | None, list[float]] = {}

    def add(self, name: str | None, score: float, nearest: str | None) -> None:
        if name is not None:
            self.known.setdefault(name, []).append(score)
        else:
            self.unknown.setdefault(nearest, []).append(score)

    def summary(self) -> dict[str, Any]:
        """``people``: name -> faces and best score; ``unknown``: faces and nearest people."""
        return {
            "people": {
                n: {"faces": len(v), "best": round(max(v), 4)}
                for n, v in sorted(self.known.items())
            },
            "unknown": {
                "faces": sum(len(v) for v in self.unknown.values()),
                "nearest": {
                    str(n): {"faces": len(v), "best": round(max(v), 4)}
                    for n, v in sorted(self.unknown.items(), key=lambda kv: -max(kv[1]))
                    if n is not None
                },
            },
        }

    def lines(self, escape: Callable[[str], str] = str) -> list[str]:
        """The summary as lines: one per person seen, then the unknown faces."""
        s = self.summary()
        out = [
            f"seen: {escape(n)}: {p['faces']} face(s), best score {p['best']:.3f}"
            for n, p in s["people"].items()
        ]
        unknown = s["unknown"]
        if unknown["faces"]:
            nearest = ", ".join(
                f"{escape(n)} ({p['faces']}x, best {p['best']:.3f})"
                for n, p in list(unknown["nearest"].items())[:3]
            )
            out.append(
                f"unknown: {unknown['faces']} face(s)"
                + (f"; nearest: {nearest}" if nearest else " (no one is enrolled)")
            )
        if not out:
            out.append("no face was seen")
        return out
