"""siammask_ros.ros.sync: stamp matching of depth/camera_info to colour images."""

from __future__ import annotations

import sys
import threading

import pytest
from builtin_interfaces.msg import Time

from siammask_ros.ros.sync import StampedBuffer, StampMatch, describe_offset, stamp_to_ns

MS = 1_000_000
FRAME_NS = 33 * MS  # a 30 Hz stream


def filled(stamps_ns: list[int], capacity: int = 10) -> StampedBuffer[str]:
    buffer: StampedBuffer[str] = StampedBuffer(capacity)
    for stamp in stamps_ns:
        buffer.add(stamp, f"depth@{stamp}")
    return buffer


def test_stamp_to_ns():
    assert stamp_to_ns(Time(sec=12, nanosec=345)) == 12_000_000_345


def test_nearest_within_tolerance_returns_item_and_signed_offset():
    buffer = filled([1000 * MS, 1033 * MS, 1066 * MS])
    assert buffer.nearest(1040 * MS, 10 * MS) == (f"depth@{1033 * MS}", -7 * MS)
    assert buffer.nearest(1060 * MS, 10 * MS) == (f"depth@{1066 * MS}", 6 * MS)


def test_tolerance_is_inclusive_and_one_nanosecond_beyond_misses():
    buffer = filled([1000 * MS])
    assert buffer.nearest(1030 * MS, 30 * MS) == (f"depth@{1000 * MS}", -30 * MS)
    assert buffer.nearest(1030 * MS + 1, 30 * MS) is None
    assert buffer.nearest(1000 * MS, 0) == (f"depth@{1000 * MS}", 0)


def test_a_miss_reports_how_far_the_closest_one_is():
    buffer = filled([1000 * MS, 1033 * MS])
    assert buffer.nearest(1153 * MS, 30 * MS) is None
    match = buffer.closest(1153 * MS)
    assert match == StampMatch(f"depth@{1033 * MS}", 1033 * MS, -120 * MS)
    assert not match.within(30 * MS)
    assert describe_offset("depth", match.offset_ns, 30 * MS) == (
        "depth stamped 0.120 s before the image, tolerance 0.030 s"
    )
    assert describe_offset("camera_info", 5 * MS, 0, "image 7") == (
        "camera_info stamped 0.005 s after image 7, tolerance 0.000 s"
    )


def test_empty_buffer_has_no_match():
    buffer: StampedBuffer[str] = StampedBuffer(3)
    assert buffer.nearest(0, 10**12) is None and buffer.closest(0) is None and buffer.latest() is None


def test_equally_close_entries_give_the_earlier_one():
    buffer = filled([1066 * MS, 1000 * MS])
    assert buffer.nearest(1033 * MS, 33 * MS) == (f"depth@{1000 * MS}", -33 * MS)


def test_memory_is_bounded_and_the_oldest_arrival_goes_first():
    buffer = filled([i * FRAME_NS for i in range(100)], capacity=5)
    assert len(buffer) == 5
    assert buffer.nearest(0, FRAME_NS) is None
    assert buffer.closest(0).stamp_ns == 95 * FRAME_NS
    assert buffer.latest() == (99 * FRAME_NS, f"depth@{99 * FRAME_NS}")


def test_out_of_order_arrivals_are_matched_by_stamp():
    buffer = filled([3 * FRAME_NS, 1 * FRAME_NS, 4 * FRAME_NS, 2 * FRAME_NS])
    for index in range(1, 5):
        assert buffer.nearest(index * FRAME_NS + MS, 2 * MS) == (f"depth@{index * FRAME_NS}", -MS)


def test_same_stamp_replaces_and_counts_as_the_newest_arrival():
    buffer: StampedBuffer[str] = StampedBuffer(2)
    buffer.add(1, "first")
    buffer.add(2, "second")
    buffer.add(1, "repeated")
    buffer.add(3, "third")  # drops 2, the oldest arrival now
    assert len(buffer) == 2
    assert buffer.nearest(1, 0) == ("repeated", 0) and buffer.nearest(2, 0) is None
    buffer.clear()
    assert len(buffer) == 0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
        StampedBuffer(0)
    with pytest.raises(ValueError, match="tolerance_ns must be >= 0, got -1"):
        filled([0]).nearest(0, -1)


def test_concurrent_adds_and_lookups_keep_the_buffer_consistent():
    buffer: StampedBuffer[int] = StampedBuffer(16)
    writers, per_writer = 4, 3000
    start = threading.Barrier(writers + 1)
    errors: list[BaseException] = []

    def write(offset: int) -> None:
        start.wait()
        for i in range(per_writer):
            buffer.add(i * writers + offset, i * writers + offset)

    def read() -> None:
        start.wait()
        for i in range(per_writer):
            try:
                match = buffer.closest(i * writers)
                assert match is None or match.item == match.stamp_ns
                assert len(buffer) <= 16
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                errors.append(error)
                return

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)] + [threading.Thread(target=read)]
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so unguarded sections would interleave
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive()
    finally:
        sys.setswitchinterval(switch_interval)
    assert errors == []
    assert len(buffer) == 16
