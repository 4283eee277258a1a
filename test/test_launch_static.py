"""The launch file, parameter file, DDS profile and rviz layout, checked without launch.

launch and launch_ros are not installable from PyPI, so the launch file is read as
Python source: what it declares, what it references and what it starts.
"""

import ast
import re
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


def test_every_launch_argument_has_a_description(launch_tree):
    declared = {}
    for call in calls(launch_tree, "DeclareLaunchArgument"):
        name = constant(call.args[0])
        description = constant(keyword(call, "description"))
        assert isinstance(description, str) and len(description) > 10, f"argument {name} lacks a description"
        declared[name] = call
    assert set(declared) == {"image", "params_file", "weights", "device", "namespace", "rviz"}
    rviz_choices = keyword(declared["rviz"], "choices")
    assert [constant(e) for e in rviz_choices.elts] == ["true", "false"]


def test_every_used_launch_configuration_is_declared(launch_tree):
    declared = {constant(call.args[0]) for call in calls(launch_tree, "DeclareLaunchArgument")}
    used = {constant(call.args[0]) for call in calls(launch_tree, "LaunchConfiguration")}
    used.discard(None)  # LaunchConfiguration(name) over OVERRIDES, checked in test_tracker_node_wiring
    assert used <= declared, f"undeclared launch arguments: {used - declared}"


def node_call(tree: ast.AST, executable: str) -> ast.Call:
    matches = [call for call in calls(tree, "Node") if constant(keyword(call, "executable")) == executable]
    assert len(matches) == 1, f"expected one Node with executable {executable!r}"
    return matches[0]


def test_tracker_node_matches_what_cmake_installs(launch_tree):
    tracker = node_call(launch_tree, "siammask_tracker")
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
    tracker = node_call(launch_tree, "siammask_tracker")
    remappings = keyword(tracker, "remappings")
    pairs = [(constant(t.elts[0]), t.elts[1]) for t in remappings.elts]
    assert [name for name, _ in pairs] == ["image"]
    assert constant(pairs[0][1].args[0]) == "image"  # LaunchConfiguration("image")
    env = keyword(tracker, "additional_env")
    assert {constant(k) for k in env.keys} == {"FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"}
    params_file, overrides = keyword(tracker, "parameters").elts
    assert constant(params_file.args[0]) == "params_file"
    assert overrides.id == "overrides"
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
        "weights", "preset", "device", "cpu_threads", "precision", "qos.reliability", "qos.depth"
    }
    (search,) = [s for s in PARAMETERS if s.name == "long_term.search_size"]
    low, high, step = search.int_range
    # Every value the range allows satisfies SiamMask's grid rule, and 831 is allowed.
    assert all((s - 127) % 8 == 0 and s >= 255 for s in range(low, high + 1, step))
    assert 831 in range(low, high + 1, step)


def test_dds_profile_restricts_udp_to_loopback_and_enlarges_shm():
    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(DDS_PROFILE).getroot()
    descriptors = {
        d.findtext("f:type", namespaces=ns): d for d in root.iterfind(".//f:transport_descriptor", ns)
    }
    assert set(descriptors) == {"SHM", "UDPv4"}
    assert int(descriptors["SHM"].findtext("f:segment_size", namespaces=ns)) == 32 * 1024 * 1024
    addresses = [a.text for a in descriptors["UDPv4"].iterfind("f:interfaceWhiteList/f:address", ns)]
    assert addresses == ["127.0.0.1"]

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
