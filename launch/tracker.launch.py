"""Start the SiamMask tracker node, optionally with rviz2 showing its debug image.

    ros2 launch siammask_ros tracker.launch.py image:=/camera/color/image_raw \\
        weights:=/path/to/SiamMask_VOT.pth device:=cuda rviz:=true

Then select a target with `ros2 run siammask_ros select_target --image /camera/color/image_raw`,
the ~/select_target service, or a vision_msgs/Detection2D on ~/target.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "siammask_ros"
# Launch arguments that override the parameter file only when given (non-empty).
OVERRIDES = ("weights", "device")


def tracker_node(context, share: str) -> list:
    overrides = {
        name: ParameterValue(value, value_type=str)
        for name in OVERRIDES
        if (value := LaunchConfiguration(name).perform(context))
    }
    dds_profile = os.path.join(share, "config", "fastdds_large_images.xml")
    return [
        Node(
            package="siammask_ros",
            executable="siammask_tracker",
            name="siammask_tracker",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=[("image", LaunchConfiguration("image"))],
            # Fast DDS 3.x reads the first name, 2.x (Humble, Jazzy) the second.
            additional_env={
                "FASTDDS_DEFAULT_PROFILES_FILE": dds_profile,
                "FASTRTPS_DEFAULT_PROFILES_FILE": dds_profile,
            },
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    arguments = [
        DeclareLaunchArgument(
            "image", default_value="image",
            description="Camera image topic to track in (sensor_msgs/Image, e.g. /camera/color/image_raw)",
        ),
        DeclareLaunchArgument(
            "params_file", default_value=os.path.join(share, "config", "tracker.yaml"),
            description="YAML file with the node's parameters",
        ),
        DeclareLaunchArgument(
            "weights", default_value="",
            description="SiamMask checkpoint (.pth); empty = the params file's value (empty there = bundled model)",
        ),
        DeclareLaunchArgument(
            "device", default_value="",
            description="Where the network runs: auto, cpu, cuda or cuda:N; empty = the params file's value",
        ),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="Namespace of the tracker node (its topics are ~/mask, ~/detection, ...)",
        ),
        DeclareLaunchArgument(
            "rviz", default_value="false", choices=["true", "false"],
            description="Also start rviz2 showing the debug image",
        ),
    ]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="siammask_rviz",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", os.path.join(share, "config", "tracker.rviz")],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription([*arguments, OpaqueFunction(function=tracker_node, args=[share]), rviz])
