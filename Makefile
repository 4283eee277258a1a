# Development entry points. `make demo` and `make test` each run `make setup` first.
VENV := .venv
PY := $(VENV)/bin/python
ISOLATE := scripts/isolate.sh

.PHONY: setup test demo bench eval clean

setup:  ## .venv with pinned deps, ROS 2 Jazzy wheels, this package built by CMake into it
	@bash scripts/setup_dev.sh

test: setup  ## the whole test suite, CPU only, ROS processes in a private network namespace
	@$(ISOLATE) $(PY) -m pytest

demo: setup  ## track the bundled clip with the bundled model; writes results/demo.mp4
	@$(PY) -m siammask_ros.cli.demo --output-dir results

bench: setup  ## per-stage timing of one tracking step (255 and lost-mode 831)
	@$(PY) -m siammask_ros.cli.bench

eval: setup  ## accuracy of the bundled model on held-out synthetic sequences
	@$(PY) -m siammask_ros.eval

clean:
	rm -rf build results .pytest_cache
