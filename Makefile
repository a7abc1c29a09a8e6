# Two entry points for a new user; each bootstraps a virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test test-fast lint bench study

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Main job: a real training run of the tiny config on the built-in multi-source corpus.
train: $(STAMP)
	@$(PY) -m launch.train --config=configs/tiny.py --workdir=runs/tiny

## Issue 10's study at the CPU scale, in resumable stages (launch/study_tiny.sh; docs/study.md).
study: $(STAMP)
	PYTHON=$(PY) bash launch/study_tiny.sh $(STAGE)

## The whole test suite (unit, integration, 8-fake-device sharding tests), after the lint checks.
test: lint
	$(PY) -m pytest -n 2 --dist worksteal --durations=15 tests

## Formatter (check only), linter and type checker, as CI runs them (configured in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/mypy

## The suite without the tests marked slow (those that train for real), for editing.
test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow" tests
