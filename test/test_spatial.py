"""siammask_ros.ros.spatial: depth + camera_info + mask -> 3-D point, without rclpy."""

from __future__ import annotations

import array
import math
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from siammask_ros.ros.spatial import (
    CameraModel,
    DepthConfig,
    DepthConversionError,
    DepthEstimate,
    NoDepth,
    depth_to_metres,
    detection3d,
    locate_target,
    pose_stamped,
    robust_depth,
)

WIDTH, HEIGHT = 640, 480
FX, FY, CX, CY = 525.0, 530.0, 319.5, 243.0
BACKGROUND_M = 6.0
BLEED_PX = 3
RELATIVE_TOLERANCE = 0.03


def camera_info(
    fx: float = FX, fy: float = FY, cx: float = CX, cy: float = CY, width: int = WIDTH, height: int = HEIGHT
) -> CameraInfo:
    msg = CameraInfo(width=width, height=height)
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


CAMERA = CameraModel.from_camera_info(camera_info())


def depth_image(depth: np.ndarray, encoding: str, padding: int = 0, big: bool = False) -> Image:
    """An Image of ``depth`` (mm as uint16 or m as float32) with ``padding`` bytes per row."""
    dtype = np.dtype((">" if big else "<") + ("u2" if encoding == "16UC1" else "f4"))
    rows = [row.astype(dtype).tobytes() + b"\xab" * padding for row in depth]
    msg = Image(height=depth.shape[0], width=depth.shape[1], encoding=encoding, is_bigendian=int(big))
    msg.step = len(rows[0])
    msg.data = array.array("B", b"".join(rows))
    return msg


# --------------------------------------------------------------------------- synthetic scene


@dataclass(frozen=True)
class Board:
    """A fronto-parallel rectangle: centre (x, y, z) and size in metres."""

    x: float
    y: float
    z: float
    width: float
    height: float

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])


NEAR = Board(x=-0.45, y=0.10, z=2.0, width=0.5, height=0.9)
FAR = Board(x=0.90, y=-0.25, z=3.5, width=0.6, height=0.6)


def render(boards: list[Board], camera: CameraModel = CAMERA) -> tuple[np.ndarray, list[np.ndarray]]:
    """Exact z-depth (metres) of the scene on a 6 m wall and each board's visible mask."""
    u, v = np.meshgrid(np.arange(camera.width), np.arange(camera.height))
    depth = np.full((camera.height, camera.width), BACKGROUND_M)
    masks = []
    for board in sorted(boards, key=lambda b: -b.z):  # far to near: nearer boards occlude
        x = (u - camera.cx) * board.z / camera.fx
        y = (v - camera.cy) * board.z / camera.fy
        inside = (abs(x - board.x) <= board.width / 2) & (abs(y - board.y) <= board.height / 2)
        depth[inside] = board.z
        masks = [m & ~inside for m in masks] + [inside]
    ordered = sorted(boards, key=lambda b: -b.z)
    return depth, [masks[ordered.index(b)] for b in boards]


def sensor_depth(truth: np.ndarray, seed: int = 0) -> np.ndarray:
    """Truth with 1 % noise, 15 % random holes and a 20x20 hole block (NaN)."""
    rng = np.random.default_rng(seed)
    noisy = truth * (1 + 0.01 * rng.standard_normal(truth.shape))
    noisy[rng.random(truth.shape) < 0.15] = np.nan
    noisy[300:320, 150:170] = np.nan
    return noisy


def bleeding(mask: np.ndarray, pixels: int = BLEED_PX) -> np.ndarray:
    """The mask grown by ``pixels`` onto whatever surrounds it, as a tracker's mask does."""
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8) * 255, kernel)


def to_encoding(depth_m: np.ndarray, encoding: str) -> np.ndarray:
    """Metres with NaN holes as the driver writes them: mm with 0, or metres with NaN/inf/0."""
    if encoding == "32FC1":
        out = depth_m.astype(np.float32)
        holes = np.argwhere(np.isnan(out))
        out[tuple(holes[1::3].T)] = np.inf
        out[tuple(holes[2::3].T)] = 0.0
        return out
    return np.where(np.isnan(depth_m), 0, np.round(depth_m * 1000)).astype(np.uint16)


def assert_located(location, board: Board) -> None:
    error = np.linalg.norm(location.position - board.centre) / np.linalg.norm(board.centre)
    assert error < RELATIVE_TOLERANCE, (location.position, board.centre)
    cosine = float(location.bearing @ board.centre / np.linalg.norm(board.centre))
    assert math.degrees(math.acos(min(1.0, cosine))) < 0.5
    assert np.linalg.norm(location.bearing) == pytest.approx(1.0)


