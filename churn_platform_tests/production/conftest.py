"""The production suite's one stack and one pipeline run, shared by its tests (`make test-production`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from churn_platform_tests.conftest import run_cli
from churn_platform_tests.production.stack import BUCKET, ProductionStack, StackError

CUSTOMERS = 1_000
DAYS = 365
SEED = 23
FAULT_RATE = 0.01


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """``values`` in this process's environment for the block (the production settings)."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class ProductionRun:
    stack: ProductionStack
    run_id: str
    finished_at: float
    local_sources: Path
    local_home: Path
    served: list = field(default_factory=list)
    """(request id, customer id, model version) of what the serving test was answered."""
    prediction_log_run: str | None = None
    """The run that loaded what was served into monitoring."""


def _run_failure_details(stack: ProductionStack, run_id: str) -> str:
    import dagster as dg

    with environment(stack.env), dg.DagsterInstance.get() as instance:
        failures = []
        for e in instance.all_logs(run_id):
            if e.dagster_event is None or not e.dagster_event.is_step_failure:
                continue
            error = e.dagster_event.event_specific_data.error  # type: ignore[union-attr]
            chain = []
            while error is not None:
                chain.append(error.message.strip() + "\n" + "".join(error.stack[-3:]))
                error = error.cause
            failures.append(f"{e.step_key}: " + "\ncaused by: ".join(chain))
    return "\n".join(failures) or "(no step failure recorded)"


@pytest.fixture(scope="session")
def production(tmp_path_factory) -> ProductionRun:
    from churn_platform.apps.launch import launch_daily_pipeline, wait_for_run
    from churn_platform.settings import Settings

    root = tmp_path_factory.mktemp("production")
    stack = ProductionStack(root)
    try:
        stack.ensure_postgres()
        stack.create_databases()
        stack.start_s3()
        stack.start_mlflow()
        stack.configure(CUSTOMERS, DAYS, SEED)
        stack.start_ray()
        # The raw landing zone gets its files the way an upstream system would deliver them.
        generate = [
            "generate",
            "--customers",
            str(CUSTOMERS),
            "--days",
            str(DAYS),
            "--seed",
            str(SEED),
            "--fault-rate",
            str(FAULT_RATE),
        ]
        landed = run_cli(*generate, "--out", f"s3://{BUCKET}/landing", env=stack.env)
        assert landed.returncode == 0, landed.stderr + landed.stdout
        stack.started.append(
            f"churn-platform generate → s3://{BUCKET}/landing ({CUSTOMERS:,} customers, {DAYS} days, seed {SEED})"
        )
        local_sources = root / "local_sources"
        generated = run_cli(*generate, "--out", str(local_sources))
        assert generated.returncode == 0, generated.stderr
        stack.start_dagster()
        settings = Settings(home=root / "scratch", days=DAYS)
        run_id = launch_daily_pipeline(
            settings, stack.webserver_url, tags={"churn_platform/suite": "production", "dagster/max_retries": "0"}
        )
        result = wait_for_run(stack.webserver_url, run_id, timeout_s=1500)
        if result.status != "SUCCESS":
            raise StackError(
                f"daily_pipeline run {run_id} ended {result.status}:\n{_run_failure_details(stack, run_id)}"
            )
        run = ProductionRun(stack, run_id, time.time(), local_sources, root / "local_home")
        yield run
    finally:
        stack.stop()
        stack.drop_databases()
        for log in (root / "logs").glob("*.log") if (root / "logs").exists() else []:
            # Keep the service logs beside the test results for a failed run's post-mortem.
            target = Path(os.environ.get("CHURN_PLATFORM_PRODUCTION_LOGS", root / "kept_logs"))
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, target / log.name)
