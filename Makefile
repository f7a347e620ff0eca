# Everything a newcomer or CI needs, from a fresh clone. `make help` lists the targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov
COVERAGE_GATE := 90
FAST_COVERAGE_GATE := 85

.PHONY: help setup run demo lint format test test-fast test-pythons bench clean

help:
	@echo "make run    - Azurite + SharePoint emulator + local Functions host, until Ctrl-C"
	@echo "make demo   - the same stack, then a scripted tour of the whole SharePoint flow"
	@echo "make lint   - ruff (lint and format check), mypy (strict on functions/), import-linter contracts"
	@echo "make format - ruff format and the safe ruff fixes"
	@echo "make test   - unit, integration (Azurite), end-to-end (local host + emulator), infra checks,"
	@echo "              with coverage of functions/ gated at $(COVERAGE_GATE)%"
	@echo "make test-fast - the unit tier alone (in memory, under 30 s), with its coverage of functions/core"
	@echo "make test-pythons - unit tests and a cold import on every Python the deploy allows (3.11-3.13)"
	@echo "make bench  - benchmarks, printed as side-by-side ratios"

setup: $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-unit.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Checkov pins its own dependencies tightly, so it lives in a virtual environment of its own.
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

run: $(VENV)/.installed node_modules/.installed
	$(PY) -m local.stack

demo: $(VENV)/.installed node_modules/.installed
	$(PY) -m local.demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports --no-logo

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Coverage follows the local host and the emulator into their subprocesses (pyproject.toml).
test: setup
	$(PY) -m coverage erase
	$(PY) -m coverage run -m pytest
	$(PY) -m coverage combine --quiet
	$(PY) -m coverage report --include='functions/*,function_app.py' --fail-under=$(COVERAGE_GATE)

# Every pythonVersion infra/main.bicep allows: the unit tests and a cold import, each in its own
# .venv-py3.X; a version with no interpreter here is named in the output.
test-pythons:
	bash tests/python_versions.sh

# The fast tier: the core against in-memory storage, SharePoint and Graph (tests/fakes), no services
# started; prints how much of functions/core it covers, and fails below FAST_COVERAGE_GATE.
test-fast: $(VENV)/.installed
	@mkdir -p .run && rm -f .run/fast.coverage*
	$(PY) -m coverage run --data-file=.run/fast.coverage -m pytest -q tests/unit
	@$(PY) -m coverage combine --quiet --data-file=.run/fast.coverage
	@$(PY) -m coverage report --data-file=.run/fast.coverage --include='functions/core/*' \
		--fail-under=$(FAST_COVERAGE_GATE) > .run/fast.report; status=$$?; \
		grep TOTAL .run/fast.report | awk '{print "functions/core covered by the fast tier: " $$NF}'; exit $$status

bench: $(VENV)/.installed node_modules/.installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .venv-py3.* node_modules .pytest_cache .mypy_cache .ruff_cache .run .coverage .coverage.*