# --------------------------------------------------------------------------- depth_to_metres


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
@pytest.mark.parametrize("padding", [0, 3, 8])
@pytest.mark.parametrize("big", [False, True])
def test_depth_to_metres_reads_both_encodings_any_padding_and_byte_order(encoding, padding, big):
    truth, _ = render([NEAR, FAR])
    measured = sensor_depth(truth)
    raw = to_encoding(measured, encoding)
    metres = depth_to_metres(depth_image(raw, encoding, padding, big))
    assert metres.dtype == np.float32 and metres.shape == (HEIGHT, WIDTH)
    holes = np.isnan(measured)
    np.testing.assert_array_equal(np.isnan(metres), holes)
    np.testing.assert_allclose(metres[~holes], measured[~holes], atol=0.0006 if encoding == "16UC1" else 1e-6)


def test_depth_to_metres_32fc1_negative_and_infinite_are_no_reading():
    raw = np.array([[1.5, -1.0, -np.inf], [np.inf, np.nan, 0.25]], np.float32)
    metres = depth_to_metres(depth_image(raw, "32FC1"))
    np.testing.assert_array_equal(metres, [[1.5, np.nan, np.nan], [np.nan, np.nan, 0.25]])


def test_depth_to_metres_16uc1_from_a_list_and_the_full_range():
    msg = depth_image(np.array([[0, 1, 65535]], np.uint16), "16UC1")
    msg.data = list(msg.data)
    np.testing.assert_allclose(depth_to_metres(msg), [[np.nan, 0.001, 65.535]], rtol=1e-6)


@pytest.mark.parametrize(
    "change, reason, words",
    [
        (dict(encoding="mono16"), "depth_unsupported_encoding", "'mono16'"),
        (dict(encoding="rgb8"), "depth_unsupported_encoding", "16UC1, 32FC1"),
        (dict(width=0), "depth_empty_image", "zero size (0x4)"),
        (dict(height=0), "depth_empty_image", "zero size (3x0)"),
        (dict(step=5), "depth_truncated_data", "step 5 is shorter than one 16UC1 row of width 3 (6 bytes)"),
        (dict(data=array.array("B", bytes(23))), "depth_truncated_data", "23 bytes, fewer than step * height = 6 * 4"),
    ],
)
def test_depth_to_metres_refuses_bad_images_by_name(change, reason, words):
    msg = depth_image(np.ones((4, 3), np.uint16), "16UC1")
    for field, value in change.items():
        setattr(msg, field, value)
    with pytest.raises(DepthConversionError) as error:
        depth_to_metres(msg)
    assert isinstance(error.value, ValueError)
    assert error.value.reason == reason
    assert words in str(error.value)


# --------------------------------------------------------------------------- CameraModel


def test_camera_model_back_projects_what_it_projects():
    assert (CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy, CAMERA.width, CAMERA.height) == (FX, FY, CX, CY, WIDTH, HEIGHT)
    point = np.array([0.7, -0.3, 2.5])
    u, v = CAMERA.project(point)
    np.testing.assert_allclose(CAMERA.point(u, v, 2.5), point)
    np.testing.assert_allclose(CAMERA.ray(u, v), point / np.linalg.norm(point))
    np.testing.assert_allclose(CAMERA.ray(CX, CY), [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="z = -1.0"):
        CAMERA.project([0.0, 0.0, -1.0])


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(fx=0.0), r"k\[0\] \(fx\) must be positive and finite, got 0.0"),
        (dict(fy=math.nan), r"k\[4\] \(fy\) must be positive and finite, got nan"),
        (dict(fx=-500.0), r"k\[0\] \(fx\) must be positive and finite, got -500.0"),
        (dict(cx=math.inf), r"k\[2\] \(cx\) must be finite, got inf"),
        (dict(width=0), r"zero image size \(0x480\)"),
        (dict(height=0), r"zero image size \(640x0\)"),
    ],
)
def test_camera_info_refused_by_name(change, words):
    with pytest.raises(ValueError, match=words):
        CameraModel.from_camera_info(camera_info(**change))


def test_uncalibrated_camera_info_is_refused():
    with pytest.raises(ValueError, match="is the camera calibrated"):
        CameraModel.from_camera_info(CameraInfo(width=640, height=480))


