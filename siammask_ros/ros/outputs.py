"""What the node publishes for each processed image, and on which topic.

Every output carries the header (stamp and frame_id) of the image it was computed on:
- ``~/result`` (siammask_ros/TrackingResult): every processed image, every target, with
  its state; the one message a follower needs.
- ``~/detections`` (vision_msgs/Detection2DArray): only TRACKING targets; empty otherwise.
- ``~/detections_3d`` (vision_msgs/Detection3DArray): TRACKING targets with a 3-D position.
- ``~/target_pose`` (geometry_msgs/PoseStamped): the followed target, only while it is
  TRACKING and has a 3-D position.
- ``~/mask`` (mono8 label image) whenever a target is tracked; ``~/debug_image`` (bgr8
  overlay) only while someone subscribes.

The publishers are lifecycle publishers: nothing goes out unless the node is active.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from geometry_msgs.msg import PoseStamped
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, Detection3DArray

from siammask_ros.io.render import draw_targets
from siammask_ros.msg import TrackingResult
from siammask_ros.ros.conversions import (
    array_to_image,
    detections_from_reports,
    label_image,
    tracked_target,
    tracking_result,
)
from siammask_ros.ros.frames import Frame
from siammask_ros.ros.spatial import TargetLocation, detection3d, pose_stamped
from siammask_ros.ros.targets import TargetReport
from siammask_ros.tracker import TrackState, to_bgr

__all__ = ["OutputPublishers", "followed_target"]

OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def followed_target(
    reports: Sequence[TargetReport], locations: Mapping[str, TargetLocation], wanted_id: str
) -> TargetReport | None:
    """The target for ``~/target_pose``: ``wanted_id`` (or the first TRACKING target when
    empty), only while TRACKING with a 3-D position."""
    for report in reports:
        if wanted_id and report.target_id != wanted_id:
            continue
        location = locations.get(report.target_id)
        if report.state is TrackState.TRACKING and location is not None and location.position is not None:
            return report
    return None


@dataclass
class OutputPublishers:
    """The node's output publishers (created on configure, destroyed on cleanup)."""

    node: Any  # the LifecycleNode; only its create/destroy methods are used

    def __post_init__(self) -> None:
        create = self.node.create_lifecycle_publisher
        self.result = create(TrackingResult, "~/result", OUTPUT_QOS)
        self.detections = create(Detection2DArray, "~/detections", OUTPUT_QOS)
        self.detections_3d = create(Detection3DArray, "~/detections_3d", OUTPUT_QOS)
        self.target_pose = create(PoseStamped, "~/target_pose", OUTPUT_QOS)
        self.mask = create(Image, "~/mask", OUTPUT_QOS)
        self.debug_image = create(Image, "~/debug_image", OUTPUT_QOS)

    def destroy(self) -> None:
        for publisher in (self.result, self.detections, self.detections_3d, self.target_pose, self.mask,
                          self.debug_image):
            self.node.destroy_lifecycle_publisher(publisher)

    def publish(
        self,
        frame: Frame,
        reports: Sequence[TargetReport],
        locations: Mapping[str, TargetLocation],
        latency_ms: float,
        values: Mapping[str, Any],
    ) -> None:
        header = frame.header
        targets = [
            tracked_target(r, *_position_and_bearing(locations.get(r.target_id))) for r in reports
        ]
        self.result.publish(tracking_result(header, targets, latency_ms))
        self.detections.publish(detections_from_reports(reports, header))
        self._publish_3d(header, reports, locations, values["follow.target_id"])
        if reports and values["publish.mask"]:
            height, width = frame.image.shape[:2]
            self.mask.publish(array_to_image(label_image(reports, height, width), "mono8", header))
        self._publish_debug(frame, reports, values)

    def _publish_3d(self, header, reports, locations, wanted_id: str) -> None:
        array = Detection3DArray(header=header)
        for report in reports:
            location = locations.get(report.target_id)
            if report.state is TrackState.TRACKING and location is not None and location.position is not None:
                width, height = location.extent_m or (0.0, 0.0)
                array.detections.append(
                    detection3d(header, report.target_id, report.class_id, report.result.confidence,
                                location.position, (width, height, 0.0))
                )
        self.detections_3d.publish(array)
        followed = followed_target(reports, locations, wanted_id)
        if followed is not None:
            self.target_pose.publish(pose_stamped(header, locations[followed.target_id].position))

    def _publish_debug(self, frame: Frame, reports: Sequence[TargetReport], values: Mapping[str, Any]) -> None:
        if not values["publish.debug_image"] or self.debug_image.get_subscription_count() == 0:
            return
        drawn = [(r.target_id, r.result) for r in reports if r.result is not None and r.state is not TrackState.IDLE]
        image = draw_targets(to_bgr(frame.image, frame.color_order), drawn)
        self.debug_image.publish(array_to_image(image, "bgr8", frame.header))


def _position_and_bearing(location: TargetLocation | None) -> tuple:
    if location is None:
        return None, None
    return location.position, location.bearing
