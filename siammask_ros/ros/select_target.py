"""``select_target``: drag a box around an object in a live image to start tracking it.

    ros2 run siammask_ros select_target --image /camera/color/image_raw

Shows the image topic in a window. Press SPACE (or s) to freeze the current frame, drag a
box around the target, and press ENTER or SPACE to send it to the tracker's
``~/select_target`` service (c cancels the box). The request carries the frozen frame
itself, so the tracker starts on that very frame however long the selection took. Press
q or ESC to quit.

Needs an OpenCV build with a GUI (the ``opencv-python`` wheel or the distribution's
python3-opencv); ``opencv-python-headless`` has none, and the tool says so.
"""

from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np

__all__ = ["gui_problem", "main"]

WINDOW = "siammask_ros: SPACE to select, q to quit"
_KEYS_SELECT = (ord(" "), ord("s"))
_KEYS_QUIT = (ord("q"), 27)


def gui_problem() -> str | None:
    """Why no window can be shown here, or None if one can."""
    gui = [line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")]
    if gui and gui[0].split(":", 1)[1].strip().upper() == "NONE":
        return (
            "this OpenCV build has no GUI (opencv-python-headless?); install opencv-python or "
            "python3-opencv to use select_target, or call the ~/select_target service directly"
        )
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set); run select_target on a desktop or with X forwarding (ssh -X)"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="select_target",
        description="Show an image topic, drag a box around an object and start the SiamMask tracker on it.",
        epilog="Keys: SPACE/s freeze and select, ENTER/SPACE confirm the box, c cancel, q/ESC quit.",
    )
    parser.add_argument("--image", default="image", help="image topic to show (default: %(default)s)")
    parser.add_argument(
        "--tracker", default="/siammask_tracker",
        help="full name of the tracker node; its service is <tracker>/select_target (default: %(default)s)",
    )
    parser.add_argument(
        "--reliability", choices=("best_effort", "reliable"), default="best_effort",
        help="QoS reliability of the image subscription (default: %(default)s)",
    )
    parser.add_argument("--target-id", default="", help="id for the target (default: the tracker assigns one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from rclpy.utilities import remove_ros_args

    argv = sys.argv if argv is None else argv
    args = build_parser().parse_args(remove_ros_args(argv)[1:])
    problem = gui_problem()
    if problem:
        print(f"select_target: {problem}", file=sys.stderr)
        return 2
    rclpy.init(args=argv)
    try:
        return _Selector(args).run()
    except KeyboardInterrupt:
        return 0
    finally:
        cv2.destroyAllWindows()
        if rclpy.ok():
            rclpy.shutdown()


class _Selector:
    def __init__(self, args: argparse.Namespace) -> None:
        import rclpy
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from siammask_ros.srv import SelectTarget

        self._rclpy = rclpy
        self._args = args
        self._node = rclpy.create_node("siammask_select_target")
        reliability = ReliabilityPolicy.RELIABLE if args.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(depth=1, reliability=reliability, history=HistoryPolicy.KEEP_LAST)
        self._latest = None
        self._node.create_subscription(Image, args.image, self._on_image, qos)
        self._client = self._node.create_client(SelectTarget, f"{args.tracker}/select_target")
        self._request_type = SelectTarget.Request

    def _on_image(self, msg) -> None:
        self._latest = msg

    def run(self) -> int:
        from siammask_ros.ros.conversions import ImageConversionError, image_to_array
        from siammask_ros.tracker import to_bgr

        log = self._node.get_logger()
        log.info(f"waiting for images on '{self._args.image}'")
        while self._rclpy.ok():
            self._rclpy.spin_once(self._node, timeout_sec=0.03)
            msg = self._latest
            if msg is not None:
                try:
                    frame = to_bgr(*image_to_array(msg))
                except (ImageConversionError, ValueError) as exc:
                    log.warn(f"cannot show image: {exc}", throttle_duration_sec=5.0)
                    continue
                cv2.imshow(WINDOW, frame)
            key = cv2.waitKey(10) & 0xFF
            if key in _KEYS_QUIT:
                return 0
            if key in _KEYS_SELECT and msg is not None:
                self._select(frame, msg)
        return 0

    def _select(self, frame: np.ndarray, image) -> None:
        x, y, w, h = cv2.selectROI(WINDOW, frame, showCrosshair=True, fromCenter=False)
        if w <= 0 or h <= 0:
            return
        # The frozen image travels with the request: however long the box took to draw,
        # the tracker starts on the very frame it was drawn on.
        request = self._request_type(stamp=image.header.stamp, image=image, target_id=self._args.target_id)
        request.box.center.position.x, request.box.center.position.y = x + w / 2, y + h / 2
        request.box.size_x, request.box.size_y = float(w), float(h)
        log = self._node.get_logger()
        if not self._client.wait_for_service(timeout_sec=5.0):
            log.error(f"service {self._client.srv_name} is not available: is the tracker running?")
            return
        future = self._client.call_async(request)
        self._rclpy.spin_until_future_complete(self._node, future, timeout_sec=30.0)
        response = future.result()
        if response is None:
            log.error("no answer from the tracker within 30 s")
        elif response.success:
            log.info(response.message)
        else:
            log.error(f"refused: {response.message}")


if __name__ == "__main__":
    sys.exit(main())
