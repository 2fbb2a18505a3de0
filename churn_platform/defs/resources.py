"""Dagster resources: the only place that knows where data and models live."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd

from churn_platform.ml.registry import MLflowLocation
from churn_platform.sources.generator import GeneratorConfig
from churn_platform.sources.readers import (
    ensure_generated,
    find_source_file,
    read_source_file,
    read_source_postgres,
    read_source_s3,
)


class SourceResource(dg.ConfigurableResource):
    """Where raw sources come from, by the form of ``sources``:

    * empty: the built-in generator (``customers``, ``days``, ``seed``), written to ``landing_dir``;
    * a folder: ``<name>.parquet`` or ``<name>.csv`` per source;
    * ``s3://bucket/prefix``: the same files under an S3 prefix (dagster-aws ``S3Resource``;
      ``s3_endpoint_url`` for S3-compatible stores such as MinIO);
    * ``postgresql://user@host:port/database?schema=raw``: one table per source.
    """

    sources: str | None = None
    landing_dir: str
    customers: int = 2_000
    days: int = 365
    seed: int = 7
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"

    @property
    def kind(self) -> str:
        if not self.sources:
            return "generator"
        if self.sources.startswith("s3://"):
            return "s3"
        if self.sources.startswith(("postgresql://", "postgres://")):
            return "postgres"
        return "files"

    @property
    def origin(self) -> str:
        if self.kind == "generator":
            return f"generator(customers={self.customers}, days={self.days}, seed={self.seed})"
        if self.kind == "postgres":
            # Never show a password in metadata.
            from urllib.parse import urlsplit

            parts = urlsplit(self.sources)
            return f"postgres:{parts.hostname}:{parts.port or 5432}{parts.path}?{parts.query}"
        return f"{self.kind}:{self.sources}"

    def s3_client(self):
        from dagster_aws.s3 import S3Resource

        return S3Resource(endpoint_url=self.s3_endpoint_url, region_name=self.s3_region).get_client()

    def register(self, con, name: str) -> str:
        """Make source ``name`` queryable on DuckDB connection ``con``, with a ``__row`` column
        in input order; returns the relation to select from. Parquet files are scanned
        where they lie (no copy through pandas)."""
        if self.kind in ("files", "generator"):
            directory = Path(self.sources) if self.kind == "files" else self._generated()
            path = find_source_file(directory, name)
            if path.suffix == ".parquet":
                literal = str(path).replace("'", "''")
                return f"(select *, file_row_number as __row from read_parquet('{literal}', file_row_number = true))"
        frame = self.load(name)
        view = f"__source_{name}"
        con.register(view, frame.assign(__row=range(len(frame))))
        return view

    def ground_truth_dir(self) -> Path | None:
        """Where generated sources keep their ground truth (``_ground_truth``), if anywhere."""
        if self.kind == "generator":
            candidate = Path(self.landing_dir) / "_ground_truth"
        elif self.kind == "files":
            candidate = Path(self.sources) / "_ground_truth"
        else:
            return None
        return candidate if candidate.is_dir() else None

    def _generated(self) -> Path:
        config = GeneratorConfig(customers=self.customers, days=self.days, seed=self.seed)
        return ensure_generated(Path(self.landing_dir), config)

    def load(self, name: str) -> pd.DataFrame:
        kind = self.kind
        if kind == "files":
            return read_source_file(Path(self.sources), name)
        if kind == "s3":
            return read_source_s3(self.s3_client(), self.sources, name)
        if kind == "postgres":
            return read_source_postgres(self.sources, name)
        return read_source_file(self._generated(), name)


class WarehouseLockedError(RuntimeError):
    pass


class WarehouseResource(dg.ConfigurableResource):
    """The analytical warehouse (a DuckDB file) that dbt builds on.

    DuckDB allows one writing process at a time. The local profile runs each job's
    steps in one process; when two runs overlap, a connection waits for the other
    run's lock for up to ``lock_timeout_s`` seconds before it fails with a clear error.
    """

    path: str
    lock_timeout_s: float = 600.0
    memory_limit: str = "8GB"
    """DuckDB spills to disk beyond this (the dbt profile has the same limit)."""

    def _open(self, read_only: bool):
        import duckdb

        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.2
        while True:
            try:
                return duckdb.connect(self.path, read_only=read_only, config={"memory_limit": self.memory_limit})
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    raise WarehouseLockedError(
                        f"the warehouse {self.path} stayed locked by another process for "
                        f"{self.lock_timeout_s:.0f}s: {exc}"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator["duckdb.DuckDBPyConnection"]:  # noqa: F821
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = self._open(read_only)
        try:
            yield con
        finally:
            con.close()

    def write_table(self, schema: str, table: str, frame: pd.DataFrame) -> None:
        with self.connect() as con:
            con.execute(f'create schema if not exists "{schema}"')
            con.register("incoming_frame", frame)
            con.execute(f'create or replace table "{schema}"."{table}" as select * from incoming_frame')
            con.unregister("incoming_frame")

    def read_table(self, schema: str, table: str) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            return con.execute(f'select * from "{schema}"."{table}"').df()


class MLflowResource(dg.ConfigurableResource):
    """The MLflow tracking server and model registry."""

    tracking_uri: str
    experiment_name: str
    artifact_location: str | None = None
    registered_model_name: str = "churn_model"

    @property
    def location(self) -> MLflowLocation:
        return MLflowLocation(self.tracking_uri, self.experiment_name, self.artifact_location)


class ReportStore(dg.ConfigurableResource):
    """Where HTML reports are written."""

    reports_dir: str

    def path_for(self, name: str) -> Path:
        path = Path(self.reports_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


class Notifier(dg.ConfigurableResource):
    """Alerts for failed checks, freshness failures, failed runs and promotions.

    Every alert is logged; with ``webhook_url`` (``CHURN_PLATFORM_ALERT_WEBHOOK_URL``) it is also
    posted in Slack's incoming-webhook format. Delivery never raises."""

    webhook_url: str | None = None
    timeout_s: float = 5.0

    def notify(self, kind: str, title: str, details: dict | None = None, logger=None) -> bool:
        from churn_platform.monitoring.alerts import Alert, deliver

        return deliver(Alert(kind, title, dict(details or {})), self.webhook_url, self.timeout_s, logger)


class PredictionLogStore(dg.ConfigurableResource):
    """Where the prediction API writes its Parquet prediction log (``<home>/prediction_log``)."""

    path: str

    def read(self) -> pd.DataFrame:
        from churn_platform.serving.prediction_log import read_prediction_log

        return read_prediction_log(self.path)


class MonitoringPolicy(dg.ConfigurableResource):
    """Thresholds of the monitoring checks (the retrain sensor uses the same drift threshold)."""

    drift_threshold: float = 0.3
    """A feature drift share above this warns (CHURN_PLATFORM_DRIFT_THRESHOLD)."""
