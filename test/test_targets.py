"""TargetSession: the node's multi-target rules, without a middleware (real torch, CPU).

The bundled default model tracks two textured objects on a synthetic scene; the rules
under test are ids and labels, max_targets, frames not newer than a selection, the
detector re-initialisation policy with class and IoU gates, association of detections
without ids, and giving up after max_lost_duration of image time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calibrated_network import texture
from siammask_ros.model import build_siammask, default_weights_path
from siammask_ros.ros.targets import (
    Action,
    OfferedDetection,
    ReinitPolicy,
    SelectionRefused,
    TargetPolicy,
    TargetSession,
)
from siammask_ros.tracker.geometry import box_iou_xywh
from siammask_ros.tracker import InvalidBoxError, LongTermConfig, MultiTargetTracker, TrackState, preset

pytestmark = pytest.mark.skipif(default_weights_path() is None, reason="needs the bundled default model")

W, H = 320, 240
BOXES = {"a": (40.0, 50.0, 50.0, 40.0), "b": (200.0, 120.0, 44.0, 56.0)}
SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return build_siammask(weights=default_weights_path(), device="cpu", optimize=True)


def scene(i: int, hide: set[str] = frozenset()) -> np.ndarray:
    frame = texture(H, W, seed=1, cell=16)
    for k, (name, (x, y, w, h)) in enumerate(BOXES.items()):
        if name in hide:
            continue
        x0, y0 = int(x) + 3 * i, int(y) + 2 * i
        frame[y0 : y0 + int(h), x0 : x0 + int(w)] = texture(int(h), int(w), seed=10 + k, cell=6 + 2 * k)
    return frame


def box(name: str, i: int = 0) -> tuple[float, float, float, float]:
    x, y, w, h = BOXES[name]
    return x + 3 * i, y + 2 * i, w, h


def make_session(model, long_term: bool = True, **policy) -> TargetSession:
    config = preset("vot").with_changes(long_term=LongTermConfig(enabled=long_term, search_size=319))
    return TargetSession(MultiTargetTracker(model, config), TargetPolicy(**policy))


def test_targets_get_ids_labels_and_are_tracked_in_one_step(model):
    session = make_session(model)
    first, _ = session.start(scene(0), "bgr", 1, box("a"))
    second, _ = session.start(scene(0), "bgr", 1, box("b"), target_id="ball", class_id="sports ball")
    assert (first, second) == ("target_1", "ball")
    reports = {r.target_id: r for r in session.step(scene(1), "bgr", 2, SECOND)}
    assert set(reports) == {"target_1", "ball"}
    assert {r.label for r in reports.values()} == {1, 2}
    assert reports["ball"].class_id == "sports ball"
    for name, target_id in (("a", "target_1"), ("b", "ball")):
        result = reports[target_id].result
        x, y, w, h = box(name, 1)
        assert result.state is TrackState.TRACKING
        assert box_iou_xywh((result.center[0] - result.size[0] / 2, result.center[1] - result.size[1] / 2, *result.size),
                       (x, y, w, h)) > 0.5


def test_a_frame_not_newer_than_the_selection_does_not_track_it(model):
    session = make_session(model)
    session.start(scene(0), "bgr", 5, box("a"))
    assert session.step(scene(0), "bgr", 5, SECOND) == []
    assert len(session.step(scene(1), "bgr", 6, SECOND)) == 1


def test_max_targets_refuses_with_the_reason_and_a_known_id_is_reinitialised(model):
    session = make_session(model, max_targets=1)
    session.start(scene(0), "bgr", 1, box("a"), target_id="a")
    with pytest.raises(SelectionRefused, match=r"max_targets=1 .*\(a\)"):
        session.start(scene(0), "bgr", 1, box("b"), target_id="b")
    target_id, replaced = session.start(scene(0), "bgr", 1, box("b"), target_id="a")
    assert (target_id, replaced) == ("a", True)
    assert session.target_ids == ("a",)


def test_an_unusable_box_changes_nothing(model):
    session = make_session(model)
    session.start(scene(0), "bgr", 1, box("a"), target_id="a")
    with pytest.raises(InvalidBoxError):
        session.start(scene(0), "bgr", 1, (W + 10, 10, 20, 20), target_id="b")
    assert session.target_ids == ("a",)


def test_stop_one_and_all(model):
    session = make_session(model)
    session.start(scene(0), "bgr", 1, box("a"), target_id="a")
    session.start(scene(0), "bgr", 1, box("b"), target_id="b")
    with pytest.raises(KeyError, match=r"no target with id 'c' \(tracked: a, b\)"):
        session.stop("c")
    session.stop("a")
    assert [r.target_id for r in session.step(scene(1), "bgr", 2, SECOND)] == ["b"]
    assert session.stop_all() == ["b"]
    assert session.step(scene(2), "bgr", 3, SECOND) == []


def test_a_lost_target_gives_up_after_max_lost_duration_of_image_time(model):
    session = make_session(model, max_lost_duration_s=1.0)
    session.start(scene(0), "bgr", 1, box("a"), target_id="a")
    assert session.step(scene(1), "bgr", 2, 10 * SECOND)[0].state is TrackState.TRACKING
    reports = []
    for k in range(6):  # one frame every half second of image time
        (report,) = session.step(scene(2 + k, hide={"a"}), "bgr", 3 + k, 11 * SECOND + k * SECOND // 2)
        reports.append(report)
        if report.state is TrackState.IDLE:
            break
    states = [r.state for r in reports]
    assert states[0] is TrackState.LOST, "hiding the object must lose it"
    lost_at = next(k for k, s in enumerate(states) if s is TrackState.LOST)
    idle_at = states.index(TrackState.IDLE)
    assert (idle_at - lost_at) * 0.5 >= 1.0  # image time, not wall time
    assert "max_lost_duration (1 s)" in reports[idle_at].reason
    assert reports[idle_at - 1].time_since_lost_ns == (idle_at - 1 - lost_at) * SECOND // 2
    assert session.target_ids == ()


def test_detections_start_targets_and_re_acquire_only_when_lost_by_default(model):
    session = make_session(model)
    (started,) = session.offer(scene(0), "bgr", 1, [OfferedDetection(box("a"), "a", "person")])
    assert started.action is Action.STARTED
    session.step(scene(1), "bgr", 2, SECOND)
    # A detector at camera rate: the TRACKING target is kept, not reset every frame.
    (kept,) = session.offer(scene(1), "bgr", 2, [OfferedDetection(box("a", 1), "a", "person")])
    assert kept.action is Action.KEPT
    session.step(scene(2, hide={"a"}), "bgr", 3, 2 * SECOND)
    assert session.state_of("a") is TrackState.LOST
    (wrong_class,) = session.offer(scene(3), "bgr", 3, [OfferedDetection(box("a", 3), "a", "dog")])
    assert wrong_class.action is Action.REFUSED and "class 'dog'" in wrong_class.message
    (again,) = session.offer(scene(3), "bgr", 3, [OfferedDetection(box("a", 3), "a", "person")])
    assert again.action is Action.REINITIALISED
    assert session.state_of("a") is TrackState.TRACKING


def test_always_policy_is_gated_by_iou_while_tracking(model):
    session = make_session(model, reinit=ReinitPolicy.ALWAYS, reinit_min_iou=0.5)
    session.offer(scene(0), "bgr", 1, [OfferedDetection(box("a"), "a")])
    (far,) = session.offer(scene(0), "bgr", 1, [OfferedDetection(box("b"), "a")])
    assert far.action is Action.REFUSED and "IoU 0.00 < detections.min_iou 0.5" in far.message
    (near,) = session.offer(scene(0), "bgr", 1, [OfferedDetection(box("a"), "a")])
    assert near.action is Action.REINITIALISED


def test_detections_without_ids_continue_the_overlapping_target_of_their_class(model):
    session = make_session(model)
    decisions = session.offer(
        scene(0), "bgr", 1, [OfferedDetection(box("a"), "", "person"), OfferedDetection(box("b"), "", "car")]
    )
    assert [d.action for d in decisions] == [Action.STARTED, Action.STARTED]
    ids = [d.target_id for d in decisions]
    # Next detector frame: same objects, slightly moved, no ids -> same targets, nothing new.
    again = session.offer(
        scene(1), "bgr", 2, [OfferedDetection(box("b", 1), "", "car"), OfferedDetection(box("a", 1), "", "person")]
    )
    assert [d.target_id for d in again] == [ids[1], ids[0]]
    assert all(d.action is Action.KEPT for d in again)
    assert len(session) == 2


def test_policy_validation_names_the_value():
    with pytest.raises(ValueError, match="max_targets must be in 1..255, got 0"):
        TargetPolicy(max_targets=0)
    with pytest.raises(ValueError, match="associate_iou"):
        TargetPolicy(associate_iou=1.5)
    with pytest.raises(ValueError, match="'sometimes'"):
        TargetPolicy(reinit="sometimes")
