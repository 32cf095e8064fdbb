# The whole set-up on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.13.0 first: the CPU build on local disk; the project's range accepts it as is.
TORCH ?= torch==2.13.0

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(VENV)/bin/gradnorm-tune sweep demo

# The tests' servers (Ray nodes, PostgreSQL, MLflow) live in a loopback-only network namespace.
test: install
	scripts/on-loopback $(PY) -m pytest -q --durations=15

bench: install
	$(PY) bench/step_overhead.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
