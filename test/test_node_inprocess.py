"""The tracker node in this process (real rclpy context and model), for failures that cannot
be provoked from outside: a device error while a selection starts a target.

The error is injected by replacing the session's ``start`` with one that raises what CUDA
raises when it runs out of memory; everything else is the real node.
"""

from __future__ import annotations

import sys

import pytest
import rclpy
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.lifecycle import TransitionCallbackReturn
from std_msgs.msg import Header

from siammask_ros.model import default_weights_path
from siammask_ros.ros.conversions import array_to_image
from siammask_ros.ros.node import TrackerNode
from siammask_ros.srv import SelectTarget
from synthetic_camera import Scene

pytestmark = pytest.mark.skipif(default_weights_path() is None, reason="needs the bundled default model")

MESSAGE_INFO = {"publication_sequence_number": 1, "reception_sequence_number": None,
                "source_timestamp": 0, "received_timestamp": 0}


@pytest.fixture
def node():
    switch_interval = sys.getswitchinterval()
    context = Context()
    rclpy.init(context=context)
    node = TrackerNode(context=context, cli_args=["--ros-args", "-p", "device:=cpu", "-p", "cpu_threads:=1"])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        sys.setswitchinterval(switch_interval)  # the torch backend shortens it process-wide


def select(node: TrackerNode, box, stamp: Time) -> SelectTarget.Response:
    x, y, w, h = box
    request = SelectTarget.Request(stamp=stamp)
    request.box.center.position.x, request.box.center.position.y = x + w / 2, y + h / 2
    request.box.size_x, request.box.size_y = float(w), float(h)
    return node._on_select_target(request, SelectTarget.Response())


def test_a_device_error_during_a_selection_is_refused_and_the_node_stays_usable(node, monkeypatch):
    scene = Scene(160, 120)
    header = Header(stamp=Time(sec=5, nanosec=0), frame_id="cam")
    node._on_image(array_to_image(scene.render(0)[0], "bgr8", header), MESSAGE_INFO)

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(node._session, "start", out_of_memory)
    refused = select(node, scene.box(0), header.stamp)
    assert not refused.success
    assert refused.message == "could not start tracking: RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB"
    assert node._stats.count("rejected_selection_failed") == 1

    monkeypatch.undo()
    started = select(node, scene.box(0), header.stamp)
    assert started.success, started.message


def test_the_torch_backend_shortens_the_gil_switch_interval(node):
    from siammask_ros.ros.node import TORCH_SWITCH_INTERVAL_S

    assert node.get_parameter("backend").value == "torch"
    assert sys.getswitchinterval() == pytest.approx(TORCH_SWITCH_INTERVAL_S)
