"""Drawing results: boxes, names and scores on frames, and contact sheets of frames."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge.results import Identity
from edge.video.track import CANT_TELL, DECIDING

KNOWN = (60, 200, 60)  # BGR green
UNKNOWN = (40, 40, 220)  # BGR red
UNSURE = (40, 170, 230)  # BGR amber: deciding, or too small/blurred to tell
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int]) -> None:
    (w, h), base = cv2.getTextSize(text, FONT, 0.5, 1)
    y = max(y, h + base + 2)
    cv2.rectangle(image, (x, y - h - base - 2), (x + w + 4, y), color, cv2.FILLED)
    cv2.putText(image, text, (x + 2, y - base), FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def annotate(image: np.ndarray, faces: Sequence[Identity], fps: float | None = None) -> np.ndarray:
    """A copy of ``image`` with each face's box, name (or ``unknown``) and score.

    A tracked face shows its track's decision ("deciding...", "can't tell", a name).
    """
    image = image.copy()
    for face in faces:
        x, y, w, h = (round(v) for v in face.box)
        label = face.label or (face.name if not face.problem else "can't tell") or "unknown"
        color = KNOWN if label not in ("unknown", DECIDING, CANT_TELL) else UNKNOWN
        if label in (DECIDING, CANT_TELL):
            color = UNSURE
        text = label.replace("…", "...")  # OpenCV's fonts are ASCII
        cv2.rectangle(image, (x, y), (x + w, y + h), color, 2)
        _label(image, f"{text} {face.score:.2f}", x, y - 2, color)
    if fps is not None:
        _label(image, f"{fps:.1f} FPS", 4, 20, (80, 80, 80))
    return image


def contact_sheet(
    images: Sequence[np.ndarray], columns: int = 4, cell_width: int = 320
) -> np.ndarray:
    """Images side by side in a grid, each scaled to ``cell_width`` wide."""
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    cells = [
        cv2.resize(im, (cell_width, round(im.shape[0] * cell_width / im.shape[1]))) for im in images
    ]
    cell_height = max(c.shape[0] for c in cells)
    rows = -(-len(cells) // columns)
    sheet = np.full((rows * cell_height, columns * cell_width, 3), 255, np.uint8)
    for i, cell in enumerate(cells):
        r, c = divmod(i, columns)
        sheet[r * cell_height : r * cell_height + cell.shape[0], c * cell_width :][
            :, :cell_width
        ] = cell
    return sheet
