"""Run statistics: frames, faces, FPS and per-stage latency percentiles."""

from __future__ import annotations

import time
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
