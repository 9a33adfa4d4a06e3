# The front door: every target sets up its own virtualenv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench clean

$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install -qq --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m inspector demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check inspector tests examples bench
	$(BIN)/ruff format --check inspector tests examples bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix inspector tests examples bench
	$(BIN)/ruff format inspector tests examples bench

bench: $(STAMP)
	$(BIN)/python bench/capture.py
	$(BIN)/python bench/backward.py
	$(BIN)/python bench/diagnose.py
	$(BIN)/python bench/step.py
	$(BIN)/python bench/tui.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
