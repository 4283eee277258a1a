"""The node's counters, log throttling and its /diagnostics report. rclpy-free.

Counters are totals since start; latencies and worker errors are per report period.
The report's level: ERROR while there is no model or when the worker failed on a frame
since the last report (the message says how), WARN when no images arrive or images arrive
and none is processed, OK otherwise.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

__all__ = ["NodeStats", "Report", "diagnostic_status", "REJECTION_REASONS"]

#: Rejection counters always present in the report (0 when nothing was rejected).
REJECTION_REASONS: tuple[str, ...] = (
    "unsupported_encoding", "truncated_data", "empty_image", "undecodable_image", "unsupported_format",
    "invalid_frame", "tracker_error",
    "selection_no_model", "selection_no_image", "selection_stale_stamp", "selection_invalid_box",
    "selection_refused", "selection_failed", "selection_inactive",
    "detection_refused", "detection_stale_stamp", "detection_failed",
    "depth_unmatched", "depth_invalid", "camera_info_invalid",
)


@dataclass(frozen=True)
class Report:
    """One diagnostics period, taken by ``NodeStats.take_report``."""

    elapsed_s: float
    received: int
    processed: int
    dropped: int
    received_in_period: int
    processed_in_period: int
    latencies_ms: list[float]
    errors: list[str]
    counters: dict[str, int]


@dataclass
class NodeStats:
    """Thread-safe counters of one node, and a throttle for the log lines they go with."""

    throttle_s: float = 5.0
    received: int = 0
    processed: int = 0
    dropped: int = 0
    counters: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._latencies: list[float] = []
        self._errors: list[str] = []
        self._throttle: dict[str, tuple[float, int]] = {}
        self._last = (time.monotonic(), 0, 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            if name in ("received", "processed", "dropped"):
                setattr(self, name, getattr(self, name) + amount)
            else:
                self.counters[name] += amount

    def count(self, name: str) -> int:
        with self._lock:
            return self.counters[name]

    def latency(self, latency_ms: float) -> None:
        with self._lock:
            self._latencies.append(latency_ms)

    def error(self, message: str) -> None:
        """A failure of the worker on one frame: diagnostics go to ERROR for this period."""
        with self._lock:
            self._errors.append(message)

    def reject(self, reason: str, message: str) -> str | None:
        """Count ``rejected_<reason>``; the log line to write, or None while throttled.

        At most one line per ``throttle_s`` per reason; the next one says how many were
        left out.
        """
        now = time.monotonic()
        with self._lock:
            self.counters[f"rejected_{reason}"] += 1
            last, suppressed = self._throttle.get(reason, (-math.inf, 0))
            if now - last < self.throttle_s:
                self._throttle[reason] = (last, suppressed + 1)
                return None
            self._throttle[reason] = (now, 0)
        more = f" ({suppressed} more like this in the last {self.throttle_s:.0f} s)" if suppressed else ""
        return message + more

    def take_report(self) -> Report:
        now = time.monotonic()
        with self._lock:
            last_time, last_received, last_processed = self._last
            self._last = (now, self.received, self.processed)
            latencies, self._latencies = self._latencies, []
            errors, self._errors = self._errors, []
            return Report(
                elapsed_s=max(now - last_time, 1e-6),
                received=self.received,
                processed=self.processed,
                dropped=self.dropped,
                received_in_period=self.received - last_received,
                processed_in_period=self.processed - last_processed,
                latencies_ms=latencies,
                errors=errors,
                counters=dict(self.counters),
            )


def diagnostic_status(
    name: str, hardware_id: str, report: Report, state: str, fatal: str, extra: dict[str, str]
) -> DiagnosticStatus:
    """The node's DiagnosticStatus for one period; ``fatal`` (e.g. no model) forces ERROR."""
    status = DiagnosticStatus(name=name, hardware_id=hardware_id)
    if fatal:
        status.level, status.message = DiagnosticStatus.ERROR, fatal
    elif report.errors:
        status.level = DiagnosticStatus.ERROR
        status.message = f"{len(report.errors)} frame(s) failed, last: {report.errors[-1]}"
    elif report.received_in_period == 0:
        status.level, status.message = DiagnosticStatus.WARN, f"no images received ({state})"
    elif report.processed_in_period == 0:
        status.level, status.message = DiagnosticStatus.WARN, f"images arrive but none was processed ({state})"
    else:
        status.level, status.message = DiagnosticStatus.OK, state
    lat = report.latencies_ms
    entries = {
        "state": state,
        "input_rate_hz": f"{report.received_in_period / report.elapsed_s:.2f}",
        "processed_rate_hz": f"{report.processed_in_period / report.elapsed_s:.2f}",
        "frames_received": str(report.received),
        "frames_processed": str(report.processed),
        "frames_dropped": str(report.dropped),
        "latency_ms_mean": f"{np.mean(lat):.1f}" if lat else "",
        "latency_ms_max": f"{np.max(lat):.1f}" if lat else "",
        **extra,
    }
    for reason in REJECTION_REASONS:
        entries[f"rejected_{reason}"] = str(report.counters.get(f"rejected_{reason}", 0))
    for key, value in sorted(report.counters.items()):
        entries.setdefault(key, str(value))
    status.values = [KeyValue(key=key, value=value) for key, value in entries.items()]
    return status
