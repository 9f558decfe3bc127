"""Where annotated frames go: an optional window and an optional video file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.errors import FacelensError

WINDOW = "facelens"


def open_writer(path: Path, size: tuple[int, int], fps: float) -> cv2.VideoWriter:
    """A video writer for ``path`` (.mp4 or .avi) of frames ``size`` = (width, height)."""
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise FacelensError(f"cannot write the video {path}; use a .mp4 or .avi file name")
    return writer


class Display:
    """Shows frames in a window and/or writes them to a video (first frame fixes the size)."""

    def __init__(self, show: bool = False, save: Path | None = None, fps: float = 10.0) -> None:
        self.show, self.save, self.fps = show, save, fps or 10.0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] = (0, 0)
        if show:
            if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
                raise FacelensError("--show needs a display (DISPLAY is not set); use --save")
            try:
                cv2.namedWindow(WINDOW)
            except cv2.error:
                raise FacelensError(
                    "--show needs OpenCV with a GUI, and this is opencv-python-headless: "
                    "`pip install opencv-python`, or use --save OUT.mp4 instead"
                ) from None

    def __call__(self, image: np.ndarray) -> bool:
        """Output one frame; ``False`` once the user pressed q or Esc in the window."""
        if self.save:
            if self._writer is None:
                self._size = (image.shape[1], image.shape[0])
                self._writer = open_writer(self.save, self._size, self.fps)
            if (image.shape[1], image.shape[0]) != self._size:
                image = cv2.resize(image, self._size)
            self._writer.write(image)
        if self.show:
            cv2.imshow(WINDOW, image)
            return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)
        return True

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.show:
            cv2.destroyAllWindows()
