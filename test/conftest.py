"""Test-wide set-up.

Network rule: any process that starts rclpy must use localhost-only discovery, its own
ROS_DOMAIN_ID and a log folder inside the run. These variables are set here, at import,
before any test module can import rclpy, and child processes inherit them.
"""

import os
import tempfile

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"
# A distinct domain per test run (and per xdist worker), in 1..100.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").lstrip("gw") or "0"
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + (os.getpid() + int(_worker)) % 100))
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="siammask_ros_log_"))
# The onnxruntime backend's export cache (model.export.cached_export): one per test run,
# never the user's ~/.cache.
os.environ["SIAMMASK_ONNX_CACHE"] = tempfile.mkdtemp(prefix="siammask_onnx_cache_")
