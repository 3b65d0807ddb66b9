# HER-ROS: `make demo` runs the main job, `make test` runs the tests.
# Both create .venv and install everything on a fresh machine.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-slow lint bench bench-full install clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	# torch first and pinned: this version has a local CPU build; any other spec pulls CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,bench,fleet,export]"
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/her demo

test: $(STAMP) lint
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow" -q

# Style, types, and the layering of ARCHITECTURE.md: import contracts (pyproject.toml,
# [tool.importlinter]) plus the checks import-linter cannot express (tests/test_architecture.py).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src/her_goals/her_goals src/her_mujoco/her_mujoco src/her_recorder/her_recorder src/her_policy/her_policy
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -p no:cacheprovider tests/test_architecture.py

# Benchmarks print figures side by side with the peers (Gymnasium-Robotics, SB3);
# `bench` takes minutes, `bench-full` runs every target at full size (an hour or more).
bench: $(STAMP)
	$(PY) bench/bench_envs.py
	$(PY) bench/bench_replay.py
	$(PY) bench/bench_safety.py --ticks 20000 --soak-ticks 100000
	$(PY) bench/bench_bags.py --seconds 10
	$(PY) bench/bench_learning.py --tasks fetch_reach reach
	$(PY) bench/bench_fleet.py --task reach --arms 1 2 --minutes 2

bench-full: $(STAMP)
	$(PY) bench/bench_envs.py
	$(PY) bench/bench_replay.py
	$(PY) bench/bench_safety.py
	$(PY) bench/bench_bags.py --seconds 60
	$(PY) bench/bench_learning.py --tasks fetch_reach reach fetch_push push
	$(PY) bench/bench_fleet.py --task push --arms 1 2 --minutes 20

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
