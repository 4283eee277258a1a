"""A synthetic camera: a textured object moving over a cluttered background.

Used by the node tests (which know the object's exact mask in every frame) and, run as a
script, to measure the tracker node's latency:

    PYTHONPATH=. python test/synthetic_camera.py --width 640 --height 480 --rate 30 --duration 20 \\
        --select --tracker /siammask_tracker

publishes ``/image`` (remap the node's ``image`` there), selects the object through
``<tracker>/select_target`` and prints the percentiles of (arrival of ``~/status`` minus
the image's stamp), which is the publish-to-output latency on one machine.

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
    parser.add_argument("--select", action="store_true", help="select the object at the start")
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
    from siammask_ros.msg import TrackingStatus
    from siammask_ros.ros.conversions import array_to_image
    from siammask_ros.srv import SelectTarget

    rclpy.init()
    node = rclpy.create_node("synthetic_camera")
    clock = node.get_clock()
    scene = Scene(args.width, args.height)
    publisher = node.create_publisher(Image, args.topic, qos_profile_sensor_data)
    arrivals: list[tuple[float, float, int]] = []  # (arrival s, stamp s, state)

    def on_status(msg: TrackingStatus) -> None:
        now = clock.now().nanoseconds * 1e-9
        arrivals.append((now, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, msg.state))

    node.create_subscription(TrackingStatus, f"{args.tracker}/status", on_status, 100)
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
    if args.select:
        x, y, w, h = scene.box(frame_index - 1)
        request = SelectTarget.Request()
        request.box.center.position.x, request.box.center.position.y = x + w / 2, y + h / 2
        request.box.size_x, request.box.size_y = w, h
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
        print("no status received after the warm-up", file=sys.stderr)
        return 1
    print(
        f"{args.width}x{args.height} at {args.rate:g} Hz for {args.duration:g} s: {published} published, "
        f"{len(arrivals)} processed ({len(arrivals) / args.duration:.1f} Hz); latency after {args.warmup:g} s "
        f"warm-up: p50 {np.percentile(measured, 50):.1f} ms, p99 {np.percentile(measured, 99):.1f} ms, "
        f"max {measured.max():.1f} ms (n={measured.size})"
    )
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
