"""Where annotated frames go: an optional window and an optional video file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.base.errors import FacelensError

WINDOW = "facelens"


VIDEO_SUFFIXES = (".mp4", ".avi")


def check_video_path(path: Path) -> None:
    """Refuse, before any work, a --save path that cannot become a video file."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise FacelensError(f"--save {path}: use a .mp4 or .avi file name")
    if path.is_dir():
        raise FacelensError(f"--save {path} is a folder; give a file name such as out.mp4")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "ab"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise FacelensError(
            f"cannot write the video {path} ({exc.strerror or exc}): choose a --save path "
            "in a folder you can write to, on a disk with free space"
        ) from exc


def open_writer(path: Path, size: tuple[int, int], fps: float) -> cv2.VideoWriter:
    """A video writer for ``path`` (.mp4 or .avi) of frames ``size`` = (width, height)."""
    check_video_path(path)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise FacelensError(
            f"OpenCV cannot start a {path.suffix} video at {path} (no encoder for it, or the "
            "disk is full): try the other of .mp4 / .avi, or free some space"
        )
    return writer


def check_written(path: Path, frames: int) -> None:
    """Read the finished video back: a full disk leaves a file no player can open."""
    cap = cv2.VideoCapture(str(path))
    try:
        ok = cap.isOpened() and cap.read()[0]
    finally:
        cap.release()
    if not ok:
        raise FacelensError(
            f"the video {path} was not written completely ({frames} frame(s) sent, the file "
            "cannot be read back): the disk may be full; free some space or --save elsewhere"
        )


class Display:
    """Shows frames in a window and/or writes them to a video (first frame fixes the size)."""

    def __init__(self, show: bool = False, save: Path | None = None, fps: float = 10.0) -> None:
        self.show, self.save, self.fps = show, save, fps or 10.0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] = (0, 0)
        self._written = 0
        if save:
            check_video_path(save)
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
            self._written += 1
        if self.show:
            cv2.imshow(WINDOW, image)
            return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)
        return True

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
        if self.show:
            cv2.destroyAllWindows()
        if writer is not None and self.save is not None:
            check_written(self.save, self._written)
