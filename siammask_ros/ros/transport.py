"""Frames that never reached the node: counted from rclpy's per-message info (no rclpy here).

A subscription callback that takes two arguments, ``callback(msg, message_info)``, gets a
dict from rclpy. With rclpy 7.1 (Jazzy) over rmw_fastrtps_cpp it holds:

- ``publication_sequence_number``: the writer's sequence number of the sample, 1, 2, ...
  per publisher, restarting at 1 when the publisher is re-created;
- ``reception_sequence_number``: None (Fast DDS does not provide it);
- ``source_timestamp`` / ``received_timestamp``: integer nanoseconds (writer's clock at
  publish, reader's clock at reception).

There is no publisher id in it (rmw's ``publisher_gid`` is not passed on), so samples of
several publishers on one topic can only be told apart by their sequence numbers. Humble's
rclpy gives only the two timestamps; then the count is unknown (None), never zero.

A sequence gap counts every frame the node did not take: frames lost in transport
(best-effort samples that did not fit the writer's shared-memory segment, UDP fragments
dropped) *and* frames overwritten in the subscription's keep-last queue while the node was
busy, which is expected when the tracker is slower than the camera. DDS reports the first
kind separately, as the subscription's "message lost" event (rclpy
``SubscriptionEventCallbacks(message_lost=...)``); rmw_fastrtps_cpp raises it for
best-effort samples that never arrived, not for queue overwrites. Pass each event to
:meth:`TransportLossCounter.record_message_lost` to split the two. Fast DDS 2.14 (Jazzy)
counts a lost *fragmented* sample (larger than 64 KB) with an int32 overflow: changes of
2147483647 and totals near 2**64; the counter then reports the transport share as unknown.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

# rmw's RMW_MESSAGE_INFO_SEQUENCE_NUMBER_UNSUPPORTED; 0 is never a valid DDS sequence number.
_UNSUPPORTED_SEQUENCE_NUMBERS = (0, 2**64 - 1)
_NS_PER_S = 1e9
_INT32_LIMIT = 2**31


@dataclass(frozen=True)
class TransportLossConfig:
    """Limits of the publisher-matching heuristic.

    max_publishers: streams (publishers, or one publisher's incarnations) remembered at
        once; the least recently seen one is forgotten beyond that.
    stale_after_s: a stream not seen for this long (reception clock) is forgotten, so a
        restarted publisher's old numbers do not capture the new one's.
    max_publication_hz: a jump in sequence numbers implying a faster publisher than this
        (from the source timestamps) is a different publisher, not lost frames.
    max_gap: without source timestamps, a jump larger than this is a different publisher.
    rate_window: samples over which publication_hz and reception_hz are measured.
    """

    max_publishers: int = 8
    stale_after_s: float = 5.0
    max_publication_hz: float = 1000.0
    max_gap: int = 1000
    rate_window: int = 60

    def __post_init__(self) -> None:
        for name in ("max_publishers", "max_gap", "rate_window"):
            if getattr(self, name) < (2 if name == "rate_window" else 1):
                raise ValueError(f"TransportLossConfig.{name} = {getattr(self, name)} is too small")
        for name in ("stale_after_s", "max_publication_hz"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TransportLossConfig.{name} = {getattr(self, name)} must be > 0")


@dataclass(frozen=True)
class TransportStats:
    """What the counter knows; None means unknown (the middleware does not say).

    received: frames observed.
    missed: frames published but never taken (sum of sequence gaps).
    lost_in_transport: frames DDS reported lost before they reached the subscription.
    skipped_in_queue: missed frames that did arrive but were overwritten in the queue.
    publishers: streams currently tracked.
    publication_hz: the newest publisher's rate, from its sequence numbers and clock.
    reception_hz: the rate frames reach the node.
    """

    received: int
    missed: int | None
    lost_in_transport: int | None
    skipped_in_queue: int | None
    publishers: int
    publication_hz: float | None
    reception_hz: float | None


_stream_keys = itertools.count()


@dataclass
class _Stream:
    """One publisher (or one incarnation of it) as seen through its sequence numbers."""

    last_sequence: int
    last_source_ns: int | None
    last_received_ns: int | None
    last_seen: int  # observation index
    key: int = field(default_factory=lambda: next(_stream_keys))


class TransportLossCounter:
    """Counts frames published but never taken, from successive message_info dicts.

    Feed every message the subscription takes, in order, to :meth:`observe`. Frames
    published before the first one seen from a publisher are not counted (the node was not
    listening yet). Call :meth:`reset` when the subscription is re-created (e.g. on
    lifecycle activation) so that the gap across the pause is not counted.

    reports_message_lost: the subscription has a message-lost event callback that feeds
    :meth:`record_message_lost` (then lost_in_transport starts at 0, not unknown).
    Thread-safe: callbacks may feed it while another thread reads :meth:`stats`.
    """

    def __init__(self, config: TransportLossConfig | None = None, reports_message_lost: bool = False) -> None:
        self.config = config or TransportLossConfig()
        self.reports_message_lost = reports_message_lost
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything: counts, publishers and DDS's lost total (a new subscription starts at 0)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._streams: list[_Stream] = []
        self._received = 0
        self._missed = 0
        self._sequence_known = True
        self._lost_total: int | None = 0 if self.reports_message_lost else None
        self._lost_unreliable = False
        self._rate_samples: deque[tuple[int, int | None, int | None, int]] = deque(
            maxlen=self.config.rate_window
        )  # (stream id, sequence, source ns, received ns)

    def observe(self, message_info: Mapping) -> None:
        """Account for one taken message; raises TypeError when message_info is no mapping."""
        if not isinstance(message_info, Mapping):
            raise TypeError(f"message_info must be a mapping (rclpy's dict), got {type(message_info).__name__}")
        with self._lock:
            self._observe(message_info)

    def _observe(self, message_info: Mapping) -> None:
        self._received += 1
        sequence = _integer(message_info.get("publication_sequence_number"))
        source_ns = _integer(message_info.get("source_timestamp"))
        received_ns = _integer(message_info.get("received_timestamp"))
        if sequence is None or sequence in _UNSUPPORTED_SEQUENCE_NUMBERS:
            self._sequence_known = False
            return
        self._forget_stale(received_ns)
        stream = self._matching_stream(sequence, source_ns)
        if stream is None:
            stream = _Stream(sequence, source_ns, received_ns, self._received)
            self._streams.append(stream)
            if len(self._streams) > self.config.max_publishers:
                self._streams.remove(min(self._streams, key=lambda s: s.last_seen))
        else:
            self._missed += sequence - stream.last_sequence - 1
            stream.last_sequence, stream.last_source_ns = sequence, source_ns
            stream.last_received_ns, stream.last_seen = received_ns, self._received
        if received_ns is not None:
            self._rate_samples.append((stream.key, sequence, source_ns, received_ns))

    def record_message_lost(self, total_count: int, total_count_change: int) -> None:
        """One message-lost event of this subscription (its total_count and total_count_change).

        An implausible event (a change of 2**31 - 1 or more, a total of 2**31 or more, a
        total that went down) makes lost_in_transport unknown until :meth:`reset`.
        """
        with self._lock:
            plausible = (
                0 <= total_count < _INT32_LIMIT and 0 <= total_count_change < _INT32_LIMIT - 1
                and (self._lost_total is None or total_count >= self._lost_total)
            )
            if not plausible or self._lost_unreliable:
                self._lost_unreliable, self._lost_total = True, None
                return
            self._lost_total = total_count

    @property
    def missed(self) -> int | None:
        """Frames published but never taken; None when sequence numbers are not available."""
        return self._missed if self._sequence_known else None

    def stats(self) -> TransportStats:
        """A snapshot of the counts and rates."""
        with self._lock:
            missed, lost = self.missed, self._lost_total
            skipped = max(0, missed - lost) if missed is not None and lost is not None else None
            return TransportStats(
                received=self._received,
                missed=missed,
                lost_in_transport=lost,
                skipped_in_queue=skipped,
                publishers=len(self._streams),
                publication_hz=self._publication_hz(),
                reception_hz=self._reception_hz(),
            )

    def _matching_stream(self, sequence: int, source_ns: int | None) -> _Stream | None:
        """The stream this sample continues: the closest one below it whose jump is plausible."""
        candidates = [s for s in self._streams if s.last_sequence < sequence and self._plausible(s, sequence, source_ns)]
        return min(candidates, key=lambda s: sequence - s.last_sequence, default=None)

    def _plausible(self, stream: _Stream, sequence: int, source_ns: int | None) -> bool:
        gap = sequence - stream.last_sequence
        if gap == 1:
            return True
        if source_ns is None or stream.last_source_ns is None:
            return gap <= self.config.max_gap
        elapsed_s = (source_ns - stream.last_source_ns) / _NS_PER_S
        return elapsed_s > 0 and gap / elapsed_s <= self.config.max_publication_hz

    def _forget_stale(self, received_ns: int | None) -> None:
        if received_ns is None:
            return
        horizon = received_ns - self.config.stale_after_s * _NS_PER_S
        self._streams = [s for s in self._streams if s.last_received_ns is None or s.last_received_ns >= horizon]

    def _publication_hz(self) -> float | None:
        if not self._rate_samples:
            return None
        newest = self._rate_samples[-1][0]
        same = [(seq, src) for stream, seq, src, _ in self._rate_samples if stream == newest and src is not None]
        if len(same) < 2 or same[-1][1] <= same[0][1]:
            return None
        return (same[-1][0] - same[0][0]) * _NS_PER_S / (same[-1][1] - same[0][1])

    def _reception_hz(self) -> float | None:
        if len(self._rate_samples) < 2:
            return None
        span = self._rate_samples[-1][3] - self._rate_samples[0][3]
        return (len(self._rate_samples) - 1) * _NS_PER_S / span if span > 0 else None


def _integer(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
