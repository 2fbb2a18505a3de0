"""`make dev`: the Dagster UI with its daemon and the MLflow UI over a home, stopped together.

Each service runs in a session of its own, so that a terminal's Ctrl-C does not reach it behind
this supervisor's back; SIGINT or SIGTERM to this process (or to its process group, as a process
supervisor sends it) stops every service and everything it started: first a polite SIGINT to
each service's process group (the way `dagster dev` shuts its webserver, daemon and code server
down), then SIGTERM, then SIGKILL for whatever is left, within ``grace_s`` seconds in all.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


@dataclasses.dataclass
class Service:
    name: str
    url: str
    process: subprocess.Popen


def _bin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def _alive(service: Service) -> bool:
    """Whether anything of the service's process group is left (its leader reaped first)."""
    service.process.poll()
    try:
        os.killpg(service.process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_all(services: list[Service], grace_s: float = 10.0) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to each service's process group until none is left."""
    for sig, wait_s in ((signal.SIGINT, grace_s * 0.6), (signal.SIGTERM, grace_s * 0.4), (signal.SIGKILL, 2.0)):
        live = [s for s in services if _alive(s)]
        if not live:
            return
        for service in live:
            try:
                os.killpg(service.process.pid, sig)
            except ProcessLookupError:
                pass
        until = time.monotonic() + wait_s
        while time.monotonic() < until and any(_alive(s) for s in live):
            time.sleep(0.1)


def run(home: Path, workspace: Path, dagster_port: int = 3000, mlflow_port: int = 5000, host: str = "127.0.0.1") -> int:
    """Start both UIs over ``home`` and supervise them until a signal or until one of them exits."""
    home = Path(home).resolve()
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "mlflow").mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster" / "dagster.yaml"
    from churn_platform.settings import PLANNED_EVENTS_ENV, SETTLE_ENV, write_local_instance_yaml

    if not instance_yaml.exists():
        write_local_instance_yaml(home / "dagster")

    env = {**os.environ, "CHURN_PLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.setdefault(PLANNED_EVENTS_ENV, "true")
    env.setdefault(SETTLE_ENV, "1")
    if (home / "sources").is_dir():
        env["CHURN_PLATFORM_SOURCES"] = str(home / "sources")
    commands = {
        "mlflow": (
            [
                _bin("mlflow"),
                "ui",
                "--backend-store-uri",
                f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
                "--host",
                host,
                "--port",
                str(mlflow_port),
            ],
            f"http://{host}:{mlflow_port}",
        ),
        "dagster": (
            [_bin("dagster"), "dev", "-w", str(workspace), "-h", host, "-p", str(dagster_port)],
            f"http://{host}:{dagster_port}",
        ),
    }
    stop = {"signal": None}

    def _stop(signum, _frame) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    services: list[Service] = []
    try:
        for name, (command, url) in commands.items():
            services.append(Service(name, url, subprocess.Popen(command, env=env, start_new_session=True)))
        print(
            f"Dagster UI: {commands['dagster'][1]}    MLflow UI: {commands['mlflow'][1]}    state: {home}    "
            "(Ctrl-C stops both)",
            flush=True,
        )
        while stop["signal"] is None:
            ended = [s for s in services if s.process.poll() is not None]
            if ended:
                print(
                    f"{ended[0].name} exited with code {ended[0].process.returncode}: stopping the rest",
                    file=sys.stderr,
                    flush=True,
                )
                break
            time.sleep(0.2)
    finally:
        if services:
            print("Stopping the Dagster and MLflow UIs ...", flush=True)
            stop_all(services)
            print("Stopped.", flush=True)
    return 0 if stop["signal"] is not None else 1
