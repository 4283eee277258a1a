"""The launch file, parameter file, DDS profile and rviz layout, checked without launch.

launch and launch_ros are not installable from PyPI, so the launch file is read as
Python source: what it declares, what it references and what it starts. Its one piece of
decision logic, which DDS profile the node gets, is a plain function executed here.
"""

import ast
import os
import re
from collections.abc import Mapping
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import pytest
import yaml

from siammask_ros.ros.params import PARAMETER_NAMES, PARAMETERS, PRESET_PARAMETERS, preset_defaults
from siammask_ros.ros.select_target import gui_problem

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "tracker.launch.py"
YAML_FILE = ROOT / "config" / "tracker.yaml"
DDS_PROFILE = ROOT / "config" / "fastdds_large_images.xml"
RVIZ = ROOT / "config" / "tracker.rviz"


@pytest.fixture(scope="module")
def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
    ]


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def constant(node: ast.expr | None):
    return node.value if isinstance(node, ast.Constant) else None


def module_constants(tree: ast.Module) -> dict:
    """The launch file's top-level NAME = <literal> assignments."""
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return values


def literal(tree: ast.Module, node: ast.expr | None):
    """A keyword's value: a literal, or the module constant it names."""
    if isinstance(node, ast.Name):
        return module_constants(tree)[node.id]
    return ast.literal_eval(node) if node is not None else None


def declared_arguments(tree: ast.Module) -> dict[str, ast.Call]:
    return {constant(call.args[0]): call for call in calls(tree, "DeclareLaunchArgument")}


def test_every_launch_argument_has_a_description(launch_tree):
    declared = declared_arguments(launch_tree)
    for name, call in declared.items():
        description = constant(keyword(call, "description"))
        if isinstance(keyword(call, "description"), ast.JoinedStr | ast.BinOp):
            description = ast.unparse(keyword(call, "description"))
        assert isinstance(description, str) and len(description) > 10, f"argument {name} lacks a description"
    assert set(declared) == {
        "image", "params_file", "weights", "device", "namespace", "rviz",
        "autostart", "use_sim_time", "log_level", "dds_profile",
    }
    choices = {name: literal(launch_tree, keyword(call, "choices")) for name, call in declared.items()}
    for switch in ("rviz", "autostart", "use_sim_time"):
        assert choices[switch] == ["true", "false"], switch
    assert choices["log_level"] == ["debug", "info", "warn", "error", "fatal"]  # rcutils severities
    # Free-form values (paths, topics, device strings) have no choices.
    assert all(choices[name] is None for name in ("image", "params_file", "weights", "device", "namespace",
                                                  "dds_profile"))
    defaults = {name: literal(launch_tree, keyword(call, "default_value")) for name, call in declared.items()
                if isinstance(keyword(call, "default_value"), ast.Constant)}
    assert defaults["autostart"] == "true" and defaults["use_sim_time"] == "false"
    assert defaults["log_level"] == "info"
    for name, default in defaults.items():
        assert choices[name] is None or default in choices[name], name


def test_every_used_launch_configuration_is_declared(launch_tree):
    declared = {constant(call.args[0]) for call in calls(launch_tree, "DeclareLaunchArgument")}
    used = {constant(call.args[0]) for call in calls(launch_tree, "LaunchConfiguration")}
    used.discard(None)  # LaunchConfiguration(name) over OVERRIDES, checked in test_tracker_node_wiring
    assert used <= declared, f"undeclared launch arguments: {used - declared}"


def node_call(tree: ast.AST, executable: str, action: str = "Node") -> ast.Call:
    matches = [call for call in calls(tree, action) if constant(keyword(call, "executable")) == executable]
    assert len(matches) == 1, f"expected one {action} with executable {executable!r}"
    return matches[0]


def tracker_call(tree: ast.AST) -> ast.Call:
    return node_call(tree, "siammask_tracker", action="LifecycleNode")


def test_tracker_node_matches_what_cmake_installs(launch_tree):
    tracker = tracker_call(launch_tree)
    assert constant(keyword(tracker, "package")) == "siammask_ros"
    assert constant(keyword(tracker, "name")) == "siammask_tracker"
    cmake = (ROOT / "CMakeLists.txt").read_text()
    entry = re.search(r"siammask_entry_point\(\s*siammask_tracker\s+(\S+)\s+(\S+)\s*\)", cmake)
    assert entry, "CMakeLists.txt does not install a siammask_tracker executable"
    module, destination = entry.groups()
    assert destination == "lib/${PROJECT_NAME}"  # where `ros2 run` and launch look
    assert module == "siammask_ros.ros.node"
    assert re.search(r"^def main\(", (ROOT / "siammask_ros/ros/node.py").read_text(), re.M)
    assert re.search(r"install\(DIRECTORY launch config DESTINATION share/\$\{PROJECT_NAME\}\)", cmake)


