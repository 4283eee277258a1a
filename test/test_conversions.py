"""siammask_ros.ros.conversions: messages <-> numpy, without rclpy."""

import array
import math
import struct

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import BoundingBox2D

from siammask_ros.msg import TrackedTarget
from siammask_ros.ros.conversions import (
    CLASS_ID,
    EmptyImageError,
    ImageConversionError,
    InvalidSelectionError,
    TruncatedImageError,
    UnsupportedEncodingError,
    array_to_image,
    bbox_to_xywh,
    detections_from_reports,
    image_to_array,
    label_image,
    rotated_box_to_bbox,
    stamp_key,
    tracked_target,
    tracking_result,
)
from siammask_ros.ros.targets import TargetReport
from siammask_ros.tracker.result import RotatedBox, TrackResult, TrackState

PAD_BYTE = 0xEE


def header(sec: int = 12, nanosec: int = 345, frame_id: str = "camera_optical") -> Header:
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def padded_image(rows: list[bytes], width: int, height: int, encoding: str, padding: int, big: bool = False) -> Image:
    """An Image whose rows are followed by ``padding`` filler bytes."""
    data = b"".join(row + bytes([PAD_BYTE]) * padding for row in rows)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big))
    msg.step = len(rows[0]) + padding
    msg.data = array.array("B", data)
    return msg


def pattern(height: int, width: int, channels: int) -> np.ndarray:
    """Distinct values per pixel and channel (mod 251), so swaps and offsets show up."""
    values = np.arange(height * width * channels, dtype=np.int64) * 7 % 251
    return values.reshape(height, width, channels).astype(np.uint8)


@pytest.mark.parametrize(
    "encoding, channels, order, keep",
    [
        ("mono8", 1, "mono", [0]),
        ("bgr8", 3, "bgr", [0, 1, 2]),
        ("rgb8", 3, "rgb", [0, 1, 2]),
        ("bgra8", 4, "bgr", [0, 1, 2]),
        ("rgba8", 4, "rgb", [0, 1, 2]),
    ],
)
@pytest.mark.parametrize("padding", [0, 5])
def test_8bit_encodings_skip_padding_and_alpha(encoding, channels, order, keep, padding):
    height, width = 3, 4
    pixels = pattern(height, width, channels)
    msg = padded_image([pixels[r].tobytes() for r in range(height)], width, height, encoding, padding)

    frame, color_order = image_to_array(msg)

    expected = pixels[:, :, keep]
    if channels == 1:
        expected = expected[:, :, 0]
    assert color_order == order
    assert frame.dtype == np.uint8 and frame.flags.c_contiguous
    np.testing.assert_array_equal(frame, expected)


def test_unpadded_8bit_frame_is_a_read_only_view_of_the_message():
    pixels = pattern(2, 3, 3)
    msg = padded_image([pixels[r].tobytes() for r in range(2)], 3, 2, "bgr8", 0)
    frame, _ = image_to_array(msg)
    assert np.shares_memory(frame, np.frombuffer(msg.data, dtype=np.uint8))
    assert not frame.flags.writeable


@pytest.mark.parametrize("big", [False, True])
def test_mono16_honours_byte_order_and_scales_to_8_bits(big):
    # value / 257 maps 0..65535 onto 0..255 exactly at these points.
    values = [0, 257, 32896, 65535, 1000, 65278]
    expected = [0, 1, 128, 255, round(1000 / 257), 254]
    fmt = (">" if big else "<") + "H" * 3
    rows = [struct.pack(fmt, *values[:3]), struct.pack(fmt, *values[3:])]
    msg = padded_image(rows, 3, 2, "mono16", padding=2, big=big)

    frame, order = image_to_array(msg)

    assert order == "mono"
    np.testing.assert_array_equal(frame, np.array(expected, dtype=np.uint8).reshape(2, 3))


def test_rgb16_keeps_channel_order():
    row = struct.pack("<6H", 65535, 0, 257, 0, 65535, 514)
    frame, order = image_to_array(padded_image([row], 2, 1, "rgb16", padding=0))
    assert order == "rgb"
    np.testing.assert_array_equal(frame, [[[255, 0, 1], [0, 255, 2]]])


def test_data_given_as_bytes_or_list_is_accepted():
    pixels = pattern(2, 2, 1)[:, :, 0]
    for data in (pixels.tobytes(), list(pixels.tobytes())):
        msg = Image(height=2, width=2, encoding="mono8", step=2)
        msg.data = data
        frame, _ = image_to_array(msg)
        np.testing.assert_array_equal(frame, pixels)