def test_projection_matrix_on_request():
    msg = camera_info()
    msg.p = [600.0, 0.0, 330.0, 0.0, 0.0, 610.0, 250.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    rectified = CameraModel.from_camera_info(msg, use_projection=True)
    assert (rectified.fx, rectified.fy, rectified.cx, rectified.cy) == (600.0, 610.0, 330.0, 250.0)
    msg.p[5] = 0.0
    with pytest.raises(ValueError, match=r"p\[5\] \(fy\)"):
        CameraModel.from_camera_info(msg, use_projection=True)


def test_camera_info_binning_and_roi_as_image_geometry():
    msg = camera_info(fx=1000.0, fy=1000.0, cx=640.0, cy=480.0, width=1280, height=960)
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 200, 100, 800, 600
    msg.binning_x = msg.binning_y = 2
    model = CameraModel.from_camera_info(msg)
    assert (model.fx, model.fy, model.cx, model.cy) == (500.0, 500.0, 220.0, 190.0)
    assert (model.width, model.height) == (400, 300)
    msg.roi.width = 1200
    with pytest.raises(ValueError, match="roi .* lies outside the 1280x960 image"):
        CameraModel.from_camera_info(msg)


def test_scaled_camera_sees_the_same_point_at_the_resized_pixel():
    full = CameraModel.from_camera_info(camera_info(fx=1050.0, fy=1060.0, cx=639.5, cy=486.0, width=1280, height=960))
    half = full.scaled_to(640, 480)
    point = np.array([0.4, 0.2, 3.0])
    u, v = full.project(point)
    expected = ((u + 0.5) * 0.5 - 0.5, (v + 0.5) * 0.5 - 0.5)  # cv2.resize pixel geometry
    np.testing.assert_allclose(half.project(point), expected)
    np.testing.assert_allclose(half.point(*expected, 3.0), point)
    assert full.scaled_to(1280, 960) is full


@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (848, 480)])
def test_scaling_to_another_aspect_ratio_is_refused(size):
    with pytest.raises(ValueError, match=f"image is {size[0]}x{size[1]} but camera_info describes 640x480"):
        CAMERA.scaled_to(*size)


def test_scaling_tolerates_one_pixel_of_rounding():
    camera = CameraModel(fx=900.0, fy=900.0, cx=640.0, cy=360.0, width=1280, height=720)
    scaled = camera.scaled_to(426, 240)  # 1280 / 3 = 426.7
    assert scaled.fx == pytest.approx(900 * 426 / 1280) and scaled.fy == pytest.approx(300.0)


# --------------------------------------------------------------------------- robust_depth


@pytest.mark.parametrize("board_index", [0, 1])
def test_median_under_a_bleeding_mask_is_the_target_depth(board_index):
    truth, masks = render([NEAR, FAR])
    estimate = robust_depth(sensor_depth(truth), bleeding(masks[board_index]))
    assert isinstance(estimate, DepthEstimate)
    board = (NEAR, FAR)[board_index]
    assert estimate.depth_m == pytest.approx(board.z, rel=0.005)
    assert estimate.spread_m == pytest.approx(0.01 * board.z, rel=0.2)  # the 1 % noise
    assert 0.8 < estimate.valid_fraction < 0.9 and estimate.valid_pixels > 1000


def test_erosion_removes_bleed_that_would_dominate_a_thin_target():
    depth = np.full((60, 60), BACKGROUND_M, np.float32)
    depth[10:50, 28:32] = 2.0  # a pole 4 px wide
    mask = np.zeros((60, 60), np.uint8)
    mask[7:53, 25:35] = 1  # the mask bleeds 3 px on each side: 6 of its 10 columns are wall
    without = robust_depth(depth, mask, DepthConfig(erode_px=0))
    eroded = robust_depth(depth, mask, DepthConfig(erode_px=3))
    assert without.depth_m == BACKGROUND_M
    assert eroded.depth_m == 2.0 and eroded.region_pixels == 4 * 40


def test_a_mask_thinner_than_the_erosion_is_used_as_it_is():
    depth = np.full((40, 40), 2.5, np.float32)
    mask = np.zeros((40, 40), bool)
    mask[5:35, 20] = True
    estimate = robust_depth(depth, mask, DepthConfig(erode_px=2))
    assert estimate.depth_m == 2.5 and estimate.region_pixels == 30


def test_a_target_cut_by_the_image_border_is_not_eroded_there():
    depth = np.full((40, 40), 2.5, np.float32)
    mask = np.zeros((40, 40), bool)
    mask[:, :10] = True
    assert robust_depth(depth, mask, DepthConfig(erode_px=2)).region_pixels == 40 * 8


