"""Per-frame results as JSON records, written one object per line (JSON Lines)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from siammask_ros.tracker.result import TrackResult

__all__ = ["RECORD_KEYS", "JsonLinesWriter", "result_to_record"]

RECORD_KEYS = (
    "frame",
    "state",
    "confidence",
    "center",
    "size",
    "polygon",
    "rotated_box",
    "mask_area",
    "search_size",
)


def result_to_record(frame_index: int, result: TrackResult) -> dict[str, Any]:
    """A JSON-ready dict of plain Python values for one frame's result.

    Floats keep their full precision (``json`` writes the shortest repr that reads back
    to the same double). A non-finite value becomes None, so the output stays standard
    JSON. ``rotated_box`` is the published description of the ``polygon``'s rectangle,
    as in :class:`~siammask_ros.tracker.result.RotatedBox`: ``angle`` in radians in
    (-pi, pi], positive from +x towards +y, turning +x onto the ``width`` side, which
    stays the same physical side from frame to frame (so compare angles modulo 2*pi).
    """
    box = result.rotated_box
    return {
        "frame": int(frame_index),
        "state": result.state.value,
        "confidence": _number(result.confidence),
        "center": [_number(v) for v in result.center],
        "size": [_number(v) for v in result.size],
        "polygon": [[_number(x), _number(y)] for x, y in box.corners],
        "rotated_box": {
            "cx": _number(box.cx),
            "cy": _number(box.cy),
            "width": _number(box.width),
            "height": _number(box.height),
            "angle": _number(box.angle),
        },
        "mask_area": result.mask_area,
        "search_size": int(result.search_size),
    }


class JsonLinesWriter:
    """Writes one JSON object per line and flushes after each, so a reader can follow along.

    ``target`` is a path (created or truncated) or an open text stream, which is left
    open on exit. Use as a context manager.
    """

    def __init__(self, target: str | Path | IO[str]) -> None:
        if isinstance(target, (str, Path)):
            self._stream: IO[str] = open(target, "w", encoding="utf-8", newline="\n")
            self._owned = True
        else:
            self._stream = target
            self._owned = False

    def write(self, record: dict[str, Any]) -> None:
        self._stream.write(json.dumps(record, allow_nan=False) + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._owned:
            self._stream.close()

    def __enter__(self) -> "JsonLinesWriter":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
