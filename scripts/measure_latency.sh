#!/usr/bin/env bash
# Node latency with the bundled model: a synthetic 30 Hz camera in one process, the
# tracker node in another, both with the shipped Fast DDS profile, under the network rule.
#   [BACKEND=onnxruntime] scripts/measure_latency.sh [WIDTH HEIGHT [DURATION_S [TARGETS...]]]
# Prints one line per target count: published/processed rates and latency percentiles.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
width="${1:-640}" height="${2:-480}" duration="${3:-20}"
shift $(( $# < 3 ? $# : 3 ))
targets=("${@:-1 4}")
read -r -a targets <<< "${targets[*]}"
export FASTRTPS_DEFAULT_PROFILES_FILE="$root/config/fastdds_large_images.xml"
export FASTDDS_DEFAULT_PROFILES_FILE="$FASTRTPS_DEFAULT_PROFILES_FILE"
run_one() {  # targets
  local log node
  log="$(mktemp -t siammask_latency.XXXXXX)"
  .venv/bin/python -m siammask_ros.ros.node --ros-args -r image:=/image -p device:=cpu -p cpu_threads:=1 \
    -p long_term.enabled:=false -p max_targets:=16 -p backend:="${BACKEND:-torch}" > "$log" 2>&1 &
  node=$!
  PYTHONPATH=test .venv/bin/python test/synthetic_camera.py --width "$width" --height "$height" --rate 30 \
    --duration "$duration" --targets "$1" | tail -n 1
  kill -INT "$node"; wait "$node" || true
  rm -f "$log"
}
for n in "${targets[@]}"; do run_one "$n"; done
