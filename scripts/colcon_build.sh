#!/usr/bin/env bash
# Build this package with colcon, as on a robot, into <repo>/install (build files under
# <repo>/build/colcon). colcon itself lives in .venv-colcon (requirements/colcon.txt);
# CMake, rosidl and the installed executables use .venv's Python, which holds the ROS 2
# wheels, so .venv must exist first (`make setup`). Idempotent; a re-run with nothing
# changed only re-checks the CMake build.
#
#   scripts/colcon_build.sh                      build
#   scripts/colcon_build.sh test [CTEST ARGS]    `colcon test` of that build (CMakeLists.txt,
#                                                BUILD_TESTING), e.g. `test -LE ros_processes`
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
tools="$root/.venv-colcon"
cd "$root"

log() { printf '[colcon] %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  echo "[colcon] $venv is missing: run 'make setup' first" >&2
  exit 1
fi

install_colcon() {
  local stamp="$tools/.requirements.sha" want
  want="$(sha256sum requirements/colcon.txt | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  log "installing pinned colcon into $tools (requirements/colcon.txt)"
  [ -x "$tools/bin/python" ] || python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements/colcon.txt 2>&1 \
    | { grep -v "^WARNING: Location .* is ignored" || true; }
  echo "$want" > "$stamp"
}

# The ROS 2 underlay is .venv (the PyPI wheels install there); on a robot it is /opt/ros/<distro>.
export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
unset COLCON_PREFIX_PATH
colcon=("$tools/bin/colcon" --log-base "$root/build/colcon/log")
# --paths . names this one package (a recursive search would also find the package.xml
# files inside .venv and dev/).
common=(--paths "$root" --build-base "$root/build/colcon" --install-base "$root/install")

# rosidl_generator_py exports the NumPy include folder of the build's Python as a public
# include directory of the package's Python typesupport target. Here that folder lies in
# .venv, inside this source tree, and CMake refuses to install an export that points into
# the source tree. /proc/self/root names the same folder by a path outside it. (On a robot
# NumPy comes from /usr and none of this applies.)
numpy_include="/proc/self/root$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')"

if [ "${1:-}" = test ]; then
  # `colcon test` of the last build (make colcon-test runs `make colcon` first, outside
  # the network namespace isolate.sh makes, since pip may need the network). Extra
  # arguments go to ctest, e.g. `-R test_package_xml` or `-LE ros_processes`.
  shift
  ctest_args=()
  [ $# -eq 0 ] || ctest_args=(--ctest-args "$@")
  log "colcon test ${*:-(all test modules)}"
  # Results of earlier runs would otherwise be reported again by test-result.
  "${colcon[@]}" test-result --test-result-base "$root/build/colcon" --delete-yes > /dev/null
  "${colcon[@]}" test "${common[@]}" --event-handlers console_direct- summary+ "${ctest_args[@]}"
  exec "${colcon[@]}" test-result --test-result-base "$root/build/colcon" --verbose
fi

install_colcon
mkdir -p "$root/build/colcon"
log "colcon build -> install/"
"${colcon[@]}" build "${common[@]}" --event-handlers console_direct- summary- \
  --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" --no-warn-unused-cli -DCMAKE_BUILD_TYPE=Release \
    -DPython3_NumPy_INCLUDE_DIR="$numpy_include" \
  > "$root/build/colcon/build.log" 2>&1 \
  || { tail -60 "$root/build/colcon/build.log"; echo "[colcon] build failed; full log: build/colcon/build.log" >&2; exit 1; }
log "ready: source install/setup.bash"
