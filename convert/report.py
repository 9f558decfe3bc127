"""The conversion table printed at the end of a build (and kept in the closing notes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.model.manifest import Artifact

UNTRAINED_BANNER = (
    "!! UNTRAINED WEIGHTS: this bundle's model was randomly initialised (seeded), not "
    "trained; its embeddings do not recognise anyone. Use it to test the pipeline only. !!"
)


def format_table(artifacts: dict[str, Artifact], failed: dict[str, str], min_cosine: float) -> str:
    """One row per format: size, fidelity to the float model, conversion time, status."""
    rows = [("format", "MB", "cos mean", "cos min", "seconds", "status")]
    for fmt, entry in artifacts.items():
        fid = entry.fidelity
        rows.append(
            (
                fmt,
                f"{(entry.bytes or 0) / 1e6:.2f}",
                f"{fid.cosine_mean:.4f}" if fid else "-",
                f"{fid.cosine_min:.4f}" if fid else "-",
                f"{entry.seconds or 0:.1f}",
                "ok" if fid and fid.passed else f"BELOW FLOOR {min_cosine}",
            )
        )
    for fmt, error in failed.items():
        rows.append((fmt, "-", "-", "-", "-", f"FAILED: {error}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row[:5], widths, strict=True))
        )
        + "  "
        + row[5]
        for row in rows
    ]
    return "\n".join(lines)
