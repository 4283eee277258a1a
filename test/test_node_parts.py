"""The node's rclpy-free parts: the frame store and the diagnostics report."""

from __future__ import annotations

import threading

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Header

from siammask_ros.ros.diagnostics import NodeStats, diagnostic_status
from siammask_ros.ros.frames import Frame, FrameStore

MIB = 1 << 20


def frame(seq: int, side: int = 64) -> Frame:
    header = Header(stamp=Time(sec=seq, nanosec=0), frame_id="cam")
    return Frame(seq, header, np.zeros((side, side, 3), np.uint8), "bgr", 0.0)


def test_frame_store_is_bounded_in_frames_and_in_bytes():
    store = FrameStore(max_frames=30, max_bytes=1 * MIB)
    big = 256  # 192 KiB per frame: five fit in 1 MiB
    for seq in range(1, 31):
        store.put(frame(seq, big))
    lookup = store.find((30, 0))
    assert lookup.frame.seq == 30 and lookup.count == 5 and lookup.oldest == (26, 0)
    assert store.buffered_bytes <= 1 * MIB
    store.resize(max_frames=2, max_bytes=1 * MIB)
    assert store.find((0, 0)).count == 2
    huge = FrameStore(max_frames=30, max_bytes=1)
    huge.put(frame(1, big))
    assert huge.find((1, 0)).frame is not None, "the newest frame is always kept"


def test_frame_store_lookup_names_the_buffered_range():
    store = FrameStore(max_frames=3, max_bytes=MIB)
    assert store.find((1, 0)).describe_range() == "no image is buffered"
    for seq in range(1, 6):
        store.put(frame(seq))
    missing = store.find((1, 0))
    assert missing.frame is None
    assert missing.describe_range() == "3 buffered images stamped (3, 0) to (5, 0)"
    assert store.find((0, 0)).frame.seq == 5  # a zero stamp asks for the newest


def test_only_the_newest_frame_is_taken_and_replaced_ones_are_drops():
    store = FrameStore(max_frames=3, max_bytes=MIB)
    assert store.put(frame(1)) is False
    assert store.put(frame(2)) is True  # frame 1 was never taken
    assert store.take().seq == 2
    taken = []
    worker = threading.Thread(target=lambda: taken.append(store.take()))
    worker.start()
    store.close()
    worker.join(timeout=5)
    assert taken == [None]


def test_diagnostics_levels():
    stats = NodeStats()
    idle = diagnostic_status("n", "cpu", stats.take_report(), "idle", "", {})
    assert idle.level == DiagnosticStatus.WARN and "no images received" in idle.message

    stats.add("received", 3)
    starved = diagnostic_status("n", "cpu", stats.take_report(), "idle", "", {})
    assert starved.level == DiagnosticStatus.WARN and "none was processed" in starved.message

    stats.add("received")
    stats.add("processed")
    stats.error("tracking failed on the frame stamped (1, 0): RuntimeError: CUDA out of memory")
    failed = diagnostic_status("n", "cpu", stats.take_report(), "idle", "", {})
    assert failed.level == DiagnosticStatus.ERROR and "CUDA out of memory" in failed.message

    stats.add("received")
    stats.add("processed")
    stats.latency(12.0)
    ok = diagnostic_status("n", "cpu", stats.take_report(), "tracking 1 target(s)", "", {"model": "m"})
    values = {kv.key: kv.value for kv in ok.values}
    assert ok.level == DiagnosticStatus.OK and values["latency_ms_mean"] == "12.0" and values["model"] == "m"
    assert values["frames_received"] == "5" and values["rejected_tracker_error"] == "0"

    fatal = diagnostic_status("n", "cpu", stats.take_report(), "idle", "no model", {})
    assert fatal.level == DiagnosticStatus.ERROR and fatal.message == "no model"


def test_rejections_are_counted_and_their_logs_throttled():
    stats = NodeStats(throttle_s=60.0)
    assert stats.reject("truncated_data", "first") == "first"
    assert stats.reject("truncated_data", "second") is None
    assert stats.reject("empty_image", "other reason") == "other reason"
    assert stats.count("rejected_truncated_data") == 2
