"""A synthetic camera: a textured object moving over a cluttered background.

Used by the node tests (which know the object's exact mask in every frame) and, run as a
script, to measure the tracker node's latency:

    PYTHONPATH=. python test/synthetic_camera.py --width 640 --height 480 --rate 30 --duration 20 \\
        --targets 1 --tracker /siammask_tracker

publishes ``/image`` (remap the node's ``image`` there), selects the object (and with
``--targets N`` N - 1 more boxes of the background) through ``<tracker>/select_target``
and prints the percentiles of (arrival of ``~/result`` minus the image's stamp), which is
the publish-to-output latency on one machine.

Run it with the network rule of this repository: localhost-only discovery (set here if
unset), a ROS_DOMAIN_ID of your own, and ideally inside ``unshare -n``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

BACKGROUND_VIDEO = Path("/usr/share/doc/opencv-doc/opencv4/examples/data/vtest.avi")


class Scene:
    """Frames of an elliptical, striped object moving on a Lissajous path.

    ``render(i)`` gives frame ``i`` (BGR uint8) and the object's boolean mask; with
    ``visible=False`` the object is left out (fully occluded). The background is real
    footage when opencv-doc's vtest.avi exists, else a fixed random texture.
    """

    def __init__(self, width: int = 320, height: int = 240, seed: int = 0, period: int = 120) -> None:
        self.width, self.height, self.period = width, height, period
        rng = np.random.default_rng(seed)
        self.axes = (max(6, round(width * 0.09)), max(8, round(height * 0.16)))
        self._background = self._load_background(rng)
        self._texture = self._object_texture(rng)

    def _load_background(self, rng: np.random.Generator) -> list[np.ndarray]:
        frames = []
        if BACKGROUND_VIDEO.is_file():
            capture = cv2.VideoCapture(str(BACKGROUND_VIDEO))
            while len(frames) < 60:
                ok, frame = capture.read()
                if not ok:
                    break
                frames.append(cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA))
            capture.release()
        if not frames:
            noise = rng.integers(50, 206, (self.height // 8 + 1, self.width // 8 + 1, 3), dtype=np.uint8)
            base = cv2.resize(noise, (self.width, self.height), interpolation=cv2.INTER_CUBIC)
            for _ in range(12):  # clutter: grey-ish blocks of other sizes
                x, y = int(rng.integers(0, self.width)), int(rng.integers(0, self.height))
                w, h = int(rng.integers(8, self.width // 4)), int(rng.integers(8, self.height // 4))
                color = tuple(int(c) for c in rng.integers(40, 200, 3))
                cv2.rectangle(base, (x, y), (x + w, y + h), color, -1)
            frames = [base]
        return frames

    def _object_texture(self, rng: np.random.Generator) -> np.ndarray:
        size = 2 * max(self.axes) + 2
        yy, xx = np.mgrid[0:size, 0:size]
        stripes = ((xx + yy) // 4) % 2
        texture = np.empty((size, size, 3), np.uint8)
        texture[...] = (30, 60, 230)  # red-orange
        texture[stripes == 1] = (240, 240, 40)  # cyan-ish
        texture += rng.integers(0, 15, texture.shape, dtype=np.uint8)
        return texture

    def center(self, i: int) -> tuple[float, float]:
        t = 2 * np.pi * i / self.period
        margin_x, margin_y = self.axes[0] + 4, self.axes[1] + 4
        cx = self.width / 2 + (self.width / 2 - margin_x) * 0.8 * np.sin(t)
        cy = self.height / 2 + (self.height / 2 - margin_y) * 0.6 * np.sin(2 * t)
        return float(cx), float(cy)

    def box(self, i: int) -> tuple[float, float, float, float]:
        """The object's axis-aligned box (x, y, w, h) in frame ``i``."""
        cx, cy = self.center(i)
        a, b = self.axes
        return cx - a, cy - b, 2.0 * a, 2.0 * b

    def render(self, i: int, visible: bool = True) -> tuple[np.ndarray, np.ndarray]:
        frame = self._background[i % len(self._background)].copy()
        mask = np.zeros((self.height, self.width), np.uint8)
        if visible:
            cx, cy = self.center(i)
            cv2.ellipse(mask, (round(cx), round(cy)), self.axes, 0, 0, 360, 1, -1)
            size = self._texture.shape[0]
            x0, y0 = round(cx) - size // 2, round(cy) - size // 2
            placed = np.zeros_like(frame)
            xs, ys = slice(max(x0, 0), min(x0 + size, self.width)), slice(max(y0, 0), min(y0 + size, self.height))
            placed[ys, xs] = self._texture[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
            frame[mask == 1] = placed[mask == 1]
        return frame, mask.astype(bool)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of publishing")
    parser.add_argument("--topic", default="/image", help="image topic to publish")
    parser.add_argument("--tracker", default="/siammask_tracker", help="the tracker node's full name")
    parser.add_argument("--targets", type=int, default=1, help="targets to select at the start (0 = none)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds excluded from the statistics")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="synthetic_camera_log_"))

    import rclpy
    from rclpy.qos import qos_profile_sensor_data

    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from siammask_ros.msg import TrackingResult
    from siammask_ros.ros.conversions import array_to_image
    from siammask_ros.srv import SelectTarget

    rclpy.init()
    node = rclpy.create_node("synthetic_camera")
    clock = node.get_clock()
    scene = Scene(args.width, args.height)
    publisher = node.create_publisher(Image, args.topic, qos_profile_sensor_data)
    arrivals: list[tuple[float, float, int]] = []  # (arrival s, stamp s, targets)

    def on_result(msg: TrackingResult) -> None:
        now = clock.now().nanoseconds * 1e-9
        arrivals.append((now, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, len(msg.targets)))

    node.create_subscription(TrackingResult, f"{args.tracker}/result", on_result, 100)
    frame_index = 0

    def publish() -> None:
        nonlocal frame_index
        frame, _ = scene.render(frame_index)
        header = Header()
        header.stamp = clock.now().to_msg()
        header.frame_id = "synthetic_camera"
        publisher.publish(array_to_image(frame, "bgr8", header))
        frame_index += 1

    selector = node.create_client(SelectTarget, f"{args.tracker}/select_target")
    if not selector.wait_for_service(timeout_sec=30.0):
        print(f"no service {args.tracker}/select_target", file=sys.stderr)
        return 1
    while not arrivals:  # until the tracker has seen a frame
        publish()
        rclpy.spin_once(node, timeout_sec=0.2)
    x, y, w, h = scene.box(frame_index - 1)
    boxes = [(x, y, w, h)] + [  # more targets: background patches spread over the frame
        ((k + 1) * args.width / (args.targets + 1) - w / 2, (k % 2 + 1) * args.height / 3 - h / 2, w, h)
        for k in range(args.targets - 1)
    ]
    for box_x, box_y, box_w, box_h in boxes[: args.targets]:
        request = SelectTarget.Request()
        request.box.center.position.x, request.box.center.position.y = box_x + box_w / 2, box_y + box_h / 2
        request.box.size_x, request.box.size_y = box_w, box_h
        future = selector.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
        print(future.result().message)
    arrivals.clear()
    timer = node.create_timer(1.0 / args.rate, publish)
    start = clock.now().nanoseconds * 1e-9
    first_frame = frame_index
    while clock.now().nanoseconds * 1e-9 - start < args.duration:
        rclpy.spin_once(node, timeout_sec=0.05)
    timer.cancel()
    published = frame_index - first_frame
    measured = np.array([arrival - stamp for arrival, stamp, _ in arrivals if stamp - start >= args.warmup]) * 1e3
    if measured.size == 0:
        print("no result received after the warm-up", file=sys.stderr)
        return 1
    print(
        f"{args.width}x{args.height}, {args.targets} target(s), at {args.rate:g} Hz for {args.duration:g} s: "
        f"{published} published, "
        f"{len(arrivals)} processed ({len(arrivals) / args.duration:.1f} Hz); latency after {args.warmup:g} s "
        f"warm-up: p50 {np.percentile(measured, 50):.1f} ms, p99 {np.percentile(measured, 99):.1f} ms, "
        f"max {measured.max():.1f} ms (n={measured.size})"
    )
    node.destroy_node()
    rclpy.shutdown()
    return 0


