# sitewatch: `make demo` installs and runs the demo; `make test` installs and runs the tests.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install install-dev demo test lint bench vendor-web

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q -e ".[dev,postgres,train,scale,serve]"

demo: install
	$(BIN)/sitewatch demo

test: install-dev
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest -m "not slow" -q

# ruff (lint, and the formatting of src and bench), then mypy on src/sitewatch ([tool.mypy] in pyproject.toml)
lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src bench
	$(BIN)/python -m mypy

bench: install-dev
	$(BIN)/python bench/detect_speed.py

# The dashboard's front-end library, from the npm registry (minified dist + licence only).
LEAFLET ?= 1.9.4
WEB_VENDOR = src/sitewatch/api/static/vendor/leaflet
vendor-web:
	tmp=$$(mktemp -d) && (cd $$tmp && npm pack -q leaflet@$(LEAFLET) >/dev/null && tar xzf leaflet-$(LEAFLET).tgz) && \
	mkdir -p $(WEB_VENDOR)/images && cp $$tmp/package/dist/leaflet.js $$tmp/package/dist/leaflet.css $$tmp/package/LICENSE $(WEB_VENDOR)/ && \
	cp $$tmp/package/dist/images/layers*.png $(WEB_VENDOR)/images/ && rm -rf $$tmp
