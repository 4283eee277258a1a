"""The node's targets around one MultiTargetTracker: ids, classes, mask labels, lost
timers, giving up, and the policy for detections that keep arriving for known targets.

rclpy-free, so every rule here is unit-tested without a middleware. Not thread-safe: the
node calls it under its tracker lock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from siammask_ros.io.message_fields import LostClock, TargetFields
from siammask_ros.tracker import MultiTargetTracker, TrackResult, TrackState
from siammask_ros.tracker.geometry import box_iou_xywh

__all__ = [
    "Action",
    "Decision",
    "OfferedDetection",
    "ReinitPolicy",
    "SelectionRefused",
    "TargetPolicy",
    "TargetReport",
    "TargetSession",
]

MAX_LABEL = 255  # labels are the pixel values of the mono8 label image


class ReinitPolicy(str, enum.Enum):
    """When a detection for a known id re-initialises that target."""

    ALWAYS = "always"  # every detection (gated by IoU while TRACKING)
    WHEN_LOST = "when_lost"  # only while the target is LOST
    NEVER = "never"  # detections only start targets


@dataclass(frozen=True)
class TargetPolicy:
    """How the session treats targets; every field is a node parameter.

    ``max_lost_duration_s``: a target LOST for this long (image time) goes to IDLE and is
    dropped; 0 keeps searching forever. ``reinit_min_iou``: under ``ALWAYS``, a detection
    re-initialises a TRACKING target only if it overlaps the tracked box at least this
    much (0 = no gate); a LOST target's held box is stale, so it is not gated. With
    ``match_class`` a detection never re-initialises a target of another class.
    ``associate_iou``: a detection without an id continues the best-overlapping target of
    its class when the overlap reaches this value, otherwise it starts a new target.
    """

    max_targets: int = 8
    max_lost_duration_s: float = 0.0
    reinit: ReinitPolicy = ReinitPolicy.WHEN_LOST
    reinit_min_iou: float = 0.0
    match_class: bool = True
    associate_iou: float = 0.3

    def __post_init__(self) -> None:
        if not 1 <= self.max_targets <= MAX_LABEL:
            raise ValueError(f"max_targets must be in 1..{MAX_LABEL}, got {self.max_targets}")
        if not self.max_lost_duration_s >= 0:
            raise ValueError(f"max_lost_duration must be >= 0 s, got {self.max_lost_duration_s}")
        for name in ("reinit_min_iou", "associate_iou"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        object.__setattr__(self, "reinit", ReinitPolicy(self.reinit))


class SelectionRefused(ValueError):
    """A selection the session cannot take (for example, max_targets reached)."""

    reason = "selection_refused"


@dataclass
class _Target:
    target_id: str
    class_id: str
    label: int
    init_seq: int  # frames up to this receipt number are not newer than the template
    box_xywh: tuple[float, float, float, float]  # latest state box, for gating and association
    state: TrackState = TrackState.TRACKING
    lost: LostClock = field(default_factory=LostClock)


#: One target in one frame, as the node publishes it (``result`` is None for a target that
#: just gave up); the output messages are built from it by ``io.message_fields``.
TargetReport = TargetFields


@dataclass(frozen=True)
class OfferedDetection:
    """A box from a detector (``~/targets``), in frame pixels (x, y, w, h)."""

    box_xywh: tuple[float, float, float, float]
    target_id: str = ""
    class_id: str = ""


class Action(str, enum.Enum):
    STARTED = "started"
    REINITIALISED = "reinitialised"
    KEPT = "kept"  # a known target that the policy leaves tracking
    REFUSED = "refused"


@dataclass(frozen=True)
class Decision:
    action: Action
    target_id: str
    message: str = ""


@dataclass
class TargetSession:
    """All targets of one node, stepped together through one ``MultiTargetTracker``."""

    tracker: MultiTargetTracker
    policy: TargetPolicy = field(default_factory=TargetPolicy)

    def __post_init__(self) -> None:
        self._targets: dict[str, _Target] = {}
        self._started = 0

    # Queries ---------------------------------------------------------------------------

    @property
    def target_ids(self) -> tuple[str, ...]:
        return tuple(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def state_of(self, target_id: str) -> TrackState:
        target = self._targets.get(target_id)
        return target.state if target is not None else TrackState.IDLE

    # Starting and stopping -------------------------------------------------------------

    def start(
        self,
        image: np.ndarray,
        color_order: str,
        seq: int,
        box_xywh: Sequence[float],
        target_id: str = "",
        class_id: str = "",
    ) -> tuple[str, bool]:
        """Start (or, for a known id, re-initialise) a target on ``image``; (id, replaced).

        Raises:
            SelectionRefused: a new target while ``max_targets`` are tracked.
            InvalidBoxError, InvalidFrameError: from the tracker; nothing changes.
        """
        replaced = target_id in self._targets
        if not replaced and len(self._targets) >= self.policy.max_targets:
            raise SelectionRefused(
                f"already tracking max_targets={self.policy.max_targets} targets "
                f"({', '.join(self._targets)}); stop one first or raise max_targets"
            )
        new_id = target_id or self._new_id()
        if replaced:
            old = self._targets[new_id]
            label = old.label
            self.tracker.remove_target(new_id)
        else:
            label = self._free_label()
        try:
            _, result = self.tracker.add_target(image, box_xywh, new_id, color_order)
        except Exception:
            if replaced:  # the old track is gone: say so rather than keep a half-removed target
                del self._targets[new_id]
            raise
        self._targets[new_id] = _Target(new_id, class_id, label, seq, _state_box(result))
        self._started += 1
        return new_id, replaced

    def stop(self, target_id: str) -> None:
        """Forget one target. Raises KeyError naming the tracked ids."""
        if target_id not in self._targets:
            known = ", ".join(self._targets) or "none"
            raise KeyError(f"no target with id {target_id!r} (tracked: {known})")
        self.tracker.remove_target(target_id)
        del self._targets[target_id]

    def stop_all(self) -> list[str]:
        stopped = list(self._targets)
        self.tracker.clear()
        self._targets.clear()
        return stopped

    # Detections ------------------------------------------------------------------------

    def offer(
        self, image: np.ndarray, color_order: str, seq: int, detections: Iterable[OfferedDetection]
    ) -> list[Decision]:
        """Apply the policy to each detection of one detector message (all on ``image``)."""
        claimed: set[str] = set()
        decisions = []
        for detection in detections:
            target_id = detection.target_id or self._associate(detection, claimed)
            if target_id:
                claimed.add(target_id)
            decisions.append(self._decide(image, color_order, seq, detection, target_id))
        return decisions

    def _decide(
        self, image: np.ndarray, color_order: str, seq: int, detection: OfferedDetection, target_id: str
    ) -> Decision:
        target = self._targets.get(target_id) if target_id else None
        if target is not None:
            refusal = self._reinit_refusal(target, detection)
            if refusal is not None:
                return refusal
        try:
            new_id, replaced = self.start(image, color_order, seq, detection.box_xywh, target_id, detection.class_id)
        except ValueError as exc:  # SelectionRefused, InvalidBoxError, InvalidFrameError
            return Decision(Action.REFUSED, target_id, str(exc))
        return Decision(Action.REINITIALISED if replaced else Action.STARTED, new_id)

    def _reinit_refusal(self, target: _Target, detection: OfferedDetection) -> Decision | None:
        """None when the detection may re-initialise ``target``, else why not."""
        policy = self.policy
        if policy.match_class and target.class_id and detection.class_id and detection.class_id != target.class_id:
            return Decision(
                Action.REFUSED, target.target_id,
                f"class {detection.class_id!r} differs from the target's {target.class_id!r}",
            )
        if policy.reinit is ReinitPolicy.NEVER:
            return Decision(Action.KEPT, target.target_id)
        if target.state is not TrackState.LOST:
            if policy.reinit is ReinitPolicy.WHEN_LOST:
                return Decision(Action.KEPT, target.target_id)
            overlap = box_iou_xywh(detection.box_xywh, target.box_xywh)
            if overlap < policy.reinit_min_iou:
                return Decision(
                    Action.REFUSED, target.target_id,
                    f"overlaps the tracked box by IoU {overlap:.2f} < detections.min_iou {policy.reinit_min_iou}",
                )
        return None

    def _associate(self, detection: OfferedDetection, claimed: set[str]) -> str:
        """The id of the best-overlapping unclaimed target of the detection's class, or ''."""
        best_id, best_iou = "", self.policy.associate_iou
        for target in self._targets.values():
            if target.target_id in claimed:
                continue
            if self.policy.match_class and target.class_id != detection.class_id:
                continue
            overlap = box_iou_xywh(detection.box_xywh, target.box_xywh)
            if overlap >= best_iou and overlap > 0:
                best_id, best_iou = target.target_id, overlap
        return best_id

    # Tracking --------------------------------------------------------------------------

    def step(self, image: np.ndarray, color_order: str, seq: int, now_ns: int) -> list[TargetReport]:
        """Track every target started before frame ``seq`` on it; targets that gave up
        (LOST for ``max_lost_duration_s``) are reported IDLE, with the reason, and dropped.

        ``now_ns`` is the frame's time (its stamp), which the lost timers run on.
        """
        eligible = [t for t in self._targets.values() if t.init_seq < seq]
        if not eligible:
            return []
        results = self.tracker.track(image, color_order, target_ids=[t.target_id for t in eligible])
        reports = [self._update(target, results[target.target_id], now_ns) for target in eligible]
        for report in reports:
            if report.state is TrackState.IDLE:
                self.stop(report.target_id)
        return reports

    def _update(self, target: _Target, result: TrackResult, now_ns: int) -> TargetReport:
        target.state = result.state
        target.box_xywh = _state_box(result)
        frames_lost, lost_ns = target.lost.update(result.state, now_ns)
        state, reason = result.state, ""
        limit_s = self.policy.max_lost_duration_s
        if frames_lost and limit_s > 0 and lost_ns >= limit_s * 1e9:
            state = TrackState.IDLE
            reason = f"lost for {lost_ns / 1e9:.1f} s, longer than long_term.max_lost_duration ({limit_s:g} s)"
        return TargetReport(
            target.target_id, target.class_id, target.label, state, result, lost_ns, frames_lost, reason
        )

    # Ids and labels --------------------------------------------------------------------

    def _new_id(self) -> str:
        n = self._started
        while f"target_{n + 1}" in self._targets:
            n += 1
        return f"target_{n + 1}"

    def _free_label(self) -> int:
        used = {t.label for t in self._targets.values()}
        return next(label for label in range(1, MAX_LABEL + 1) if label not in used)


def _state_box(result: TrackResult) -> tuple[float, float, float, float]:
    (cx, cy), (w, h) = result.center, result.size
    return cx - w / 2, cy - h / 2, w, h
