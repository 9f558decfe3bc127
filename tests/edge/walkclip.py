"""A generated 640x480 clip where LFW people walk in and out, with the truth of each frame.

Each person is one LFW photo
(a *different* photo from the one they are enrolled with) sliding across the frame at
their own height and speed; some come back later (a second appearance), some cross
while another is on screen, one is a stranger who is never enrolled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

W, H, FPS = 640, 480, 25


@dataclass(frozen=True)
class Walk:
    """One appearance: ``person`` crosses from ``start`` for ``frames`` frames at height ``y``."""

    person: str
    start: int
    frames: int
    y: int
    side: int = 150
    leftward: bool = False


@dataclass(frozen=True)
class Placed:
    walk: int  # index of the Walk
    person: str
    box: tuple[int, int, int, int]  # where the photo is (x, y, w, h), clipped to the frame


def default_walks(people: list[str], stranger: str) -> list[Walk]:
    """Five appearances of three enrolled people and one stranger over 14 seconds."""
    a, b, c = people[:3]
    return [
        Walk(a, 0, 90, 40),
        Walk(b, 40, 110, 250, 140, leftward=True),  # crosses while a is still on screen
        Walk(stranger, 170, 90, 120, 160),
        Walk(c, 270, 80, 200),
        Walk(a, 300, 50, 20, 130, leftward=True),  # a comes back: a second appearance
    ]


def write_walk_clip(
    path: Path, photos: dict[str, np.ndarray], walks: list[Walk], background: np.ndarray
) -> list[list[Placed]]:
    """Write the clip (MJPG); returns, per frame, which walk's photo is where."""
    total = max(w.start + w.frames for w in walks) + 10
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write an MJPG video to {path}")
    tiles = {}
    truth = []
    for t in range(total):
        frame = background.copy()
        placed = []
        for i, walk in enumerate(walks):
            k = t - walk.start
            if not 0 <= k < walk.frames:
                continue
            tile = tiles.setdefault(
                (walk.person, walk.side), cv2.resize(photos[walk.person], (walk.side, walk.side))
            )
            # in from half off one edge, out half off the other, bobbing a little
            half = walk.side // 2
            travel = (W + walk.side - 2 * half) * k / max(walk.frames - 1, 1)
            x = int(W - half - travel) if walk.leftward else int(travel - half)
            y = int(walk.y + 6 * np.sin(k / 4))
            y = min(max(y, 0), H - walk.side)
            x0, x1 = max(x, 0), min(x + walk.side, W)
            frame[y : y + walk.side, x0:x1] = tile[:, x0 - x : x1 - x]
            placed.append(Placed(i, walk.person, (x0, y, x1 - x0, walk.side)))
        writer.write(frame)
        truth.append(placed)
    writer.release()
    return truth


def owner(box: tuple[float, ...], placed: list[Placed]) -> Placed | None:
    """The placed photo whose area holds the centre of ``box`` (the topmost if several)."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    hits = [p for p in placed if p.box[0] <= cx <= p.box[0] + p.box[2]]
    hits = [p for p in hits if p.box[1] <= cy <= p.box[1] + p.box[3]]
    return hits[-1] if hits else None
