# Development entry points. `make demo` and `make test` each run `make setup` first.
VENV := .venv
PY := $(VENV)/bin/python
ISOLATE := scripts/isolate.sh

.PHONY: setup colcon colcon-test test demo bench eval clean

setup:  ## .venv with pinned deps, ROS 2 Jazzy wheels, this package built by CMake into it
	@bash scripts/setup_dev.sh

colcon: setup  ## build with colcon as on a robot: install/ (setup.bash), build files in build/colcon
	@bash scripts/colcon_build.sh

# The modules that start no ROS processes, by default; CTEST_ARGS= runs all, "-R test_io" one.
CTEST_ARGS ?= -LE ros_processes
colcon-test: colcon  ## `colcon test` through ament_cmake_pytest (CMakeLists.txt), in the network namespace
	@$(ISOLATE) bash scripts/colcon_build.sh test $(CTEST_ARGS)

# colcon first: test/test_colcon_install.py starts the node from install/.
test: setup colcon  ## the whole test suite, CPU only, ROS processes in a private network namespace
	@$(ISOLATE) $(PY) -m pytest

demo: setup  ## track the bundled clip with the bundled model; writes results/demo.mp4
	@$(PY) -m siammask_ros.cli.demo --output-dir results

bench: setup  ## per-stage timing of one tracking step (255 and lost-mode 831), then backends x targets with ratios
	@$(PY) -m siammask_ros.cli.bench
	@$(PY) -m siammask_ros.cli.bench_backends --output-dir results/bench

eval: setup  ## bundled model (node defaults and short-term) vs OpenCV CSRT/KCF/MIL: real clips with hand-checked boxes, held-out synthetic sequences
	@$(PY) -m siammask_ros.eval

clean:
	rm -rf build install results .pytest_cache
