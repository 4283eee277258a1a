"""The colcon install space, used as on a robot: `source install/setup.bash`, then run.

`make colcon` (which `make test` runs first) builds the package with colcon into
<repo>/install. These tests check that install space and start the node from it, in
processes whose environment comes from sourcing install/setup.bash only: no PYTHONPATH,
AMENT_PREFIX_PATH or library path of this checkout or of the test run. The Python is
.venv's, whose ROS 2 wheels stand in for /opt/ros. The network rule's variables come
from conftest and are inherited.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import GetState
from rcl_interfaces.srv import ListParameters

from node_harness import NODE_START_S, Participant

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "install"
PREFIX = INSTALL / "siammask_ros"  # colcon's default isolated layout: one prefix per package
SITE = PREFIX / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "siammask_ros"
SHARE = PREFIX / "share" / "siammask_ros"
NAMESPACE = "/colcon_install_test"

pytestmark = pytest.mark.skipif(
    not (INSTALL / "setup.bash").is_file(),
    reason="no colcon install space: run `make colcon` first (`make test` does)",
)

# Variables that would let a process find the package somewhere else than install/, and
# the guard of the ROS wheels' bootstrapper (set in this process), so that .venv's Python
# sets its own library path as in a fresh shell.
_FOREIGN_PATHS = (
    "PYTHONPATH", "AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "COLCON_PREFIX_PATH", "LD_LIBRARY_PATH",
    "_ROS_WHEELS_BOOTSTRAP_COMPLETE",
)


def _install_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in _FOREIGN_PATHS}


def _sourced(command: str) -> list[str]:
    """A bash command line that sources install/setup.bash first (and fails if it fails)."""
    return ["bash", "-c", f'source "{INSTALL}/setup.bash" && {command}']


def test_install_space_holds_package_interfaces_executables_launch_and_config():
    assert (SITE / "tracker" / "tracker.py").is_file(), "Python sources not installed"
    assert (SITE / "ros" / "node.py").is_file()
    assert "extend_path" in (SITE / "__init__.py").read_text(), "rosidl's empty __init__.py replaced ours"
    bundled = sorted(p.name for p in (REPO / "siammask_ros" / "weights").glob("*.pth"))
    assert sorted(p.name for p in (SITE / "weights").glob("*.pth")) == bundled
    for interface in ("msg/TrackingResult", "msg/TrackedTarget", "srv/SelectTarget", "srv/StopTarget"):
        kind, name = interface.split("/")
        assert (SHARE / kind / f"{name}.{kind}").is_file(), interface
        assert (SHARE / kind / f"{name}.idl").is_file(), interface
    assert (SITE / "msg" / "_tracking_result.py").is_file(), "rosidl did not generate siammask_ros.msg"
    assert (SITE / "srv" / "_select_target.py").is_file(), "rosidl did not generate siammask_ros.srv"
    for executable in ("siammask_tracker", "select_target"):
        path = PREFIX / "lib" / "siammask_ros" / executable
        assert path.is_file() and os.access(path, os.X_OK), path
    assert (SHARE / "launch" / "tracker.launch.py").is_file()
    assert (SHARE / "config" / "tracker.yaml").is_file()
    assert (SHARE / "package.xml").is_file()
    index = PREFIX / "share" / "ament_index" / "resource_index"
    assert (index / "packages" / "siammask_ros").is_file()
    interfaces = (index / "rosidl_interfaces" / "siammask_ros").read_text().split()
    assert {"msg/TrackingResult.msg", "srv/SelectTarget.srv"} <= set(interfaces), interfaces


def test_follow_target_executable_is_installed():
    if not (REPO / "siammask_ros" / "ros" / "follow_target.py").is_file():
        pytest.skip("siammask_ros/ros/follow_target.py does not exist yet, so no follow_target executable")
    path = PREFIX / "lib" / "siammask_ros" / "follow_target"
    assert path.is_file() and os.access(path, os.X_OK), f"{path} not installed (CMakeLists.txt siammask_entry_point)"


def test_interfaces_and_share_resolve_to_the_install_space_with_only_setup_bash(tmp_path):
    probe = (
        "import json, siammask_ros.msg, siammask_ros.srv, siammask_ros.ros.node\n"
        "from siammask_ros.msg import TrackingResult\n"
        "from siammask_ros.srv import SelectTarget\n"
        "from ament_index_python.packages import get_package_share_directory\n"
        "TrackingResult(); SelectTarget.Request()\n"
        "print(json.dumps({'msg': siammask_ros.msg.__file__, 'srv': siammask_ros.srv.__file__,\n"
        "                  'node': siammask_ros.ros.node.__file__,\n"
        "                  'share': get_package_share_directory('siammask_ros')}))\n"
    )
    result = subprocess.run(
        _sourced(f'exec "{sys.executable}" -c "$PROBE"'), env={**_install_env(), "PROBE": probe},
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(found["msg"]).is_relative_to(SITE), found
    assert Path(found["srv"]).is_relative_to(SITE), found
    # .venv holds a second copy (make setup) that extend_path would also find: the node's
    # code must come from install/.
    assert Path(found["node"]).is_relative_to(SITE), found
    assert Path(found["share"]) == SHARE, found


@pytest.fixture(scope="module")
def installed_node(tmp_path_factory):
    """install/.../siammask_tracker, started the way `ros2 run` would after sourcing setup.bash."""
    log_path = tmp_path_factory.mktemp("colcon_node") / "node.log"
    executable = PREFIX / "lib" / "siammask_ros" / "siammask_tracker"
    command = f'exec "{executable}" --ros-args -r __ns:={NAMESPACE} -p device:=cpu -p cpu_threads:=1'
    env = {**_install_env(), "RCUTILS_LOGGING_BUFFERED_STREAM": "0", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(_sourced(command), env=env, cwd=log_path.parent, stdout=log, stderr=subprocess.STDOUT)
    participant = Participant()
    yield participant, process, log_path
    participant.close()
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _node_log(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-4000:]


def test_node_from_the_install_space_serves_its_parameters(installed_node):
    participant, process, log_path = installed_node
    client = participant.node.create_client(ListParameters, f"{NAMESPACE}/siammask_tracker/list_parameters")
    if not client.wait_for_service(timeout_sec=NODE_START_S):
        pytest.fail(f"the installed node did not come up (exit {process.poll()}):\n{_node_log(log_path)}")
    names = participant.call(client, ListParameters.Request()).result.names
    assert {"weights", "device", "cpu_threads"} <= set(names), names


def test_node_from_the_install_space_activates_with_the_installed_model(installed_node):
    participant, process, log_path = installed_node
    client = participant.node.create_client(GetState, f"{NAMESPACE}/siammask_tracker/get_state")
    if not client.wait_for_service(timeout_sec=NODE_START_S):
        pytest.fail(f"the installed node has no lifecycle services (exit {process.poll()}):\n{_node_log(log_path)}")
    # main() configures (loads the bundled model from the install space) and activates
    # before it spins, so the first answer already tells whether that worked.
    state = participant.call(client, GetState.Request()).current_state
    assert state.id == State.PRIMARY_STATE_ACTIVE, f"state {state.label!r}:\n{_node_log(log_path)}"
    assert process.poll() is None, _node_log(log_path)
