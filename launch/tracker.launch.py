"""Start the SiamMask tracker (a managed lifecycle node), optionally with rviz2 showing its debug image.

    ros2 launch siammask_ros tracker.launch.py image:=/camera/color/image_raw \\
        weights:=/path/to/SiamMask_VOT.pth device:=cuda rviz:=true

The node configures and activates itself (autostart:=true); with autostart:=false it waits
in the unconfigured state for a lifecycle manager (`ros2 lifecycle set ... configure`).
Then select a target with `ros2 run siammask_ros select_target --image /camera/color/image_raw`,
the ~/select_target service, or a vision_msgs/Detection2D on ~/target.

DDS profile: unless FASTRTPS_DEFAULT_PROFILES_FILE or FASTDDS_DEFAULT_PROFILES_FILE is
already set, the node gets `dds_profile` (default: the shipped large-image profile,
docs/TRANSPORT.md); dds_profile:='' sets none.
"""

import os
from collections.abc import Mapping

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "siammask_ros"
# Launch arguments that override the parameter file only when given (non-empty).
OVERRIDES = ("weights", "device")
# Fast DDS 3.x (Kilted and newer) reads the first name, 2.x (Humble, Jazzy) the second.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
BOOLEAN = ["true", "false"]
LOG_LEVELS = ["debug", "info", "warn", "error", "fatal"]


def dds_profile_environment(environ: Mapping[str, str], requested: str) -> tuple[dict[str, str], str]:
    """The profile variables to give the node, and a sentence saying which profile it uses.

    A profile already named in the launching environment (either variable, non-empty) is
    the user's choice and is never replaced: the node inherits it and nothing is added.
    Otherwise `requested` (the dds_profile argument) is set under both names; an empty
    `requested` sets nothing (Fast DDS's built-in transports). Raises FileNotFoundError
    when `requested` names no file.
    """
    inherited = {name: environ[name] for name in PROFILE_VARIABLES if environ.get(name)}
    if inherited:
        names = ", ".join(f"{name}={value}" for name, value in inherited.items())
        return {}, f"DDS profile from the environment ({names}); dds_profile is not used"
    if not requested:
        return {}, "no DDS profile (dds_profile is empty): Fast DDS's built-in transports"
    if not os.path.isfile(requested):
        raise FileNotFoundError(f"dds_profile {requested!r} is not a file")
    return {name: requested for name in PROFILE_VARIABLES}, f"DDS profile {requested}"


def tracker_node(context, share: str) -> list:
    overrides = {
        name: ParameterValue(value, value_type=str)
        for name in OVERRIDES
        if (value := LaunchConfiguration(name).perform(context))
    }
    switches = {
        "use_sim_time": LaunchConfiguration("use_sim_time").perform(context) == "true",
        "autostart": LaunchConfiguration("autostart").perform(context) == "true",
    }
    profile_env, profile_note = dds_profile_environment(
        os.environ, LaunchConfiguration("dds_profile").perform(context)
    )
    return [
        LogInfo(msg=f"siammask_tracker: {profile_note}"),
        LifecycleNode(
            package="siammask_ros",
            executable="siammask_tracker",
            name="siammask_tracker",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), overrides, switches],
            remappings=[("image", LaunchConfiguration("image"))],
            ros_arguments=["--log-level", LaunchConfiguration("log_level")],
            additional_env=profile_env,
            output="screen",
            emulate_tty=True,
        ),
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
            "autostart", default_value="true", choices=BOOLEAN,
            description="The node configures and activates itself; false = it waits for a lifecycle manager",
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", choices=BOOLEAN,
            description="Use the /clock topic (simulation, bag replay with --clock) instead of the system clock",
        ),
        DeclareLaunchArgument(
            "log_level", default_value="info", choices=LOG_LEVELS,
            description="Log level of the tracker node (--ros-args --log-level)",
        ),
        DeclareLaunchArgument(
            "dds_profile", default_value=os.path.join(share, "config", "fastdds_large_images.xml"),
            description="Fast DDS XML profile for the node, used only when neither FASTRTPS_DEFAULT_PROFILES_FILE "
                        "nor FASTDDS_DEFAULT_PROFILES_FILE is set; empty = none (see docs/TRANSPORT.md)",
        ),
        DeclareLaunchArgument(
            "rviz", default_value="false", choices=BOOLEAN,
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
