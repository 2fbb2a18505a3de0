# churn_platform: `make demo` runs the platform end to end, `make test` runs the tests.
# Both create the environment first (.venv, from the committed lock).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP_VERSION := 26.3
DBT_DIR := dbt_project
MANIFEST := $(DBT_DIR)/target/manifest.json
DBT_FILES := $(shell find $(DBT_DIR)/models $(DBT_DIR)/macros $(DBT_DIR)/tests -type f 2>/dev/null) $(DBT_DIR)/dbt_project.yml $(DBT_DIR)/profiles.yml
HOME_DIR ?= .churn_home
DEV_HOME := $(abspath $(HOME_DIR)/demo)

export RAY_USAGE_STATS_ENABLED := 0
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export MLFLOW_DISABLE_TELEMETRY := true
# One planned event per asset for a run over many daily partitions (see churn_platform/settings.py).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS := true
# Each event falls into exactly one automation tick (see churn_platform/settings.py).
export DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS := 1

.PHONY: help env prepare demo test test-production check lint browser screenshots dev docs lock validate clean

help:
	@echo "make demo      set up and run the platform end to end (generate, Dagster run, MLflow, Ray Serve, a live prediction)"
	@echo "make test      set up and run the test suite (and the static checks of make lint)"
	@echo "make check     the fast lane while developing: make lint and the unit tests, in under 2 minutes"
	@echo "make lint      ruff (lint and format), sqlfluff on the dbt models, the import layers, declared dependencies"
	@echo "make test-production  the production profile on real services: PostgreSQL, S3 (moto), mlflow server, Dagster daemon, Ray cluster"
	@echo "make dev       Dagster UI + daemon on http://localhost:3000 and the MLflow UI on http://localhost:5000, over the demo's state"
	@echo "make docs      generate and serve the dbt docs on http://localhost:8081"
	@echo "make validate  dagster definitions validate"
	@echo "make lock      re-resolve pyproject.toml into requirements.lock"

$(VENV)/.installed: pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==$(PIP_VERSION)"
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

env: $(VENV)/.installed

$(MANIFEST): $(VENV)/.installed $(DBT_FILES)
	$(BIN)/churn-platform prepare

prepare: $(MANIFEST)

demo: prepare
	$(BIN)/churn-platform demo --home $(HOME_DIR)/demo

# Debian's Chromium and chromedriver for the browser test, installed once when missing.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "Installing Debian's chromium and chromium-driver for the browser test"; \
	  apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null \
	  || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null; }; \
	elif [ -z "$$CHURN_PLATFORM_CHROMIUM" ]; then \
	  echo "The browser test needs Chromium and chromedriver: apt-get install chromium chromium-driver (Debian)," \
	       "or set CHURN_PLATFORM_CHROMIUM and CHURN_PLATFORM_CHROMEDRIVER"; \
	fi

# One process: `pytest -n 2 --dist loadgroup` (pytest-xdist; conftest.py keeps a file's tests, and
# the e2e home's and Ray's, on one worker) took about 80% of the time, but with both cores busy
# a local Ray node can miss its fixed 30 s start-up limit.
test: lint prepare browser
	$(BIN)/python -m pytest

# Static checks: Python lint and format, SQL lint of the dbt project, the layers between packages
# (import-linter contracts in pyproject.toml) and every imported package declared (deptry).
lint: env
	$(BIN)/ruff check churn_platform churn_platform_tests benchmarks
	$(BIN)/ruff format --check churn_platform churn_platform_tests benchmarks
	cd $(DBT_DIR) && ../$(BIN)/sqlfluff lint models tests macros
	$(BIN)/lint-imports
	$(BIN)/deptry .

check: lint prepare
	$(BIN)/python -m pytest -m unit -q

# The README's screenshots (asset graph, MLflow run, drift report) from the demo's state.
screenshots: prepare browser
	@test -d $(HOME_DIR)/demo/dagster || $(MAKE) demo
	$(BIN)/python -m churn_platform_tests.browser --home $(HOME_DIR)/demo --out deploy/screenshots

# Starts a moto S3 server, an mlflow server, a Ray head, dagster-webserver and dagster-daemon
# (PostgreSQL is the machine's server, started if it is installed and stopped) and runs the
# pipeline through them. Service logs are kept in $(HOME_DIR)/production-logs.
test-production: prepare
	CHURN_PLATFORM_PRODUCTION_LOGS=$(abspath $(HOME_DIR))/production-logs $(BIN)/python -m pytest -m production churn_platform_tests/production

validate: prepare
	$(BIN)/dagster definitions validate -w workspace.yaml

# The UIs over the demo's state (after `make demo` every asset shows its materializations,
# checks and metadata; before it, the graph is there to materialize from the UI).
dev: prepare
	$(BIN)/churn-platform dev --home $(DEV_HOME)

# dbt docs for analysts, with the catalog of the demo's warehouse (built first if missing).
docs: prepare
	$(BIN)/churn-platform docs --home $(HOME_DIR)/demo --serve --port 8081

lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade "pip==$(PIP_VERSION)"
	.lock-venv/bin/pip install --quiet ".[test,check]"
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^churn.platform' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(DBT_DIR)/target $(DBT_DIR)/logs $(HOME_DIR)
