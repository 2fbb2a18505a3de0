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
DEV_HOME := $(abspath $(HOME_DIR)/dev)

export RAY_USAGE_STATS_ENABLED := 0
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export MLFLOW_DISABLE_TELEMETRY := true
# One planned event per asset for a run over many daily partitions (see churn_platform/settings.py).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS := true

.PHONY: help env prepare demo test dev lock validate clean

help:
	@echo "make demo      set up and run the platform end to end (generate, Dagster run, MLflow, Ray Serve, a live prediction)"
	@echo "make test      set up and run the test suite"
	@echo "make dev       Dagster UI + daemon on http://localhost:3000 and the MLflow UI on http://localhost:5000"
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

test: prepare
	$(BIN)/python -m pytest

validate: prepare
	$(BIN)/dagster definitions validate -w workspace.yaml

dev: prepare
	@mkdir -p $(DEV_HOME)/dagster $(DEV_HOME)/mlflow
	@test -f $(DEV_HOME)/dagster/dagster.yaml || printf 'telemetry:\n  enabled: false\n' > $(DEV_HOME)/dagster/dagster.yaml
	@echo "Dagster UI: http://localhost:3000    MLflow UI: http://localhost:5000    (Ctrl-C stops both)"
	@trap 'kill 0' INT TERM EXIT; \
	CHURN_PLATFORM_HOME=$(DEV_HOME) DAGSTER_HOME=$(DEV_HOME)/dagster \
	  $(BIN)/mlflow ui --backend-store-uri sqlite:///$(DEV_HOME)/mlflow/mlflow.db --host 127.0.0.1 --port 5000 & \
	CHURN_PLATFORM_HOME=$(DEV_HOME) DAGSTER_HOME=$(DEV_HOME)/dagster \
	  $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000; \
	wait

lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade "pip==$(PIP_VERSION)"
	.lock-venv/bin/pip install --quiet ".[test]"
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^churn.platform' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(DBT_DIR)/target $(DBT_DIR)/logs $(HOME_DIR)
