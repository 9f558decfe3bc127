"""Which arithmetic the gradient methods run in: float32, or bfloat16 where it is native.

No TensorFlow here, so the command line can offer the choices without loading it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from edge.base.errors import FacelensError

PRECISIONS = ("auto", "float32", "bfloat16")
# Linux /proc/cpuinfo flags of native bfloat16 arithmetic (oneDNN's AVX-512 BF16 and AMX).
_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@cache
def fastest_safe_precision(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``bfloat16`` where the CPU has native bfloat16 (AVX-512 BF16 or AMX), else ``float32``.

    bfloat16 was measured not to change the filter figure visibly (``benchmarks/explain.py``
    reports the top filters and the SSIM of the patterns against float32); without native
    support it would only be slower.
    """
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:  # not Linux: no cheap way to know, so stay exact
        return "float32"
    return "bfloat16" if flags & _BF16_FLAGS else "float32"


def resolve_precision(precision: str) -> str:
    """``auto`` -> what this CPU runs fastest without changing the figure; else checked."""
    if precision not in PRECISIONS:
        raise FacelensError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return fastest_safe_precision() if precision == "auto" else precision
