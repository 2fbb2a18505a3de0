"""The command line keeps every setting from the environment that it does not override."""

from __future__ import annotations

import dataclasses
import signal

import pytest

from churn_platform.apps.cli import _settings, build_parser
from churn_platform.settings import Settings


def test_run_keeps_environment_settings_and_overrides_only_home_and_sources(monkeypatch, tmp_path):
    monkeypatch.setenv("CHURN_PLATFORM_DUCKDB_MEMORY_LIMIT", "3GB")
    monkeypatch.setenv("CHURN_PLATFORM_DRIFT_THRESHOLD", "0.42")
    monkeypatch.setenv("CHURN_PLATFORM_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    args = build_parser().parse_args(["run", "--home", str(tmp_path / "h"), "--sources", "s3://landing/x"])
    settings = _settings(args)
    expected = dataclasses.replace(Settings.from_env(), home=(tmp_path / "h").resolve(), sources="s3://landing/x")
    assert settings == expected
    assert settings.duckdb_memory_limit == "3GB"
    assert settings.drift_threshold == 0.42
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"


def test_serve_on_a_home_without_a_champion_says_so_and_creates_nothing(tmp_path):
    from churn_platform_tests.conftest import run_cli

    home = tmp_path / "empty_home"
    result = run_cli("serve", "--home", str(home), timeout=120)
    assert result.returncode == 1
    assert "has no champion model" in result.stderr and "churn-platform run --home" in result.stderr
    assert "Serving" not in result.stdout
    assert not (home / "mlflow" / "mlflow.db").exists()


def test_docs_on_a_fresh_home_says_what_it_builds_and_builds_only_the_warehouse(tmp_path):
    import dagster as dg

    from churn_platform_tests.conftest import run_cli

    home = tmp_path / "docs_home"
    result = run_cli(
        "docs", "--home", str(home), env={"CHURN_PLATFORM_CUSTOMERS": "200", "CHURN_PLATFORM_DAYS": "120"}, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "No warehouse in" in result.stdout and "no training" in result.stdout and "200 customers" in result.stdout
    assert (home / "dbt_docs" / "catalog.json").exists()
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        built = {k.to_user_string() for k in instance.get_asset_keys()}
    assert {"accounts", "events", "customer_features", "training_set", "scoring_features"} <= built
    assert not built & {"churn_model", "churn_scores", "feature_drift_report", "churn_outcomes"}, built


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "to_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c-to-the-group", "sigterm-to-the-process"],
)
def test_serve_stops_cleanly_on_ctrl_c_or_sigterm(e2e, sig, to_group):
    """Ctrl-C in a terminal (SIGINT to the whole foreground group) or a container runtime's
    SIGTERM to the process: Serve stops gracefully, without Ray's failed-task messages, and the
    command exits 0."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from churn_platform_tests.conftest import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_PLATFORM_")}
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "CHURN_PLATFORM_SERVING_METRICS_PORT": str(free_port())})
    log = e2e.root / f"serve_{sig.name}.log"
    with log.open("w") as out:
        # Output to a file: Ray's processes inherit it, and a pipe would stay open while they end.
        process = subprocess.Popen(
            [sys.executable, "-m", "churn_platform.apps.cli", "serve", "--home", str(e2e.home), "--port", str(port)],
            env=env,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 180
        while "Ctrl-C stops." not in log.read_text():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(1)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        (os.killpg if to_group else os.kill)(process.pid, sig)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = log.read_text()
    assert process.returncode == 0, output[-3000:]
    assert "Stopping Ray Serve ..." in output and "Stopped." in output
    assert "failed" not in output.split("Stopping Ray Serve ...", 1)[1], output[-3000:]
