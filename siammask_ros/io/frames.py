"""Frame sources: a video file or a folder of images, read as BGR uint8 frames."""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS",
    "FrameSource",
    "FrameSourceError",
    "ImageFolderSource",
    "VideoSource",
    "natural_sort_key",
    "open_frames",
    "parse_box",
]

IMAGE_EXTENSIONS = frozenset({".bmp", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"})


class FrameSourceError(ValueError):
    """A video or image folder that cannot be read; the message names the path."""


class FrameSource(ABC):
    """An iterable of ``(index, frame)`` with ``frame`` an HxWx3 BGR uint8 array.

    Each iteration starts again from the first frame.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    @abstractmethod
    def fps(self) -> float | None:
        """Frames per second of a video; None when the source has no timing."""

    @property
    @abstractmethod
    def frame_count(self) -> int | None:
        """Number of frames if known in advance (a video's may be an estimate)."""

    @abstractmethod
    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]: ...


class VideoSource(FrameSource):
    """Frames decoded by ``cv2.VideoCapture``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        capture = self._open()
        try:
            ok, _ = capture.read()
            if not ok:
                raise FrameSourceError(f"video {str(path)!r} contains no readable frame")
            self._fps = _positive_or_none(capture.get(cv2.CAP_PROP_FPS))
            count = _positive_or_none(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self._frame_count = None if count is None else int(count)
        finally:
            capture.release()

    @property
    def fps(self) -> float | None:
        return self._fps

    @property
    def frame_count(self) -> int | None:
        return self._frame_count

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        capture = self._open()
        try:
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield index, frame
                index += 1
        finally:
            capture.release()

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise FrameSourceError(f"cannot open video {str(self.path)!r} (not a video OpenCV can decode?)")
        return capture


class ImageFolderSource(FrameSource):
    """The image files of one folder in natural name order (``2.png`` before ``10.png``).

    All images must have the size of the first one: a folder is one camera's sequence.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
        if not files:
            extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise FrameSourceError(f"folder {str(path)!r} contains no image files ({extensions})")
        self.files = sorted(files, key=lambda p: natural_sort_key(p.name))

    @property
    def fps(self) -> float | None:
        return None

    @property
    def frame_count(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        first_shape = None
        for index, file in enumerate(self.files):
            frame = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if frame is None:
                raise FrameSourceError(f"cannot read image {str(file)!r}")
            if first_shape is None:
                first_shape = frame.shape
            elif frame.shape != first_shape:
                raise FrameSourceError(
                    f"image {str(file)!r} is {frame.shape[1]}x{frame.shape[0]} but the sequence "
                    f"started at {first_shape[1]}x{first_shape[0]}"
                )
            yield index, frame


def open_frames(path: str | Path) -> FrameSource:
    """A frame source for a video file or a folder of images.

    Raises:
        FrameSourceError: the path does not exist, the video cannot be opened or has no
            frame, or the folder has no image file.
    """
    path = Path(path)
    if path.is_dir():
        return ImageFolderSource(path)
    if not path.exists():
        raise FrameSourceError(f"input {str(path)!r} does not exist")
    return VideoSource(path)


def natural_sort_key(name: str) -> tuple[list[int | str], str]:
    """Sort key comparing runs of digits by value: ``img2`` < ``img10``.

    Splitting on a capturing group alternates text and digits, so parts at the same
    position always have the same type; the raw name breaks ties (``01`` vs ``1``).
    """
    parts = re.split(r"(\d+)", name)
    return [int(part) if i % 2 else part.lower() for i, part in enumerate(parts)], name


def parse_box(text: str) -> tuple[float, float, float, float]:
    """Parse ``"X,Y,W,H"`` (top-left corner and size in pixels) into four floats.

    Raises:
        ValueError: not four comma-separated finite numbers, or a width or height <= 0.
    """
    fields = [field.strip() for field in text.split(",")]
    if len(fields) != 4:
        raise ValueError(f"box must be X,Y,W,H (4 comma-separated numbers), got {text!r}")
    try:
        values = tuple(float(field) for field in fields)
    except ValueError:
        raise ValueError(f"box must contain numbers only, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"box values must be finite, got {text!r}")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise ValueError(f"box width and height must be > 0, got W={w:g}, H={h:g}")
    return x, y, w, h


def _positive_or_none(value: float) -> float | None:
    """OpenCV reports unknown properties as 0, -1 or NaN depending on the backend."""
    return value if math.isfinite(value) and value > 0 else None
