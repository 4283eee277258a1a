"""Match messages of one stream (depth images, camera_info) to another's stamps.

No rclpy: subscription callbacks ``add`` to a :class:`StampedBuffer` and the image
callback asks for the ``nearest`` entry, possibly from another thread of a
MultiThreadedExecutor, so every method takes the buffer's lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["StampedBuffer", "StampMatch", "describe_offset", "stamp_to_ns"]

T = TypeVar("T")

_NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp) -> int:
    """Nanoseconds of a builtin_interfaces/Time (anything with ``sec`` and ``nanosec``)."""
    return int(stamp.sec) * _NS_PER_S + int(stamp.nanosec)


@dataclass(frozen=True)
class StampMatch(Generic[T]):
    """The entry closest to a query stamp.

    ``offset_ns`` is the entry's stamp minus the query's: positive when it is later.
    """

    item: T
    stamp_ns: int
    offset_ns: int

    def within(self, tolerance_ns: int) -> bool:
        return abs(self.offset_ns) <= tolerance_ns


class StampedBuffer(Generic[T]):
    """The last ``capacity`` items by arrival, keyed by stamp (nanoseconds).

    Adding an item with a stamp already held replaces that item (a repeated message);
    beyond ``capacity`` the item added longest ago is dropped, so memory is bounded
    whatever order stamps arrive in.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._items: OrderedDict[int, T] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def add(self, stamp_ns: int, item: T) -> None:
        stamp_ns = int(stamp_ns)
        with self._lock:
            self._items.pop(stamp_ns, None)
            self._items[stamp_ns] = item
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def latest(self) -> tuple[int, T] | None:
        """(stamp_ns, item) of the item added last, or None when empty."""
        with self._lock:
            if not self._items:
                return None
            stamp_ns = next(reversed(self._items))
            return stamp_ns, self._items[stamp_ns]

    def closest(self, stamp_ns: int) -> StampMatch[T] | None:
        """The entry whose stamp is closest to ``stamp_ns``, however far; None when empty.

        Of two equally close entries the earlier-stamped one is returned.
        """
        stamp_ns = int(stamp_ns)
        with self._lock:
            if not self._items:
                return None
            best = min(self._items, key=lambda held: (abs(held - stamp_ns), held))
            return StampMatch(self._items[best], best, best - stamp_ns)

    def nearest(self, stamp_ns: int, tolerance_ns: int) -> tuple[T, int] | None:
        """(item, offset_ns) of the closest entry if it is within ``tolerance_ns`` (inclusive).

        None when the buffer is empty or the closest entry is further away; call
        :meth:`closest` for how far that is.
        """
        if tolerance_ns < 0:
            raise ValueError(f"tolerance_ns must be >= 0, got {tolerance_ns}")
        match = self.closest(stamp_ns)
        if match is None or not match.within(tolerance_ns):
            return None
        return match.item, match.offset_ns


def describe_offset(what: str, offset_ns: int, tolerance_ns: int, reference: str = "the image") -> str:
    """E.g. "depth stamped 0.120 s after the image, tolerance 0.030 s", for a log line."""
    direction = "after" if offset_ns >= 0 else "before"
    return (
        f"{what} stamped {abs(offset_ns) / _NS_PER_S:.3f} s {direction} {reference}, "
        f"tolerance {tolerance_ns / _NS_PER_S:.3f} s"
    )
