# Two entry points for a new user; each bootstraps a virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test test-fast bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Main job: a real training run of the tiny config on the built-in multi-source corpus.
train: $(STAMP)
	@$(PY) -m launch.train --config=configs/tiny.py --workdir=runs/tiny

## The whole test suite (unit, integration, 8-fake-device sharding tests).
test: $(STAMP)
	$(PY) -m pytest -n 2 tests

## The suite without the tests marked slow (those that train for real), for editing.
test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow" tests
