"""package.xml declares what a headless robot needs to run the node, and nothing more.

`rosdep install --from-paths src` installs the package.xml's dependencies on a robot. This
test reads the imports of every module (with ast, nothing is imported) and sorts them by
layer:

- headless: the ROS-free core (model, tracker, io, weights), the ROS layer (ros/) and the
  launch file. Their module-level imports must be declared as run dependencies.
- tools: the offline runner, evaluation and training (cli, eval, train). What only they
  need must not be an exec_depend, so it is not forced onto robots (docs/ROBOT_INSTALL.md
  says how to install it).

Imports inside functions or guarded by ``except ImportError`` are optional features; each
one must be listed in OPTIONAL_FEATURES with the feature that needs it.
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "siammask_ros"
PACKAGE_XML = REPO / "package.xml"

HEADLESS_LAYERS = frozenset({"core", "ros", "launch"})
TOOL_SUBPACKAGES = frozenset({"cli", "eval", "train"})

# Python modules that are not ROS packages, and the rosdep key of each (None: none in
# rosdep; pip only, so it can only be an optional feature).
PYTHON_KEYS: dict[str, str | None] = {
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "torch": "python3-torch",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "yaml": "python3-yaml",
    "onnx": None,
    "onnxruntime": None,
    "rosbags": None,
}
# ROS packages not in this machine's ament index (not on PyPI); the key is the package name.
ROS_PACKAGES_NOT_ON_PYPI = frozenset({"launch", "launch_ros", "cv_bridge", "message_filters", "rosbag2_py"})
# Imports that need a package other than their own top-level module.
IMPLIED_KEYS = {"rclpy.lifecycle": "lifecycle_msgs"}

# Optional features of the headless layers: lazily imported module -> what needs it.
OPTIONAL_FEATURES = {
    "onnxruntime": "the ONNX Runtime inference backend (model.backends), opt-in",
    "onnx": "exporting the network to ONNX (model.export)",
    "rosbags": "reading and writing rosbag2 files offline (io.bag)",
}
# Run dependencies that no import shows, and why each one is needed on a robot.
RUNTIME_WITHOUT_IMPORT = {
    "rosidl_default_runtime": "the generated siammask_ros.msg / .srv interfaces",
}
# Needed only for optional parts of the launch file; never exec_depends.
OPTIONAL_LAUNCH_PACKAGES = {"rviz2": "tracker.launch.py rviz:=true (a desktop, not a headless robot)"}


@dataclass(frozen=True)
class Import:
    module: str  # dotted name as written
    path: Path
    optional: bool  # inside a function or guarded by `except ImportError`

    @property
    def top(self) -> str:
        return self.module.split(".")[0]


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError"} for n in names)


def _imports(path: Path) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, path, optional) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.extend(Import(f"{node.module}.{alias.name}", path, optional) for alias in node.names)
            elif node.level > 0:  # relative: resolved against the module's package
                base = path.relative_to(REPO).with_suffix("").parts[: -node.level]
                module = ".".join([*base, *([node.module] if node.module else [])])
                found.extend(Import(f"{module}.{alias.name}", path, optional) for alias in node.names)
        inner = optional or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers if h.type):
            inner = True
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), optional=False)
    return found


def _layer(path: Path) -> str:
    rel = path.relative_to(REPO)
    if rel.parts[0] == "launch":
        return "launch"
    subpackage = rel.parts[1] if len(rel.parts) > 2 else ""
    if subpackage == "ros":
        return "ros"
    return "tools" if subpackage in TOOL_SUBPACKAGES else "core"


def _sources() -> list[Path]:
    return sorted((REPO / PACKAGE).rglob("*.py")) + sorted((REPO / "launch").glob("*.py"))


def _ament_index_packages() -> set[str]:
    index = Path(sys.prefix) / "share" / "ament_index" / "resource_index" / "packages"
    return {p.name for p in index.iterdir()} if index.is_dir() else set()


ROS_PACKAGES = _ament_index_packages() | ROS_PACKAGES_NOT_ON_PYPI


def _rosdep_key(imp: Import) -> str | None:
    """The rosdep key an import needs; raises for a module this test does not know."""
    for prefix, key in IMPLIED_KEYS.items():
        if imp.module == prefix or imp.module.startswith(prefix + "."):
            return key
    if imp.top in ROS_PACKAGES:
        return imp.top
    if imp.top in PYTHON_KEYS:
        return PYTHON_KEYS[imp.top]
    raise AssertionError(
        f"{imp.path.relative_to(REPO)} imports {imp.module!r}: unknown dependency; add its rosdep key "
        f"to PYTHON_KEYS in {Path(__file__).name} (and to package.xml if a headless layer needs it)"
    )


def _third_party(imp: Import) -> bool:
    return imp.top not in sys.stdlib_module_names and imp.top not in {PACKAGE, "__future__"}


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return [imp for path in _sources() for imp in _imports(path)]


@pytest.fixture(scope="module")
def required_keys(imports) -> dict[str, dict[str, set[str]]]:
    """layer -> rosdep key -> files that import it at module level."""
    keys: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for imp in imports:
        if _third_party(imp) and not imp.optional:
            key = _rosdep_key(imp)
            keys[_layer(imp.path)][key].add(str(imp.path.relative_to(REPO)))
    return keys


def _dependencies(*tags: str) -> set[str]:
    root = ET.parse(PACKAGE_XML).getroot()
    return {element.text.strip() for tag in tags for element in root.findall(tag)}


RUN_DEPENDS = _dependencies("depend", "exec_depend")


def test_every_import_maps_to_a_known_rosdep_key(imports):
    for imp in imports:
        if _third_party(imp):
            _rosdep_key(imp)


def test_package_xml_declares_what_the_core_node_and_launch_file_import(required_keys):
    missing = {
        f"{key} ({layer}: {', '.join(sorted(files))})"
        for layer in HEADLESS_LAYERS
        for key, files in required_keys[layer].items()
        if key not in RUN_DEPENDS
    }
    assert not missing, f"package.xml lacks run dependencies: {sorted(missing)}"


def test_headless_layers_import_only_dependencies_that_rosdep_can_install(required_keys):
    pip_only = {
        f"{layer}: {', '.join(sorted(files))}"
        for layer in HEADLESS_LAYERS
        for key, files in required_keys[layer].items()
        if key is None
    }
    assert not pip_only, f"module-level import of a dependency without a rosdep key: {sorted(pip_only)}"


def test_optional_features_of_the_headless_layers_are_documented(imports):
    undocumented = {
        f"{imp.top} ({imp.path.relative_to(REPO)})"
        for imp in imports
        if imp.optional and _third_party(imp) and _layer(imp.path) in HEADLESS_LAYERS
        and _rosdep_key(imp) not in RUN_DEPENDS and imp.top not in OPTIONAL_FEATURES
    }
    assert not undocumented, f"optional imports missing from OPTIONAL_FEATURES: {sorted(undocumented)}"


def test_every_run_dependency_is_needed_by_a_headless_layer(required_keys):
    needed = {key for layer in HEADLESS_LAYERS for key in required_keys[layer]}
    needed |= _interface_packages() | set(RUNTIME_WITHOUT_IMPORT)
    tools_only = {key: sorted(files) for key, files in required_keys["tools"].items() if key not in needed}
    unneeded = RUN_DEPENDS - needed
    assert not unneeded, (
        f"run dependencies no headless layer needs: {sorted(unneeded)} "
        f"(only the CLI/eval/training use: {tools_only}); robots would install them for nothing"
    )


def test_rviz_is_optional_not_an_exec_depend():
    launch_source = (REPO / "launch" / "tracker.launch.py").read_text()
    launched = set(re.findall(r'package\s*=\s*"([A-Za-z0-9_]+)"', launch_source)) - {PACKAGE}
    for package, why in OPTIONAL_LAUNCH_PACKAGES.items():
        assert package not in RUN_DEPENDS, f"{package} is only for {why}"
    undeclared = launched - RUN_DEPENDS - set(OPTIONAL_LAUNCH_PACKAGES)
    assert not undeclared, f"the launch file starts packages package.xml does not declare: {sorted(undeclared)}"


def _interface_packages() -> set[str]:
    packages = set()
    for path in [*(REPO / "msg").glob("*.msg"), *(REPO / "srv").glob("*.srv")]:
        for line in path.read_text().splitlines():
            field = line.split("#", 1)[0].strip()
            if match := re.match(r"([a-z][a-z0-9_]*)/[A-Z]\w*", field):
                packages.add(match.group(1))
    return packages - {PACKAGE}


def test_interface_dependencies_are_build_and_run_dependencies():
    packages = _interface_packages()
    assert packages, "no msg/srv field of another package found; the parser is broken"
    missing = packages - _dependencies("depend")
    assert not missing, f"msg/srv use {sorted(missing)}: declare each as <depend> (build and run)"


def test_headless_layers_do_not_import_the_tool_layers(imports):
    tools = tuple(f"{PACKAGE}.{name}" for name in TOOL_SUBPACKAGES)
    leaks = {
        f"{imp.path.relative_to(REPO)} -> {imp.module}"
        for imp in imports
        if _layer(imp.path) in HEADLESS_LAYERS and imp.module.startswith(tools)
    }
    assert not leaks, f"the node or core reaches CLI/eval/training code (and its dependencies): {sorted(leaks)}"


def test_the_import_scan_sees_the_known_dependencies(required_keys):
    """Guards the scanner itself: a broken AST walk would make every other test pass."""
    assert {"python3-torch", "python3-numpy", "python3-opencv"} <= set(required_keys["core"])
    assert {"rclpy", "sensor_msgs"} <= set(required_keys["ros"])
    assert {"launch", "launch_ros"} <= set(required_keys["launch"])
    assert "python3-matplotlib" not in required_keys["core"]


def test_package_xml_is_valid_for_rosdep_and_colcon():
    """catkin_pkg is the parser rosdep, colcon-ros and bloom use; it validates as it parses."""
    catkin_package = pytest.importorskip("catkin_pkg.package")
    package = catkin_package.parse_package(str(PACKAGE_XML))
    assert package.name == PACKAGE
    assert package.get_build_type() == "ament_cmake"