def test_tracker_node_wiring(launch_tree):
    tracker = tracker_call(launch_tree)
    # LifecycleNode requires a namespace; the lifecycle services are then ~/change_state etc.
    assert constant(keyword(tracker, "namespace").args[0]) == "namespace"
    remappings = keyword(tracker, "remappings")
    pairs = [(constant(t.elts[0]), t.elts[1]) for t in remappings.elts]
    assert [name for name, _ in pairs] == ["image"]
    assert constant(pairs[0][1].args[0]) == "image"  # LaunchConfiguration("image")
    ros_arguments = keyword(tracker, "ros_arguments").elts
    assert constant(ros_arguments[0]) == "--log-level" and constant(ros_arguments[1].args[0]) == "log_level"
    # The environment comes from the profile decision (tested below), never a fixed dict.
    assert keyword(tracker, "additional_env").id == "profile_env"
    (decision,) = calls(launch_tree, "dds_profile_environment")
    assert ast.unparse(decision.args[0]) == "os.environ"
    assert constant(decision.args[1].func.value.args[0]) == "dds_profile"
    params_file, overrides, switches = keyword(tracker, "parameters").elts
    assert constant(params_file.args[0]) == "params_file"
    assert overrides.id == "overrides" and switches.id == "switches"
    # use_sim_time and autostart are booleans from their launch arguments, always passed.
    (switch_dict,) = [
        node.value for node in ast.walk(launch_tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "switches"
    ]
    for key, value in zip(switch_dict.keys, switch_dict.values):
        assert constant(value.left.func.value.args[0]) == constant(key)
        assert constant(value.comparators[0]) == "true"
    assert {constant(k) for k in switch_dict.keys} == {"use_sim_time", "autostart"}
    assert "autostart" in PARAMETER_NAMES  # declared by the node (use_sim_time is rclpy's own)
    # The overriding launch arguments are node parameters, passed only when given.
    (assignment,) = [
        node for node in ast.walk(launch_tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "OVERRIDES"
    ]
    names = {constant(e) for e in assignment.value.elts}
    assert names == {"weights", "device"} and names <= set(PARAMETER_NAMES)
    declared = {constant(call.args[0]): call for call in calls(launch_tree, "DeclareLaunchArgument")}
    assert all(constant(keyword(declared[name], "default_value")) == "" for name in names)
    # The node is built at launch time, so the description must include that function.
    (opaque,) = calls(launch_tree, "OpaqueFunction")
    assert keyword(opaque, "function").id == "tracker_node"


def load_profile_decision(tree: ast.Module):
    """dds_profile_environment from the launch file, executed without launch installed."""
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "dds_profile_environment"]
    module = ast.Module(body=[function], type_ignores=[])
    namespace = {"os": os, "Mapping": Mapping, "PROFILE_VARIABLES": module_constants(tree)["PROFILE_VARIABLES"]}
    exec(compile(module, str(LAUNCH), "exec"), namespace)
    return namespace["dds_profile_environment"]


BOTH_NAMES = {"FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"}


def test_dds_profile_is_set_only_when_the_user_has_none(launch_tree, tmp_path):
    decide = load_profile_decision(launch_tree)
    shipped = str(DDS_PROFILE)
    env, note = decide({"HOME": "/root"}, shipped)
    assert env == dict.fromkeys(BOTH_NAMES, shipped) and shipped in note
    # An empty variable is no profile (Fast DDS would fail to open ''), so ours is set.
    assert decide({"FASTRTPS_DEFAULT_PROFILES_FILE": ""}, shipped)[0] == dict.fromkeys(BOTH_NAMES, shipped)
    # Either name set by the user: nothing is added, whatever dds_profile says.
    for name in BOTH_NAMES:
        mine = str(tmp_path / "mine.xml")
        env, note = decide({name: mine}, shipped)
        assert env == {} and mine in note and "not used" in note
    # dds_profile:='' sets none.
    env, note = decide({}, "")
    assert env == {} and "no DDS profile" in note
    with pytest.raises(FileNotFoundError, match="dds_profile '/nonexistent.xml' is not a file"):
        decide({}, "/nonexistent.xml")


def test_dds_profile_default_is_the_shipped_profile(launch_tree):
    default = keyword(declared_arguments(launch_tree)["dds_profile"], "default_value")
    assert [constant(a) for a in default.args[1:]] == ["config", DDS_PROFILE.name]


def test_rviz_is_optional(launch_tree):
    rviz = node_call(launch_tree, "rviz2")
    condition = keyword(rviz, "condition")
    assert condition.func.id == "IfCondition"
    assert constant(condition.args[0].args[0]) == "rviz"


def test_referenced_config_files_exist(launch_tree):
    referenced = set()
    for call in calls(launch_tree, "join"):
        parts = [constant(a) for a in call.args]
        if "config" in parts:
            referenced.add(parts[parts.index("config") + 1])
    assert referenced == {"tracker.yaml", "tracker.rviz", "fastdds_large_images.xml"}
    for name in referenced:
        assert (ROOT / "config" / name).is_file(), name


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_yaml_lists_every_parameter_with_its_default():
    document = yaml.safe_load(YAML_FILE.read_text())
    assert list(document) == ["/**"]
    values = flatten(document["/**"]["ros__parameters"])
    # The four preset-derived parameters are present but commented out, so that the
    # preset keeps setting them; everything else is set to its default.
    commented = dict(re.findall(r"^\s*#\s*(\w+):\s*([0-9.]+)\s*$", YAML_FILE.read_text(), re.M))
    assert set(values) == set(PARAMETER_NAMES) - set(PRESET_PARAMETERS)
    assert set(commented) == set(PRESET_PARAMETERS)
    for spec in PARAMETERS:
        if spec.name in PRESET_PARAMETERS:
            assert float(commented[spec.name]) == pytest.approx(preset_defaults("vot")[spec.name])
        else:
            assert values[spec.name] == spec.default and type(values[spec.name]) is type(spec.default), spec.name


def test_yaml_explains_each_parameter():
    lines = [line.strip() for line in YAML_FILE.read_text().splitlines()]
    for i, line in enumerate(lines):
        key = re.match(r"^#?\s*([a-z_]+):\s*\S", line)
        if key and not line.startswith("/**"):
            previous = next(p for p in reversed(lines[:i]) if p)
            assert previous.startswith("#"), f"no comment above {key.group(1)!r}"


def test_parameter_descriptors_are_complete():
    for spec in PARAMETERS:
        descriptor = spec.descriptor()
        assert descriptor.description and descriptor.name == spec.name
        if spec.choices:
            assert all(choice in descriptor.additional_constraints for choice in spec.choices)
    read_only = {spec.name for spec in PARAMETERS if spec.read_only}
    assert read_only == {
        "weights", "preset", "device", "cpu_threads", "precision", "qos.reliability", "qos.depth",
        "autostart", "image_transport", "backend",
    }
    (search,) = [s for s in PARAMETERS if s.name == "long_term.search_size"]
    low, high, step = search.int_range
    # Every value the range allows satisfies SiamMask's grid rule, and 831 is allowed.
    assert all((s - 127) % 8 == 0 and s >= 255 for s in range(low, high + 1, step))
    assert 831 in range(low, high + 1, step)


def test_dds_profile_enlarges_shm_and_keeps_udp_open_to_other_machines():
    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(DDS_PROFILE).getroot()
    descriptors = {
        d.findtext("f:type", namespaces=ns): d for d in root.iterfind(".//f:transport_descriptor", ns)
    }
    assert set(descriptors) == {"SHM", "UDPv4"}
    # Room for two 3840x2160 bgr8 frames in flight (plus headers).
    segment = int(descriptors["SHM"].findtext("f:segment_size", namespaces=ns))
    assert segment >= 2 * (3840 * 2160 * 3 + 4096)
    # UDPv4 as Fast DDS's built-in one: no interface restriction, default datagram size.
    udp = descriptors["UDPv4"]
    assert udp.find("f:interfaceWhiteList", ns) is None and udp.find("f:interfaces", ns) is None
    assert udp.find("f:maxMessageSize", ns) is None

    (participant,) = root.iterfind(".//f:participant", ns)
    assert participant.get("is_default_profile") == "true"
    assert participant.findtext("f:rtps/f:useBuiltinTransports", namespaces=ns) == "false"
    used = [t.text for t in participant.iterfind("f:rtps/f:userTransports/f:transport_id", ns)]
    ids = [d.findtext("f:transport_id", namespaces=ns) for d in descriptors.values()]
    assert sorted(used) == sorted(ids)


def test_rviz_layout_shows_the_debug_image():
    layout = yaml.safe_load(RVIZ.read_text())
    displays = layout["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"]: d["Enabled"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    # Relative names: they resolve in the namespace the launch file gives rviz2.
    assert topics == {"siammask_tracker/debug_image": True, "siammask_tracker/mask": False}


def test_select_target_tool_runs_help_and_explains_a_missing_gui():
    help_text = subprocess.run(
        [sys.executable, "-m", "siammask_ros.ros.select_target", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert "--image" in help_text and "--tracker" in help_text

    if re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):  # opencv-python-headless
        assert "no GUI" in gui_problem()