def test_too_few_valid_readings_give_a_reason():
    truth, masks = render([NEAR])
    depth = truth.copy()
    depth[masks[0]] = np.nan
    depth[np.nonzero(masks[0])[0][:30], np.nonzero(masks[0])[1][:30]] = NEAR.z  # 30 readings left
    result = robust_depth(depth, masks[0], DepthConfig(erode_px=0, min_valid_pixels=10, min_valid_fraction=0.05))
    assert isinstance(result, NoDepth) and result.reason == "depth_too_few_valid"
    assert result.valid_pixels == 30 and result.region_pixels == int(masks[0].sum())
    assert f"30 of {int(masks[0].sum())} target pixels have a depth reading" in result.message
    enough = robust_depth(depth, masks[0], DepthConfig(erode_px=0, min_valid_pixels=10, min_valid_fraction=0.0))
    assert isinstance(enough, DepthEstimate) and enough.depth_m == NEAR.z


def test_readings_outside_the_working_range_are_ignored():
    depth = np.full((20, 20), 0.05, np.float32)
    depth[:, 10:] = 1.2
    mask = np.ones((20, 20), bool)
    estimate = robust_depth(depth, mask, DepthConfig(erode_px=0, min_depth_m=0.1, min_valid_fraction=0.4))
    assert estimate.depth_m == pytest.approx(1.2) and estimate.valid_pixels == 200


def test_empty_mask_gives_a_reason():
    result = robust_depth(np.ones((10, 10), np.float32), np.zeros((10, 10), np.uint8))
    assert isinstance(result, NoDepth) and result.reason == "depth_empty_region"