def test_unsupported_encoding_is_named():
    msg = Image(height=2, width=2, encoding="yuv422", step=4, data=array.array("B", bytes(8)))
    with pytest.raises(UnsupportedEncodingError, match="yuv422") as info:
        image_to_array(msg)
    assert isinstance(info.value, ValueError)
    assert info.value.reason == "unsupported_encoding"


def test_data_shorter_than_step_times_height():
    msg = Image(height=4, width=4, encoding="bgr8", step=12, data=array.array("B", bytes(12 * 4 - 1)))
    with pytest.raises(TruncatedImageError, match="47 bytes.*12 \\* 4 = 48"):
        image_to_array(msg)


def test_step_shorter_than_a_row():
    msg = Image(height=2, width=4, encoding="rgb8", step=11, data=array.array("B", bytes(24)))
    with pytest.raises(TruncatedImageError, match="step 11"):
        image_to_array(msg)


@pytest.mark.parametrize("width, height", [(0, 4), (4, 0), (0, 0)])
def test_zero_size(width, height):
    msg = Image(height=height, width=width, encoding="mono8", step=width)
    with pytest.raises(EmptyImageError, match=f"{width}x{height}") as info:
        image_to_array(msg)
    assert isinstance(info.value, ImageConversionError)


@pytest.mark.parametrize("encoding, shape", [("mono8", (3, 5)), ("bgr8", (3, 5, 3)), ("rgb8", (2, 1, 3))])
def test_array_to_image_round_trip(encoding, shape):
    frame = pattern(shape[0], shape[1], 1 if len(shape) == 2 else 3).reshape(shape)
    msg = array_to_image(frame, encoding, header())

    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian) == (shape[0], shape[1], encoding, 0)
    assert msg.step == shape[1] * (1 if len(shape) == 2 else 3)
    assert msg.header.stamp.sec == 12 and msg.header.stamp.nanosec == 345
    assert msg.header.frame_id == "camera_optical"
    assert isinstance(msg.data, array.array) and bytes(msg.data) == frame.tobytes()
    back, _ = image_to_array(msg)
    np.testing.assert_array_equal(back, frame)


def test_array_to_image_rejects_mismatched_arrays():
    with pytest.raises(ValueError, match="mono8"):
        array_to_image(np.zeros((2, 2, 3), np.uint8), "mono8", header())
    with pytest.raises(ValueError, match="uint8"):
        array_to_image(np.zeros((2, 2, 3), np.float32), "bgr8", header())
    with pytest.raises(ValueError, match="16UC1"):
        array_to_image(np.zeros((2, 2), np.uint8), "16UC1", header())


def box_msg(cx, cy, w, h, theta=0.0) -> BoundingBox2D:
    msg = BoundingBox2D(size_x=float(w), size_y=float(h))
    msg.center.position.x, msg.center.position.y, msg.center.theta = float(cx), float(cy), float(theta)
    return msg


def test_bbox_to_xywh_converts_centre_to_corner():
    assert bbox_to_xywh(box_msg(50, 40, 20, 10), 160, 120) == (40.0, 35.0, 20.0, 10.0)
    # Partly outside is accepted: the tracker clips it.
    assert bbox_to_xywh(box_msg(2, 118, 10, 10), 160, 120) == (-3.0, 113.0, 10.0, 10.0)


@pytest.mark.parametrize(
    "box, words",
    [
        (box_msg(50, 40, 20, 10, theta=0.3), "theta 0.3"),
        (box_msg(50, 40, 0, 10), "positive"),
        (box_msg(50, 40, 20, -1), "positive"),
        (box_msg(math.nan, 40, 20, 10), "non-finite"),
        (box_msg(50, 40, math.inf, 10), "non-finite"),
        (box_msg(175, 40, 20, 10), "outside the 160x120 image"),  # x = 165 >= 160
        (box_msg(-10, 40, 20, 10), "outside"),  # x + w = 0
        (box_msg(50, 125, 20, 10), "outside"),  # y = 120
        (box_msg(50, -5, 20, 10), "outside"),  # y + h = 0
    ],
)
def test_bbox_to_xywh_refuses_unusable_boxes(box, words):
    with pytest.raises(InvalidSelectionError, match=words):
        bbox_to_xywh(box, 160, 120)


def rotated(cx, cy, w, h, angle) -> RotatedBox:
    c, s = math.cos(angle), math.sin(angle)
    half = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    corners = half @ np.array([[c, s], [-s, c]]) + [cx, cy]
    return RotatedBox.from_corners(corners)


