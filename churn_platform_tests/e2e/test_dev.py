"""`make dev` (`churn-platform dev`): both UIs come up over a home, and a stop sent to the process
group, as a process supervisor or a terminal sends it, stops everything they started within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from churn_platform_tests.conftest import free_port

pytestmark = pytest.mark.slow


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_dev_starts_both_uis_and_a_group_signal_stops_everything(tmp_path, sig):
    dagster_port, mlflow_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_PLATFORM_", "DAGSTER_HOME"))}
    log = tmp_path / "dev.log"
    output = log.open("w")
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "churn_platform.apps.cli",
            "dev",
            "--home",
            str(tmp_path / "home"),
            "--dagster-port",
            str(dagster_port),
            "--mlflow-port",
            str(mlflow_port),
        ],
        env=env,
        start_new_session=True,
        # A file, not a pipe: nobody reads a pipe while the UIs run, and the services' output
        # (they share it) would fill it and block them.
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        urls = (f"http://127.0.0.1:{dagster_port}/server_info", f"http://127.0.0.1:{mlflow_port}/health")
        while not all(_up(u) for u in urls):
            assert supervisor.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the UIs did not come up"
            time.sleep(1)
        started = _descendants(supervisor.pid)
        assert len(started) >= 3, started  # mlflow, dagster dev and what dagster dev starts
        os.killpg(supervisor.pid, sig)
        stopped_at = time.monotonic()
        supervisor.wait(timeout=30)
        took = time.monotonic() - stopped_at
        left = [pid for pid in started if _running(pid)]
        assert not left, [(pid, Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:120]) for pid in left]
        assert took < 15, took
        assert supervisor.returncode == 0
        assert not any(_up(u) for u in urls)
        assert "Stopped." in log.read_text()
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
        output.close()
