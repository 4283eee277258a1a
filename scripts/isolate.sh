#!/usr/bin/env bash
# Run a command under the project's network rule: ROS 2 discovery stays on this machine.
# Sets localhost-only discovery, a distinct ROS_DOMAIN_ID and a private ROS_LOG_DIR, and,
# where we are root and may create namespaces, runs the command in a private network
# namespace with only loopback up, so no DDS packet can reach a real interface.
set -euo pipefail

export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST   # Iron and newer
export ROS_LOCALHOST_ONLY=1                      # Humble / Jazzy
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ($$ % 100) + 1 ))}"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$(mktemp -d -t siammask_ros_log.XXXXXX)}"

if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null \
   && unshare -n true 2>/dev/null; then
  exec unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$@"
fi
echo "[isolate] no private network namespace here; relying on localhost-only discovery" >&2
exec "$@"