def test_rotated_box_to_bbox_keeps_theta_and_width_side():
    box = rotated(70.0, 30.0, 40.0, 10.0, math.radians(30))
    msg = rotated_box_to_bbox(box)
    assert msg.center.position.x == pytest.approx(70.0)
    assert msg.center.position.y == pytest.approx(30.0)
    assert msg.center.theta == pytest.approx(math.radians(30))
    assert (msg.size_x, msg.size_y) == (pytest.approx(40.0), pytest.approx(10.0))


def result(state: TrackState, confidence: float = 0.93, mask: np.ndarray | None = None) -> TrackResult:
    box = rotated(70.0, 30.0, 40.0, 10.0, -0.5)
    mask = np.zeros((4, 4), np.uint8) if mask is None else mask
    return TrackResult(state, confidence, (70.0, 30.0), (38.0, 12.0), box, mask, 255)


def report(state: TrackState, target_id: str = "t7", label: int = 3, **fields) -> TargetReport:
    mask = np.zeros((4, 4), np.uint8)
    mask[1:3, 1:3] = 1
    return TargetReport(target_id, "person", label, state, result(state, mask=mask), **fields)


def test_detections_hold_only_tracking_targets_with_their_class_and_no_pixel_pose():
    msg = detections_from_reports([report(TrackState.TRACKING), report(TrackState.LOST, "t8")], header())
    assert msg.header.stamp.sec == 12 and msg.header.frame_id == "camera_optical"
    (detection,) = msg.detections
    assert detection.id == "t7" and detection.header.frame_id == "camera_optical"
    assert detection.bbox.center.theta == pytest.approx(-0.5)
    assert (detection.bbox.size_x, detection.bbox.size_y) == (pytest.approx(40.0), pytest.approx(10.0))
    assert detection.results[0].hypothesis.class_id == "person"
    assert detection.results[0].hypothesis.score == pytest.approx(0.93)
    assert detection.results[0].pose.pose.position.x == 0.0  # a metric field: never pixels
    assert detections_from_reports([report(TrackState.LOST)], header()).detections == []


def test_a_target_without_class_is_published_as_target():
    unnamed = TargetReport("t1", "", 1, TrackState.TRACKING, result(TrackState.TRACKING))
    (detection,) = detections_from_reports([unnamed], header()).detections
    assert detection.results[0].hypothesis.class_id == CLASS_ID == "target"


@pytest.mark.parametrize(
    "state, code", [(TrackState.TRACKING, TrackedTarget.TRACKING), (TrackState.LOST, TrackedTarget.LOST)]
)
def test_tracked_target_fields(state, code):
    msg = tracked_target(
        report(state, frames_since_lost=3, time_since_lost_ns=1_250_000_000), position=(0.1, -0.2, 2.0),
        bearing=(0.0, 0.0, 1.0),
    )
    assert (msg.id, msg.class_id, msg.state, msg.search_size, msg.frames_since_lost) == ("t7", "person", code, 255, 3)
    assert (msg.time_since_lost.sec, msg.time_since_lost.nanosec) == (1, 250_000_000)
    assert msg.confidence == pytest.approx(0.93) and msg.mask_area == 4 and msg.mask_label == 3
    assert msg.has_position and (msg.position.x, msg.position.y, msg.position.z) == (0.1, -0.2, 2.0)
    assert msg.has_bearing and msg.bearing.z == 1.0
    bare = tracked_target(report(state))
    assert not bare.has_position and not bare.has_bearing


def test_an_idle_target_keeps_its_reason_and_has_no_mask_label():
    msg = tracked_target(report(TrackState.IDLE, reason="lost for 5.0 s"))
    assert (msg.state, msg.reason, msg.mask_label) == (TrackedTarget.IDLE, "lost for 5.0 s", 0)


def test_tracking_result_and_label_image():
    reports = [report(TrackState.TRACKING, "a", label=1), report(TrackState.LOST, "b", label=2)]
    reports[1].result.mask[:] = 0
    reports[1].result.mask[0, 0] = 1
    labels = label_image(reports, 4, 4)
    assert labels.dtype == np.uint8 and labels[1, 1] == 1 and labels[0, 0] == 2 and labels[3, 3] == 0
    msg = tracking_result(header(sec=3), [tracked_target(r) for r in reports], latency_ms=1.5)
    assert [t.id for t in msg.targets] == ["a", "b"] and msg.header.stamp.sec == 3
    assert msg.latency_ms == pytest.approx(1.5)


def test_stamp_key():
    assert stamp_key(Time(sec=5, nanosec=7)) == (5, 7)
