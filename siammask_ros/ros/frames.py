"""The node's image intake: the newest unprocessed frame and a ring of recent ones.

rclpy-free. The image callback ``put``s every converted frame; the inference worker
``take``s only the newest (frames replaced before it got to them are drops); a selection
``find``s the frame it was drawn on by stamp. The ring is bounded both in frames and in
bytes, so a 4K camera cannot make it hold gigabytes.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from std_msgs.msg import Header

from siammask_ros.ros.conversions import stamp_key

__all__ = ["Frame", "FrameStore", "StampLookup"]


class Frame(NamedTuple):
    seq: int  # receipt order
    header: Header
    image: np.ndarray  # uint8 HxW or HxWx3, read-only
    color_order: str
    received: float  # time.monotonic() at receipt

    @property
    def stamp(self) -> tuple[int, int]:
        return stamp_key(self.header.stamp)


@dataclass(frozen=True)
class StampLookup:
    """What ``FrameStore.find`` found: the frame (None if the stamp is not buffered) and the
    buffered range, for a refusal message."""

    frame: Frame | None
    oldest: tuple[int, int] | None
    newest: tuple[int, int] | None
    count: int

    def describe_range(self) -> str:
        if self.count == 0:
            return "no image is buffered"
        return f"{self.count} buffered images stamped {self.oldest} to {self.newest}"


class FrameStore:
    """The newest unprocessed frame and a ring buffer of recent ones (thread-safe).

    Args:
        max_frames: frames kept for stamped selections.
        max_bytes: bound on the pixels those frames hold; the oldest go first. The newest
            frame is always kept, whatever its size.
    """

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self._cond = threading.Condition()
        self._pending: Frame | None = None
        self._recent: deque[Frame] = deque()
        self._bytes = 0
        self._max_frames, self._max_bytes = max_frames, max_bytes
        self._closed = False

    def put(self, frame: Frame) -> bool:
        """Store ``frame`` as the newest; True if it replaced one never processed (a drop)."""
        with self._cond:
            dropped = self._pending is not None
            self._pending = frame
            self._recent.append(frame)
            self._bytes += frame.image.nbytes
            self._trim()
            self._cond.notify()
        return dropped

    def take(self) -> Frame | None:
        """Wait for the newest unprocessed frame; None once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending is not None or self._closed)
            frame, self._pending = self._pending, None
            return None if self._closed else frame

    def newest(self) -> Frame | None:
        with self._cond:
            return self._recent[-1] if self._recent else None

    def find(self, stamp: tuple[int, int]) -> StampLookup:
        """The buffered frame with this stamp (a zero stamp asks for the newest)."""
        with self._cond:
            frames = list(self._recent)
        if not frames:
            return StampLookup(None, None, None, 0)
        oldest, newest = frames[0].stamp, frames[-1].stamp
        if stamp == (0, 0):
            match: Frame | None = frames[-1]
        else:
            match = next((f for f in reversed(frames) if f.stamp == stamp), None)
        return StampLookup(match, oldest, newest, len(frames))

    def resize(self, max_frames: int, max_bytes: int) -> None:
        with self._cond:
            self._max_frames, self._max_bytes = max_frames, max_bytes
            self._trim()

    @property
    def buffered_bytes(self) -> int:
        with self._cond:
            return self._bytes

    def close(self) -> None:
        """Wake the worker and make every later ``take`` return None."""
        with self._cond:
            self._closed = True
            self._recent.clear()
            self._bytes = 0
            self._cond.notify_all()

    def _trim(self) -> None:
        while len(self._recent) > 1 and (
            len(self._recent) > self._max_frames or self._bytes > self._max_bytes
        ):
            self._bytes -= self._recent.popleft().image.nbytes
