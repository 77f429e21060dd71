# sitewatch: `make demo` installs and runs the demo; `make test` installs and runs the tests.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install install-dev demo test lint bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q -e ".[dev,postgres,train,serve]"

demo: install
	$(BIN)/sitewatch demo

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" -q

lint:
	$(BIN)/ruff check .

bench: install-dev
	$(BIN)/python bench/detect_speed.py
