"""Shared fixtures. The end-to-end fixture runs the real CLI once per session:
generate → `churn-platform run` (a real Dagster run on a real instance, dbt, MLflow)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from churn_platform.settings import Settings

E2E_CUSTOMERS = 1_500
E2E_DAYS = 365
E2E_SEED = 11
E2E_FAULT_RATE = 0.01


PREDICTION_LOG_READERS = (
    "prediction_drift_report",
    "online_comparison",
    "churn_outcomes",
    "model_performance",
    "estimated_performance",
)
"""What automation rebuilds after the hourly reload of the prediction log brought new predictions."""

TIERS = ("unit", "integration", "e2e", "production")
"""The test folders, each its marker: ``pytest -m unit`` is the fast lane of ``make check``."""


E2E_GROUP = "e2e-home"


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = next((t for t in TIERS if f"/churn_platform_tests/{t}/" in str(item.path)), None)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
        # With pytest-xdist (`pytest -n 2 --dist loadgroup`): the tests of one
        # file stay together, so that its module fixtures are built once; every test of the
        # session's e2e home runs on the worker that built it, and so does every test that starts
        # Ray (Ray Serve's proxy listens on fixed ports: two at once would collide).
        shared = "e2e" in getattr(item, "fixturenames", ()) or item.get_closest_marker("ray") is not None
        group = E2E_GROUP if shared else str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres") is not None and not _postgres_reachable():
        pytest.skip(
            "needs the local PostgreSQL server on 127.0.0.1:5432 (trust auth for user postgres); "
            "start it to run this test (CI has it)"
        )


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def free_port() -> int:
    from churn_platform.apps.serve_local import free_ports

    return free_ports()[0]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "churn_platform.apps.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        # Settings another test exported into this process must not leak into the CLI's.
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("CHURN_PLATFORM_")},
            "RAY_USAGE_STATS_ENABLED": "0",
            **(env or {}),
        },
    )


class E2E:
    def __init__(self, root: Path):
        self.root = root
        self.sources = root / "sources"
        self.home = root / "home"
        self.report_path = root / "report.json"
        self.report: dict = {}
        self.alerts: list[dict] = []
        """What the run posted to the alert webhook."""

    @property
    def settings(self) -> Settings:
        return Settings(home=self.home, sources=str(self.sources))


@pytest.fixture(scope="session")
def e2e(tmp_path_factory) -> E2E:
    """A home built by the real CLI from generated source files."""
    run = E2E(tmp_path_factory.mktemp("e2e"))
    gen = run_cli(
        "generate",
        "--customers",
        str(E2E_CUSTOMERS),
        "--days",
        str(E2E_DAYS),
        "--seed",
        str(E2E_SEED),
        "--out",
        str(run.sources),
        "--fault-rate",
        str(E2E_FAULT_RATE),
    )
    assert gen.returncode == 0, gen.stdout + gen.stderr
    webhook = WebhookReceiver()
    try:
        result = run_cli(
            "run",
            "--sources",
            str(run.sources),
            "--home",
            str(run.home),
            "--report-json",
            str(run.report_path),
            "--log-level",
            "WARNING",
            env={"CHURN_PLATFORM_ALERT_WEBHOOK_URL": webhook.url},
        )
        run.alerts = list(webhook.received)
    finally:
        webhook.close()
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    run.report = json.loads(run.report_path.read_text())
    return run


class WebhookReceiver:
    """A local HTTP server that records the JSON bodies posted to it (a stand-in Slack)."""

    def __init__(self, fail: bool = False) -> None:
        import http.server
        import json as _json
        import threading

        received: list[dict] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append(_json.loads(body))
                self.send_response(500 if fail else 200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [m["text"] for m in self.received]

    def kinds(self) -> list[str]:
        return [f["value"] for m in self.received for f in m["attachments"][0]["fields"] if f["title"] == "kind"]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
