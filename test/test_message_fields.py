"""The plain-value contents of the tracker's output messages (io.message_fields)."""

import numpy as np
import pytest

from siammask_ros.io.message_fields import (
    LostClock,
    TargetFields,
    detection_array_fields,
    header_fields,
    label_image,
    tracked_target_fields,
    tracking_result_fields,
)
from siammask_ros.tracker.result import RotatedBox, TrackResult, TrackState

HEIGHT, WIDTH = 6, 8


def _result(state=TrackState.TRACKING, mask_pixels=((1, 2), (1, 3)), confidence=0.9, search_size=255):
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    for y, x in mask_pixels:
        mask[y, x] = 1
    box = RotatedBox.from_corners(np.array([[2.0, 1.0], [5.0, 4.0], [3.0, 6.0], [0.0, 3.0]]))
    return TrackResult(state, confidence, (3.0, 3.0), (4.0, 4.0), box, mask, search_size)


def test_tracked_target_fields():
    result = _result()
    fields = tracked_target_fields(TargetFields("t7", "person", 3, TrackState.TRACKING, result))
    box = result.rotated_box
    assert fields == {
        "id": "t7", "class_id": "person", "state": 1, "reason": "",
        "frames_since_lost": 0, "time_since_lost": {"sec": 0, "nanosec": 0},
        "confidence": 0.9, "search_size": 255, "mask_area": 2, "mask_label": 3,
        "bbox": {"center": {"position": {"x": box.cx, "y": box.cy}, "theta": box.angle},
                 "size_x": box.width, "size_y": box.height},
    }


@pytest.mark.parametrize(("state", "pixels", "label"), [
    (TrackState.LOST, ((0, 0),), 2),  # held box, mask still shown
    (TrackState.LOST, (), 0),  # no mask pixel: no label
    (TrackState.IDLE, ((0, 0),), 0),  # gave up: not in the label image
])
def test_mask_label_only_when_the_mask_image_holds_the_target(state, pixels, label):
    fields = tracked_target_fields(
        TargetFields("t", "", 2, state, _result(state, pixels), time_since_lost_ns=2_500_000_001, frames_since_lost=4)
    )
    assert fields["mask_label"] == label
    assert fields["state"] == {TrackState.LOST: 2, TrackState.IDLE: 0}[state]
    assert fields["time_since_lost"] == {"sec": 2, "nanosec": 500_000_001} and fields["frames_since_lost"] == 4
    assert np.count_nonzero(label_image([TargetFields("t", "", 2, state, _result(state, pixels))], HEIGHT, WIDTH)) == (
        len(pixels) if label else 0)


def test_target_without_result_has_no_measurement_fields():
    fields = tracked_target_fields(TargetFields("t", "", 1, TrackState.IDLE, None, reason="stopped by ~/stop"))
    assert fields["reason"] == "stopped by ~/stop" and "bbox" not in fields and "mask_label" not in fields


def test_detections_only_tracking_targets_with_class_or_default():
    header = header_fields(5, 6, "cam")
    targets = [
        TargetFields("a", "", 1, TrackState.TRACKING, _result(confidence=0.7)),
        TargetFields("b", "car", 2, TrackState.TRACKING, _result()),
        TargetFields("c", "", 3, TrackState.LOST, _result(TrackState.LOST)),
        TargetFields("d", "", 4, TrackState.IDLE, None),
    ]
    fields = detection_array_fields(header, targets)
    assert fields["header"] == {"stamp": {"sec": 5, "nanosec": 6}, "frame_id": "cam"}
    assert [d["id"] for d in fields["detections"]] == ["a", "b"]
    assert [d["results"][0]["hypothesis"] for d in fields["detections"]] == [
        {"class_id": "target", "score": 0.7}, {"class_id": "car", "score": 0.9}]
    result = tracking_result_fields(header, targets, 12.5)
    assert [t["id"] for t in result["targets"]] == ["a", "b", "c", "d"] and result["latency_ms"] == 12.5


def test_label_image_later_target_wins_on_overlap():
    first = TargetFields("a", "", 1, TrackState.TRACKING, _result(mask_pixels=((0, 0), (0, 1))))
    second = TargetFields("b", "", 2, TrackState.TRACKING, _result(mask_pixels=((0, 1), (5, 7))))
    labels = label_image([first, second], HEIGHT, WIDTH)
    assert labels.dtype == np.uint8 and labels.shape == (HEIGHT, WIDTH)
    assert (labels[0, 0], labels[0, 1], labels[5, 7], np.count_nonzero(labels)) == (1, 2, 2, 3)


def test_lost_clock():
    clock = LostClock()
    assert clock.update(TrackState.TRACKING, 100) == (0, 0)
    assert clock.update(TrackState.LOST, 1_000) == (1, 0)
    assert clock.update(TrackState.LOST, 1_250) == (2, 250)
    assert clock.update(TrackState.TRACKING, 1_300) == (0, 0)
    assert clock.update(TrackState.LOST, 2_000) == (1, 0)  # a new loss starts over
