"""Depth image + camera_info + target mask -> a 3-D point in the camera optical frame.

This module imports numpy, OpenCV and message classes only, never rclpy, so every step
can be tested without a middleware. docs/DEPTH.md describes the inputs and their use.

Conventions:
- Depth images are registered to the colour image: same optical frame and camera_info.
  ``16UC1`` holds millimetres, ``32FC1`` metres. No reading is 0 (16UC1) or NaN/inf
  (32FC1); :func:`depth_to_metres` turns every "no reading" into NaN.
- Depth is z-depth (distance along the optical axis), not range along the ray, as with
  every ROS depth camera driver.
- The optical frame: x right, y down, z forward, metres. A pixel (u, v) with depth z is
  ``x = (u - cx) z / fx``, ``y = (v - cy) z / fy``. Pixel centres are at integer (u, v).
- The intrinsics are ``CameraInfo.k`` by default: the camera matrix of the image as the
  driver publishes it. Lens distortion (``d``) is not applied; drivers of depth cameras
  (RealSense, ZED) publish colour images that are already undistorted. For an image
  rectified by image_proc (``image_rect``), whose camera matrix is the left 3x3 of ``p``,
  build the model with ``CameraModel.from_camera_info(msg, use_projection=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection3D, ObjectHypothesisWithPose

__all__ = [
    "CameraModel",
    "DEPTH_ENCODINGS",
    "DepthConfig",
    "DepthConversionError",
    "DepthEstimate",
    "NoDepth",
    "TargetLocation",
    "depth_to_metres",
    "detection3d",
    "locate_target",
    "pose_stamped",
    "robust_depth",
]

#: Depth encodings read by :func:`depth_to_metres`, with the factor that gives metres.
DEPTH_ENCODINGS: dict[str, float] = {"16UC1": 0.001, "32FC1": 1.0}
_DEPTH_DTYPES = {"16UC1": "u2", "32FC1": "f4"}


class DepthConversionError(ValueError):
    """A depth image that cannot be read.

    ``reason`` is a short key for a diagnostics counter: ``depth_unsupported_encoding``,
    ``depth_empty_image`` or ``depth_truncated_data``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------- depth image


def depth_to_metres(msg: Image) -> np.ndarray:
    """The depth image as a float32 HxW array of metres, NaN where there is no reading.

    ``16UC1`` millimetres are scaled by 0.001 and 0 becomes NaN. In ``32FC1``, NaN, +-inf
    and values <= 0 (written by some drivers for "no reading") become NaN. Row padding
    (``step`` longer than a row) is skipped and ``is_bigendian`` honoured for both.
    The result is a new, writable array.

    Raises:
        DepthConversionError: zero width or height, an encoding other than 16UC1/32FC1,
            ``step`` shorter than a row, or ``data`` shorter than ``step * height``.
    """
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise DepthConversionError("depth_empty_image", f"depth image has zero size ({width}x{height})")
    scale = DEPTH_ENCODINGS.get(msg.encoding)
    if scale is None:
        raise DepthConversionError(
            "depth_unsupported_encoding",
            f"unsupported depth encoding {msg.encoding!r}; supported: "
            f"{', '.join(DEPTH_ENCODINGS)} (millimetres, metres)",
        )
    dtype = np.dtype((">" if msg.is_bigendian else "<") + _DEPTH_DTYPES[msg.encoding])
    row_bytes = width * dtype.itemsize
    if step < row_bytes:
        raise DepthConversionError(
            "depth_truncated_data",
            f"depth step {step} is shorter than one {msg.encoding} row of width {width} ({row_bytes} bytes)",
        )
    buffer = _bytes_of(msg.data)
    if buffer.size < step * height:
        raise DepthConversionError(
            "depth_truncated_data",
            f"depth data has {buffer.size} bytes, fewer than step * height = {step} * {height} = {step * height}",
        )
    rows = buffer[: step * height].reshape(height, step)[:, :row_bytes]
    raw = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
    metres = raw.astype(np.float32)
    if scale != 1.0:
        metres *= np.float32(scale)
    metres[~((metres > 0) & (metres < np.inf))] = np.nan  # NaN fails both comparisons
    return metres


def _bytes_of(data) -> np.ndarray:
    """``data`` as a flat uint8 array: a view of a buffer (array.array, bytes), else a copy.

    (conversions.py has the same helper; importing it would import the tracker and torch.)
    """
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:  # a list, as a hand-built message may hold
        return np.asarray(data, dtype=np.uint8).reshape(-1)