class RotatingScene:
    """An elongated, striped ellipse turning in place on a cluttered, textured background.

    Upright (angle 0) the ellipse's short axis lies along the image x axis, so its true
    rotated box is ``(2 * axes[0], 2 * axes[1])`` at ``angle(i)``, in the convention of
    ``RotatedBox``: radians from +x towards +y (clockwise on screen), ``width`` the side
    the angle turns +x onto. The angle follows ``max_angle * sin(2 pi i / period)``: 0,
    up to +max_angle, back through 0 to -max_angle and back. The stripes and speckle are
    painted in the object's own frame, so they turn with it; the background is fixed.

    ``render(i)`` gives frame ``i`` (BGR uint8) and the object's boolean mask;
    ``box(i)`` the mask's axis-aligned box ``(x, y, w, h)`` for initialising a tracker.
    """

    def __init__(
        self,
        width: int = 320,
        height: int = 240,
        axes: tuple[float, float] = (18.0, 60.0),
        max_angle: float = np.radians(60.0),
        period: int = 120,
        seed: int = 0,
    ) -> None:
        if not (0 < axes[0] < axes[1]):
            raise ValueError(f"axes must be (short, long) semi-axes with 0 < short < long, got {axes}")
        if 2 * axes[1] + 4 > min(width, height):
            raise ValueError(f"an ellipse with semi-axes {axes} does not fit a {width}x{height} frame at every angle")
        self.width, self.height, self.period = width, height, period
        self.axes, self.max_angle = (float(axes[0]), float(axes[1])), float(max_angle)
        self.center = (width / 2, height / 2)
        rng = np.random.default_rng(seed)
        self._background = self._cluttered_background(rng)
        self._texture = self._striped_texture(rng)

    def angle(self, i: int) -> float:
        """True angle of frame ``i`` in radians."""
        return float(self.max_angle * np.sin(2 * np.pi * i / self.period))

    def _cluttered_background(self, rng: np.random.Generator) -> np.ndarray:
        # Smooth colour blotches (16 px cells; pixel-scale noise is harder than real
        # backgrounds for the bundled model) under blocks and bars of other colours.
        noise = rng.integers(80, 176, (self.height // 16 + 1, self.width // 16 + 1, 3), dtype=np.uint8)
        base = cv2.resize(noise, (self.width, self.height), interpolation=cv2.INTER_CUBIC)
        # The blocks stay off the disc the object sweeps: the bundled model's masks leak
        # into touching blocks, and this scene is about the box's orientation.
        keep_out = self.axes[1] + 8
        placed = 0
        while placed < 25:
            x, y = int(rng.integers(0, self.width)), int(rng.integers(0, self.height))
            w, h = int(rng.integers(6, self.width // 5)), int(rng.integers(6, self.height // 5))
            nearest_x = min(max(self.center[0], x), x + w)
            nearest_y = min(max(self.center[1], y), y + h)
            if np.hypot(nearest_x - self.center[0], nearest_y - self.center[1]) < keep_out:
                continue
            color = tuple(int(c) for c in rng.integers(30, 220, 3))
            cv2.rectangle(base, (x, y), (x + w, y + h), color, -1)
            placed += 1
        return base

    def _striped_texture(self, rng: np.random.Generator) -> np.ndarray:
        """Object-frame texture, centred: bands across the long axis plus speckle."""
        side = 2 * int(np.ceil(self.axes[1])) + 3
        rows = np.arange(side)[:, None]
        bands = np.broadcast_to((rows // 6) % 2, (side, side))
        texture = np.empty((side, side, 3), np.uint8)
        texture[...] = (30, 60, 220)  # red-orange
        texture[bands == 1] = (225, 225, 40)  # cyan-ish
        texture[:, side // 2 - 2 : side // 2 + 2] = (20, 20, 20)  # a dark spine along the long axis
        texture += rng.integers(0, 20, texture.shape, dtype=np.uint8)
        return texture

    def _object_to_frame(self, angle: float) -> np.ndarray:
        """2x3 affine from texture pixels to frame pixels for ``angle``."""
        c, s = np.cos(angle), np.sin(angle)
        rotation = np.array([[c, -s], [s, c]])  # turns +x towards +y by ``angle``
        texture_centre = (self._texture.shape[1] - 1) / 2
        shift = np.asarray(self.center) - rotation @ np.array([texture_centre, texture_centre])
        return np.hstack([rotation, shift[:, None]])

    def mask(self, i: int) -> np.ndarray:
        """The object's boolean mask in frame ``i`` (pixel centres inside the ellipse)."""
        angle = self.angle(i)
        yy, xx = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        dx, dy = xx - self.center[0], yy - self.center[1]
        c, s = np.cos(angle), np.sin(angle)
        u, v = c * dx + s * dy, -s * dx + c * dy  # object frame: u along the width side
        return (u / self.axes[0]) ** 2 + (v / self.axes[1]) ** 2 <= 1.0

    def box(self, i: int) -> tuple[float, float, float, float]:
        """Axis-aligned box ``(x, y, w, h)`` of the mask in frame ``i``."""
        ys, xs = np.nonzero(self.mask(i))
        return float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)

    def render(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        mask = self.mask(i)
        placed = cv2.warpAffine(
            self._texture, self._object_to_frame(self.angle(i)), (self.width, self.height), flags=cv2.INTER_LINEAR
        )
        frame = self._background.copy()
        frame[mask] = placed[mask]
        return frame, mask


if __name__ == "__main__":
    sys.exit(main())


def sliding_block(index: int, seed: int = 0) -> np.ndarray:
    """Frame ``index`` of a tiny clip: a 40x60 orange block with a white band sliding right
    3 px a frame over dark noise (320x240 BGR). Frame 0's block is at (100, 90, 40, 60)."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 60, (240, 320, 3), dtype=np.uint8)
    x = 100 + 3 * index
    frame[90:150, x : x + 40] = (40, 160, 230)
    frame[100:110, x + 5 : x + 35] = (250, 250, 250)
    return frame
