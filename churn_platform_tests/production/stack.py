"""The production profile's services on one machine, started as real processes.

PostgreSQL is the machine's own server (``PGHOST``/``PGPORT``, default 127.0.0.1:5432); each
stack gets fresh databases in it. S3 is a moto server, MLflow an ``mlflow server`` with its
backend in PostgreSQL and its artifacts in S3, Ray a head node started with ``ray start``,
and Dagster a ``dagster-webserver`` and a ``dagster-daemon`` on an instance in PostgreSQL
(``deploy/dagster.yaml``). Every process logs to a file under the stack's folder; a service
that does not come up fails with the tail of its log.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from churn_platform_tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUCKET = "churn-platform"
AWS_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "churn-platform-test",
    "AWS_SECRET_ACCESS_KEY": "churn-platform-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class StackError(RuntimeError):
    pass


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path


@dataclass
class ProductionStack:
    root: Path
    prefix: str = "churn_prod"
    pg_host: str = field(default_factory=lambda: os.environ.get("PGHOST", "127.0.0.1"))
    pg_port: int = field(default_factory=lambda: int(os.environ.get("PGPORT", "5432")))
    pg_user: str = field(default_factory=lambda: os.environ.get("PGUSER", "postgres"))
    pg_password: str = field(default_factory=lambda: os.environ.get("PGPASSWORD", "postgres"))
    services: list[Service] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    s3_port: int = 0
    mlflow_port: int = 0
    webserver_port: int = 0
    ray_port: int = 0
    serve_port: int = 0
    started: list[str] = field(default_factory=list)

    # ---- databases ------------------------------------------------------------------------
    @property
    def databases(self) -> dict[str, str]:
        return {role: f"{self.prefix}_{role}" for role in ("warehouse", "dagster", "mlflow")}

    def _admin(self):
        import psycopg2

        try:
            con = psycopg2.connect(
                host=self.pg_host,
                port=self.pg_port,
                user=self.pg_user,
                password=self.pg_password,
                dbname="postgres",
                connect_timeout=5,
            )
        except psycopg2.OperationalError as exc:
            raise StackError(
                f"PostgreSQL is not reachable at {self.pg_host}:{self.pg_port} as {self.pg_user} "
                f"(set PGHOST, PGPORT, PGUSER, PGPASSWORD): {str(exc).strip()}"
            ) from exc
        con.autocommit = True
        return con

    def ensure_postgres(self) -> None:
        """Use the running server, or start the machine's cluster if it is installed but stopped."""
        try:
            self._admin().close()
            self.started.append(f"PostgreSQL {self.pg_host}:{self.pg_port} (already running)")
            return
        except StackError:
            if not shutil.which("pg_ctlcluster") or self.pg_host not in ("127.0.0.1", "localhost"):
                raise
        clusters = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout.split()
        if len(clusters) >= 2:
            subprocess.run(["pg_ctlcluster", clusters[0], clusters[1], "start"], check=False)
        self._wait("PostgreSQL", lambda: self._admin().close() is None, 30, None)
        self.started.append(f"PostgreSQL {self.pg_host}:{self.pg_port} (started with pg_ctlcluster)")

    def create_databases(self) -> None:
        from psycopg2 import sql

        con = self._admin()
        try:
            with con.cursor() as cur:
                for name in self.databases.values():
                    cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
                    cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        finally:
            con.close()

    def drop_databases(self) -> None:
        from psycopg2 import sql

        with contextlib.suppress(Exception):
            con = self._admin()
            with con.cursor() as cur:
                for name in self.databases.values():
                    cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            con.close()

    def pg_url(self, role: str, driver: str = "postgresql") -> str:
        return f"{driver}://{self.pg_user}:{self.pg_password}@{self.pg_host}:{self.pg_port}/{self.databases[role]}"

    # ---- processes --------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Service:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log, "w")  # noqa: SIM115 - the service writes to it until it stops
        process = subprocess.Popen(
            args,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **self.env, **(env or {})},
            start_new_session=True,
        )
        service = Service(name, process, log)
        self.services.append(service)
        return service

    def _wait(self, name: str, ready: Callable[[], bool], timeout_s: float, service: Service | None) -> None:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if service is not None and service.process.poll() is not None:
                raise StackError(f"{name} exited with {service.process.returncode}:\n{_tail(service.log)}")
            try:
                if ready():
                    return
            except Exception as exc:  # not up yet
                last = exc
            time.sleep(0.5)
        log = _tail(service.log) if service is not None else ""
        raise StackError(f"{name} did not come up within {timeout_s:.0f}s ({last}):\n{log}")

    @staticmethod
    def _http_ok(url: str) -> bool:
        return httpx.get(url, timeout=3).status_code < 500

    def start_s3(self) -> None:
        self.s3_port = free_port()
        service = self._spawn("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.s3_port)])
        self._wait("moto S3 server", lambda: self._http_ok(f"http://127.0.0.1:{self.s3_port}/moto-api/"), 60, service)
        import boto3

        boto3.client("s3", endpoint_url=self.s3_endpoint, **_boto_credentials()).create_bucket(Bucket=BUCKET)
        self.started.append(f"moto S3 server {self.s3_endpoint} (bucket {BUCKET})")

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start_mlflow(self) -> None:
        self.mlflow_port = free_port()
        service = self._spawn(
            "mlflow",
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                self.pg_url("mlflow", "postgresql+psycopg2"),
                "--artifacts-destination",
                f"s3://{BUCKET}/mlflow",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.mlflow_port),
                "--workers",
                "1",
            ],
            env={**AWS_TEST_CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint},
        )
        self._wait("mlflow server", lambda: self._http_ok(f"{self.mlflow_uri}/health"), 120, service)
        self.started.append(
            f"mlflow server {self.mlflow_uri} (backend PostgreSQL {self.databases['mlflow']}, artifacts s3://{BUCKET}/mlflow)"
        )

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def start_ray(self) -> None:
        from churn_platform.apps.serve_local import ray_environment

        self.ray_port = free_port()
        service = self._spawn(
            "ray-head",
            [
                str(BIN / "ray"),
                "start",
                "--head",
                "--block",
                "--node-ip-address",
                "127.0.0.1",
                "--port",
                str(self.ray_port),
                "--num-cpus",
                "2",
                "--include-dashboard",
                "false",
                "--disable-usage-stats",
                "--object-store-memory",
                str(256 * 1024 * 1024),
                "--metrics-export-port",
                str(free_port()),
                # Ray keeps Unix sockets under its temp folder, whose path must stay short.
                "--temp-dir",
                tempfile.mkdtemp(prefix="rayprod_", dir="/tmp"),
            ],
            env=ray_environment(),
        )

        def ready() -> bool:
            with socket.create_connection(("127.0.0.1", self.ray_port), timeout=2):
                return True

        self._wait("Ray head", ready, 90, service)
        self.env["CHURN_PLATFORM_RAY_ADDRESS"] = f"127.0.0.1:{self.ray_port}"
        self.started.append(f"Ray head 127.0.0.1:{self.ray_port} (ray start --head, Serve's HAProxy ingress)")

    def configure(self, customers: int, days: int, seed: int) -> None:
        """The environment of every production process (what a deployment's secrets and config maps hold)."""
        dagster_home = self.root / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        self.env.update(
            {
                **AWS_TEST_CREDENTIALS,
                "CHURN_PLATFORM_PROFILE": "production",
                "CHURN_PLATFORM_HOME": str(self.root / "home"),
                "CHURN_PLATFORM_PG_HOST": self.pg_host,
                "CHURN_PLATFORM_PG_PORT": str(self.pg_port),
                "CHURN_PLATFORM_PG_USER": self.pg_user,
                "CHURN_PLATFORM_PG_PASSWORD": self.pg_password,
                "CHURN_PLATFORM_PG_DATABASE": self.databases["warehouse"],
                "CHURN_PLATFORM_S3_LANDING": f"s3://{BUCKET}/landing",
                "CHURN_PLATFORM_S3_REPORTS": f"s3://{BUCKET}/reports",
                "CHURN_PLATFORM_S3_ENDPOINT_URL": self.s3_endpoint,
                "CHURN_PLATFORM_MLFLOW_TRACKING_URI": self.mlflow_uri,
                "CHURN_PLATFORM_CUSTOMERS": str(customers),
                "CHURN_PLATFORM_DAYS": str(days),
                "CHURN_PLATFORM_SEED": str(seed),
                "DAGSTER_HOME": str(dagster_home),
                "DAGSTER_PG_HOST": self.pg_host,
                "DAGSTER_PG_PORT": str(self.pg_port),
                "DAGSTER_PG_USER": self.pg_user,
                "DAGSTER_PG_PASSWORD": self.pg_password,
                "DAGSTER_PG_DB": self.databases["dagster"],
                "DAGSTER_COMPUTE_LOGS_BUCKET": BUCKET,
                "RAY_USAGE_STATS_ENABLED": "0",
                "DO_NOT_TRACK": "1",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
                "DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS": "1",
                # Ray's token authentication, with this stack's own token: the head and every
                # driver (the Serve deployer) get it from the environment, not from ~/.ray.
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": secrets.token_hex(32),
            }
        )

    def start_dagster(self) -> None:
        self.webserver_port = free_port()
        workspace = str(REPO / "workspace.yaml")
        webserver = self._spawn(
            "dagster-webserver",
            [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(self.webserver_port)],
        )
        daemon = self._spawn("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace])
        self._wait(
            "dagster-webserver",
            lambda: httpx.get(f"{self.webserver_url}/server_info", timeout=3).status_code == 200,
            180,
            webserver,
        )
        self._wait("dagster-daemon", lambda: self.daemon_healthy(), 180, daemon)
        self.started.append(
            f"dagster-webserver {self.webserver_url} and dagster-daemon (instance in PostgreSQL {self.databases['dagster']})"
        )

    @property
    def webserver_url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}"

    def daemon_healthy(self) -> bool:
        query = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
        body = httpx.post(f"{self.webserver_url}/graphql", json={"query": query}, timeout=10).json()
        if body.get("data") is None:
            raise StackError(f"daemon health query failed: {body.get('errors')}")
        statuses = body["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
        # ASSET evaluates the automation condition sensor; BACKFILL runs what it asks for in ranges.
        wanted = {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR", "ASSET", "BACKFILL"}
        return wanted <= {s["daemonType"] for s in statuses if s["healthy"]}

    def stop(self) -> None:
        for service in reversed(self.services):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for service in reversed(self.services):
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.process.pid, signal.SIGKILL)
                service.process.wait(timeout=10)
        self.services.clear()


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
    }


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