def test_mask_is_resized_to_a_depth_image_of_another_resolution():
    truth, masks = render([NEAR, FAR])
    half_depth = cv2.resize(sensor_depth(truth), (WIDTH // 2, HEIGHT // 2), interpolation=cv2.INTER_NEAREST)
    estimate = robust_depth(half_depth, bleeding(masks[1]), DepthConfig(erode_px=1))
    assert estimate.depth_m == pytest.approx(FAR.z, rel=0.005)


@pytest.mark.parametrize(
    "depth_shape, mask_shape, words",
    [
        ((480, 640), (480, 600), "mask is 600x480 but the depth image is 640x480"),
        ((480, 640, 1), (480, 640), r"depth must be a 2-D array, got shape \(480, 640, 1\)"),
        ((480, 640), (480, 640, 3), r"mask must be a 2-D array, got shape \(480, 640, 3\)"),
    ],
)
def test_robust_depth_refuses_unusable_shapes(depth_shape, mask_shape, words):
    with pytest.raises(ValueError, match=words):
        robust_depth(np.ones(depth_shape, np.float32), np.ones(mask_shape, np.uint8))


@pytest.mark.parametrize("field, value", [("erode_px", -1), ("min_valid_pixels", 0), ("min_valid_fraction", 1.5),
                                          ("max_depth_m", 0.0), ("window_px", 0)])
def test_depth_config_refuses_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        DepthConfig(**{field: value})


# --------------------------------------------------------------------------- locate_target


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_two_targets_on_a_wall_are_located_within_three_percent(encoding):
    truth, masks = render([NEAR, FAR])
    depth = depth_to_metres(depth_image(to_encoding(sensor_depth(truth), encoding), encoding, padding=4, big=True))
    for board, mask in zip((NEAR, FAR), masks):
        box_centre = CAMERA.project(board.centre)
        location = locate_target(CAMERA, depth, bleeding(mask), box_centre)
        assert location.pixel_source == "mask_centroid"
        assert_located(location, board)
        assert location.no_position_reason is None
        width, height = location.extent_m
        assert width == pytest.approx(board.width, abs=2 * BLEED_PX * board.z / FX + 0.01)
        assert height == pytest.approx(board.height, abs=2 * BLEED_PX * board.z / FY + 0.01)


def test_partly_occluded_target_is_located_at_its_visible_part():
    hidden = Board(x=-0.3, y=0.1, z=3.5, width=0.8, height=0.8)  # NEAR hides its left half
    truth, masks = render([NEAR, hidden])
    location = locate_target(CAMERA, sensor_depth(truth), bleeding(masks[1]), CAMERA.project(hidden.centre))
    assert location.position[2] == pytest.approx(hidden.z, rel=0.01)
    assert location.position[0] > hidden.x  # the centroid of what is seen, right of the centre


def test_colour_image_at_another_resolution_than_camera_info_and_depth():
    full = CameraModel.from_camera_info(camera_info(fx=2 * FX, fy=2 * FY, cx=2 * CX + 0.5, cy=2 * CY + 0.5,
                                                    width=2 * WIDTH, height=2 * HEIGHT))
    truth, masks = render([NEAR, FAR], full.scaled_to(WIDTH, HEIGHT))
    depth_quarter = cv2.resize(sensor_depth(truth), (WIDTH // 2, HEIGHT // 2), interpolation=cv2.INTER_NEAREST)
    location = locate_target(full, depth_quarter, bleeding(masks[0]), (0.0, 0.0))
    assert_located(location, NEAR)


def test_bearing_without_depth():
    truth, masks = render([FAR])
    location = locate_target(CAMERA, None, bleeding(masks[0]), (0.0, 0.0))
    assert location.position is None and location.depth is None and location.extent_m is None
    assert location.no_position_reason == "no_depth_image"
    cosine = float(location.bearing @ FAR.centre / np.linalg.norm(FAR.centre))
    assert math.degrees(math.acos(min(1.0, cosine))) < 0.5


def test_empty_mask_uses_the_box_centre_and_a_window_of_depth():
    truth, _ = render([NEAR])
    centre = CAMERA.project(NEAR.centre)
    for mask in (np.zeros((HEIGHT, WIDTH), np.uint8), None):
        location = locate_target(CAMERA, sensor_depth(truth), mask, centre, DepthConfig(min_valid_pixels=10))
        assert location.pixel_source == "box_center" and location.pixel == pytest.approx(centre)
        assert_located(location, NEAR)
        assert location.depth.region_pixels == 9 * 9
        assert location.extent_m is None


def test_no_valid_depth_under_the_mask_keeps_the_bearing():
    truth, masks = render([NEAR])
    depth = truth.copy()
    depth[masks[0]] = np.nan
    location = locate_target(CAMERA, depth, masks[0], (0.0, 0.0))
    assert location.position is None and location.no_position_reason == "depth_too_few_valid"
    assert location.depth.valid_pixels == 0
    assert np.linalg.norm(location.bearing) == pytest.approx(1.0)


def test_locate_target_refuses_a_non_finite_box_centre():
    with pytest.raises(ValueError, match=r"box centre must be finite, got \(nan, 3.0\)"):
        locate_target(CAMERA, None, None, (math.nan, 3.0))


# --------------------------------------------------------------------------- messages


def image_header() -> Header:
    return Header(stamp=Time(sec=17, nanosec=250), frame_id="camera_color_optical_frame")


def test_detection3d_carries_the_position_size_and_hypothesis():
    msg = detection3d(image_header(), "target_3", "person", 0.87, np.array([0.5, -0.2, 2.0]), (0.5, 0.9, 0.0))
    assert msg.header == image_header() and msg.id == "target_3"
    centre = msg.bbox.center
    assert (centre.position.x, centre.position.y, centre.position.z) == (0.5, -0.2, 2.0)
    assert (centre.orientation.x, centre.orientation.y, centre.orientation.z, centre.orientation.w) == (0, 0, 0, 1)
    assert (msg.bbox.size.x, msg.bbox.size.y, msg.bbox.size.z) == (0.5, 0.9, 0.0)
    (hypothesis,) = msg.results
    assert hypothesis.hypothesis.class_id == "person" and hypothesis.hypothesis.score == pytest.approx(0.87)
    assert hypothesis.pose.pose.position == centre.position
    assert hypothesis.pose.pose.position is not centre.position


def test_pose_stamped_is_in_the_image_frame_with_identity_orientation():
    msg = pose_stamped(image_header(), [0.1, 0.2, 3.0])
    assert msg.header.frame_id == "camera_color_optical_frame" and msg.header.stamp == Time(sec=17, nanosec=250)
    assert (msg.pose.position.x, msg.pose.position.y, msg.pose.position.z) == (0.1, 0.2, 3.0)
    assert msg.pose.orientation.w == 1.0


@pytest.mark.parametrize(
    "position, size, words",
    [
        ((0.0, math.nan, 1.0), (1, 1, 1), r"position must be three finite numbers, got \(0.0, nan, 1.0\)"),
        ((0.0, 1.0), (1, 1, 1), "position must be three finite numbers"),
        ((0.0, 0.0, 1.0), (1, math.inf, 1), "size must be three finite numbers"),
        ((0.0, 0.0, 1.0), (1, -0.5, 1), r"size must not be negative, got \(1.0, -0.5, 1.0\)"),
    ],
)
def test_message_builders_refuse_non_finite_values(position, size, words):
    with pytest.raises(ValueError, match=words):
        detection3d(image_header(), "t", "target", 1.0, position, size)
    if "position" in words:
        with pytest.raises(ValueError, match=words):
            pose_stamped(image_header(), position)