# --------------------------------------------------------------------------- camera model


def _same_aspect(width_a: int, height_a: int, width_b: int, height_b: int) -> bool:
    """Whether b is a uniform scaling of a, to within one pixel of rounding."""
    return abs(height_a * width_b - height_b * width_a) <= max(width_a, width_b)


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics of one image resolution (pixels) for back-projection."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"focal length {name} must be positive and finite, got {value}")
        for name in ("cx", "cy"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"principal point {name} must be finite, got {getattr(self, name)}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera image size must be positive, got {self.width}x{self.height}")

    @classmethod
    def from_camera_info(cls, msg: CameraInfo, use_projection: bool = False) -> CameraModel:
        """The model of the image that ``msg`` describes.

        Uses ``k`` (or the left 3x3 of ``p`` with ``use_projection``). ``binning_x/y``
        (0 and 1 both mean none) and a non-empty ``roi`` are applied as image_geometry
        does: the published image is the ROI of the full sensor, binned; its size is the
        ROI's (or the full size when the ROI is empty) divided by the binning.

        Raises:
            ValueError: naming the field, for a zero or non-finite focal length, a
                non-finite principal point, a zero image size or an ROI outside it.
        """
        width, height = int(msg.width), int(msg.height)
        if width == 0 or height == 0:
            raise ValueError(f"camera_info has zero image size ({width}x{height}); is the camera calibrated?")
        if use_projection:
            matrix = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)
            labels = ("p[0] (fx)", "p[5] (fy)", "p[2] (cx)", "p[6] (cy)")
        else:
            matrix = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
            labels = ("k[0] (fx)", "k[4] (fy)", "k[2] (cx)", "k[5] (cy)")
        fx, fy, cx, cy = matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2]
        for label, value in zip(labels, (fx, fy)):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"camera_info {label} must be positive and finite, got {value}; is the camera calibrated?"
                )
        for label, value in zip(labels[2:], (cx, cy)):
            if not math.isfinite(value):
                raise ValueError(f"camera_info {label} must be finite, got {value}")
        roi = msg.roi
        if roi.width and roi.height:
            if roi.x_offset + roi.width > width or roi.y_offset + roi.height > height:
                raise ValueError(
                    f"camera_info roi (x {roi.x_offset}, y {roi.y_offset}, {roi.width}x{roi.height}) "
                    f"lies outside the {width}x{height} image"
                )
            cx, cy = cx - roi.x_offset, cy - roi.y_offset
            width, height = int(roi.width), int(roi.height)
        bin_x, bin_y = max(1, int(msg.binning_x)), max(1, int(msg.binning_y))
        return cls(
            fx=float(fx / bin_x),
            fy=float(fy / bin_y),
            cx=float(cx / bin_x),
            cy=float(cy / bin_y),
            width=width // bin_x,
            height=height // bin_y,
        )

    def scaled_to(self, width: int, height: int) -> CameraModel:
        """The same camera for an image resized to ``width`` x ``height``.

        For a colour image published at another resolution than camera_info states (a
        resizing driver or node). Each axis is scaled by its own factor and pixel
        centres stay aligned as in cv2.resize: ``c' = (c + 0.5) s - 0.5``, ``f' = f s``.
        (image_proc's resize scales c by s alone; the two differ by ``|1 - s| / 2`` px.)

        Raises:
            ValueError: when the aspect ratios differ by more than one pixel of
                rounding: the image is then cropped, not scaled, and the intrinsics of
                that image are unknown.
        """
        if (width, height) == (self.width, self.height):
            return self
        if width <= 0 or height <= 0:
            raise ValueError(f"cannot scale the camera to a {width}x{height} image")
        if not _same_aspect(self.width, self.height, width, height):
            raise ValueError(
                f"image is {width}x{height} but camera_info describes {self.width}x{self.height}: "
                "the aspect ratios differ, so the image is not a resized camera image"
            )
        sx, sy = width / self.width, height / self.height
        return CameraModel(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=width,
            height=height,
        )

    def ray(self, u: float, v: float) -> np.ndarray:
        """Unit vector (3,) from the optical centre through pixel (u, v)."""
        direction = np.array([(u - self.cx) / self.fx, (v - self.cy) / self.fy, 1.0])
        return direction / np.linalg.norm(direction)

    def point(self, u: float, v: float, z: float) -> np.ndarray:
        """The point (3,) seen at pixel (u, v) at z-depth ``z`` metres."""
        return np.array([(u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z])

    def project(self, point: Sequence[float]) -> tuple[float, float]:
        """Pixel (u, v) of a point in front of the camera (z > 0); inverse of :meth:`point`."""
        x, y, z = (float(c) for c in point)
        if not z > 0:
            raise ValueError(f"cannot project a point with z = {z}; it must lie in front of the camera")
        return self.fx * x / z + self.cx, self.fy * y / z + self.cy


# --------------------------------------------------------------------------- depth statistic


@dataclass(frozen=True)
class DepthConfig:
    """How the target's depth is taken from the readings under its mask.

    Attributes:
        erode_px: the mask is eroded by this many pixels first, so that readings at the
            target's outline, where the mask bleeds onto the background and depth
            cameras smear edges, do not count. Skipped when nothing would remain.
        min_valid_pixels: fewer valid readings than this give no depth.
        min_valid_fraction: nor do fewer than this fraction of the (eroded) mask pixels:
            a mask over a hole in the depth image is not measured by its few edges.
        min_depth_m, max_depth_m: readings outside this range are ignored (the camera's
            working range; the defaults keep every reading).
        window_px: side of the square around the box centre that is used when there is
            no mask (or an empty one).
    """

    erode_px: int = 2
    min_valid_pixels: int = 20
    min_valid_fraction: float = 0.1
    min_depth_m: float = 0.0
    max_depth_m: float = math.inf
    window_px: int = 9

    def __post_init__(self) -> None:
        if self.erode_px < 0:
            raise ValueError(f"erode_px must be >= 0, got {self.erode_px}")
        if self.min_valid_pixels < 1:
            raise ValueError(f"min_valid_pixels must be >= 1, got {self.min_valid_pixels}")
        if not 0.0 <= self.min_valid_fraction <= 1.0:
            raise ValueError(f"min_valid_fraction must be in [0, 1], got {self.min_valid_fraction}")
        if not 0.0 <= self.min_depth_m < self.max_depth_m:
            raise ValueError(
                f"need 0 <= min_depth_m < max_depth_m, got {self.min_depth_m} and {self.max_depth_m}"
            )
        if self.window_px < 1:
            raise ValueError(f"window_px must be >= 1, got {self.window_px}")


@dataclass(frozen=True)
class DepthEstimate:
    """The target's z-depth: the median of the valid readings under its (eroded) mask.

    ``spread_m`` is the median absolute deviation scaled by 1.4826 (the standard
    deviation for Gaussian noise, robust to the outliers a median ignores).
    """

    depth_m: float
    spread_m: float
    valid_pixels: int
    region_pixels: int

    @property
    def valid_fraction(self) -> float:
        return self.valid_pixels / self.region_pixels


@dataclass(frozen=True)
class NoDepth:
    """Why there is no depth: ``reason`` is a counter key, ``message`` says it in words.

    Reasons: ``depth_empty_region`` (nothing to measure), ``depth_too_few_valid``.
    """

    reason: str
    message: str
    valid_pixels: int = 0
    region_pixels: int = 0


def robust_depth(
    depth_m: np.ndarray, mask: np.ndarray, config: DepthConfig = DepthConfig()
) -> DepthEstimate | NoDepth:
    """The depth of the region ``mask`` (non-zero = target) from ``depth_m`` (NaN = none).

    A mask of another resolution than the depth image (a colour image at 1280x720 with
    depth at 640x360) is resized to the depth image nearest-neighbour; both must show the
    same field of view, so their aspect ratios must agree.

    Returns:
        a DepthEstimate, or NoDepth (with a reason) when the region is empty or has too
        few valid readings.

    Raises:
        ValueError: the arrays are not 2-D or their aspect ratios differ.
    """
    region = _region_on_depth(depth_m, mask)
    bounds = cv2.boundingRect(region)
    if bounds[2] == 0:
        return NoDepth("depth_empty_region", "the target mask is empty")
    region, depth_crop = _crop(region, depth_m, bounds, margin=config.erode_px + 1)
    region = _eroded(region, config.erode_px)
    region_pixels = int(np.count_nonzero(region))
    readings = depth_crop[region]
    readings = readings[(readings >= config.min_depth_m) & (readings <= config.max_depth_m)]  # drops NaN
    valid = int(readings.size)
    needed = max(config.min_valid_pixels, math.ceil(config.min_valid_fraction * region_pixels))
    if valid < needed:
        return NoDepth(
            "depth_too_few_valid",
            f"{valid} of {region_pixels} target pixels have a depth reading, fewer than the "
            f"{needed} needed (min_valid_pixels {config.min_valid_pixels}, "
            f"min_valid_fraction {config.min_valid_fraction})",
            valid,
            region_pixels,
        )
    median = float(np.median(readings))
    spread = 1.4826 * float(np.median(np.abs(readings - median)))
    return DepthEstimate(median, spread, valid, region_pixels)


def _region_on_depth(depth_m: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask`` as uint8 0/1 at the depth image's resolution."""
    if depth_m.ndim != 2:
        raise ValueError(f"depth must be a 2-D array, got shape {depth_m.shape}")
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D array, got shape {mask.shape}")
    region = (mask != 0).astype(np.uint8)
    (mask_h, mask_w), (depth_h, depth_w) = mask.shape, depth_m.shape
    if (mask_h, mask_w) == (depth_h, depth_w):
        return region
    if not _same_aspect(mask_w, mask_h, depth_w, depth_h):
        raise ValueError(
            f"mask is {mask_w}x{mask_h} but the depth image is {depth_w}x{depth_h}: the aspect "
            "ratios differ, so the depth image is not registered to the colour image"
        )
    return cv2.resize(region, (depth_w, depth_h), interpolation=cv2.INTER_NEAREST)


def _crop(
    region: np.ndarray, depth_m: np.ndarray, bounds: tuple[int, int, int, int], margin: int
) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays cut to ``bounds`` plus ``margin`` (so erosion sees the same borders)."""
    x, y, w, h = bounds
    top, left = max(0, y - margin), max(0, x - margin)
    bottom, right = min(region.shape[0], y + h + margin), min(region.shape[1], x + w + margin)
    return region[top:bottom, left:right], depth_m[top:bottom, left:right]


def _eroded(region: np.ndarray, erode_px: int) -> np.ndarray:
    """The region eroded by ``erode_px`` (a square kernel), or unchanged if that empties it.

    Pixels outside the image count as inside the mask, so a target cut by the image
    border is not eroded from that side (its border there is no depth edge).
    """
    if erode_px > 0:
        kernel = np.ones((2 * erode_px + 1, 2 * erode_px + 1), np.uint8)
        eroded = cv2.erode(region, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
        if eroded.any():
            return eroded.astype(bool)
    return region.astype(bool)


# --------------------------------------------------------------------------- target location


@dataclass(frozen=True)
class TargetLocation:
    """Where the target is, as seen from the camera (optical frame, metres).

    Attributes:
        pixel: (u, v) the bearing and position go through, in the colour image.
        pixel_source: "mask_centroid", or "box_center" when the mask is empty.
        bearing: unit vector (3,) towards ``pixel``; needs only camera_info.
        position: the point on that ray at the target's z-depth, or None.
        depth: the estimate, why there is none (NoDepth), or None without a depth image.
        extent_m: (width, height) in metres of the mask's axis-aligned bounding box at
            the target's depth; None without a position or without a mask.
    """

    pixel: tuple[float, float]
    pixel_source: str
    bearing: np.ndarray
    position: np.ndarray | None
    depth: DepthEstimate | NoDepth | None
    extent_m: tuple[float, float] | None

    @property
    def no_position_reason(self) -> str | None:
        """A counter key for a missing position: ``no_depth_image`` or NoDepth's reason."""
        if self.position is not None:
            return None
        return "no_depth_image" if self.depth is None else self.depth.reason  # type: ignore[union-attr]


def locate_target(
    camera: CameraModel,
    depth_m: np.ndarray | None,
    mask: np.ndarray | None,
    box_center_uv: tuple[float, float],
    config: DepthConfig = DepthConfig(),
) -> TargetLocation:
    """Bearing and (with a depth image) position of a tracked target.

    The target pixel is the centroid of ``mask`` (colour-image resolution, non-zero =
    target) when it has any pixel: for a tracked object that is the centre of what is
    seen, which the box centre is not for a rotated or partly occluded target. With an
    empty or absent mask it is ``box_center_uv``, and the depth is then taken over a
    ``config.window_px`` square around it, not eroded. The depth is :func:`robust_depth` over the
    mask. ``camera`` is scaled to the mask's (colour image's) resolution when camera_info
    describes another one (:meth:`CameraModel.scaled_to`); pass the mask even when it
    is empty, since with ``mask=None`` the box centre is read in camera_info's pixels.

    Raises:
        ValueError: non-finite box centre, or image sizes that cannot be reconciled.
    """
    if not all(math.isfinite(c) for c in box_center_uv):
        raise ValueError(f"box centre must be finite, got {tuple(box_center_uv)}")
    if mask is not None and mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D array, got shape {mask.shape}")
    if mask is not None:
        camera = camera.scaled_to(mask.shape[1], mask.shape[0])
    region = mask if mask is not None and np.any(mask) else None
    if region is not None:
        moments = cv2.moments((region != 0).astype(np.uint8), binaryImage=True)
        pixel = (moments["m10"] / moments["m00"], moments["m01"] / moments["m00"])
        source = "mask_centroid"
    else:
        pixel = (float(box_center_uv[0]), float(box_center_uv[1]))
        source = "box_center"
        region = _window(camera, pixel, config.window_px)
        config = replace(config, erode_px=0)  # the window's sides are no object outline
    bearing = camera.ray(*pixel)
    if depth_m is None:
        return TargetLocation(pixel, source, bearing, None, None, None)
    depth = robust_depth(depth_m, region, config)
    if isinstance(depth, NoDepth):
        return TargetLocation(pixel, source, bearing, None, depth, None)
    position = camera.point(pixel[0], pixel[1], depth.depth_m)
    extent = None
    if source == "mask_centroid":
        _, _, width_px, height_px = cv2.boundingRect((region != 0).astype(np.uint8))
        extent = (width_px * depth.depth_m / camera.fx, height_px * depth.depth_m / camera.fy)
    return TargetLocation(pixel, source, bearing, position, depth, extent)


def _window(camera: CameraModel, center: tuple[float, float], side: int) -> np.ndarray:
    """A mask of the image size with a ``side`` square around ``center`` (clipped)."""
    window = np.zeros((camera.height, camera.width), np.uint8)
    left, top = int(round(center[0] - (side - 1) / 2)), int(round(center[1] - (side - 1) / 2))
    window[max(0, top) : max(0, top + side), max(0, left) : max(0, left + side)] = 1
    return window


# --------------------------------------------------------------------------- messages


def _finite_xyz(values: Sequence[float], what: str) -> tuple[float, float, float]:
    xyz = tuple(float(v) for v in values)
    if len(xyz) != 3 or not all(math.isfinite(v) for v in xyz):
        raise ValueError(f"{what} must be three finite numbers, got {tuple(values)}")
    return xyz  # type: ignore[return-value]


def detection3d(
    header: Header,
    target_id: str,
    class_id: str,
    score: float,
    position: Sequence[float],
    size_xyz: Sequence[float],
) -> Detection3D:
    """A Detection3D at ``position`` (metres, in ``header.frame_id``), axis-aligned box.

    ``header`` is the colour image's, so the frame is its optical frame. The one
    hypothesis repeats the position in its pose; its covariance is unknown (zeros).

    Raises:
        ValueError: a non-finite position or size, or a negative size.
    """
    x, y, z = _finite_xyz(position, "position")
    size = _finite_xyz(size_xyz, "size")
    if min(size) < 0:
        raise ValueError(f"size must not be negative, got {size}")
    msg = Detection3D()
    msg.header = header
    msg.id = target_id
    msg.bbox.center.position.x, msg.bbox.center.position.y, msg.bbox.center.position.z = x, y, z
    msg.bbox.size.x, msg.bbox.size.y, msg.bbox.size.z = size
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = class_id
    hypothesis.hypothesis.score = float(score)
    hypothesis.pose.pose.position.x, hypothesis.pose.pose.position.y, hypothesis.pose.pose.position.z = x, y, z
    msg.results = [hypothesis]
    return msg


def pose_stamped(header: Header, position: Sequence[float]) -> PoseStamped:
    """The target's position with identity orientation, in ``header.frame_id``.

    What Nav2's following server reads as the object pose.
    """
    x, y, z = _finite_xyz(position, "position")
    msg = PoseStamped()
    msg.header = header
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, z
    return msg
