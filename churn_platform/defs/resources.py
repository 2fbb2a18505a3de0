"""Dagster resources: the only place that knows where data and models live."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd

from churn_platform import policy, warehouse
from churn_platform.ml.registry import MLflowLocation
from churn_platform.sources.readers import (
    SourceError,
    find_source_file,
    read_source_file,
    read_source_postgres,
    read_source_s3,
)


class SourceResource(dg.ConfigurableResource):
    """Where raw sources come from, by the form of ``sources``:

    * a folder: a ``.parquet`` or ``.csv`` file per source, named by the declaration's ``location``;
    * ``s3://bucket/prefix``: the same files under an S3 prefix (dagster-aws ``S3Resource``;
      ``s3_endpoint_url`` for S3-compatible stores such as MinIO);
    * ``postgresql://user@host:port/database?schema=raw``: one table per source.
    """

    sources: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"

    @property
    def kind(self) -> str:
        if not self.sources:
            raise SourceError(
                "no sources are configured: set CHURN_PLATFORM_SOURCES to a folder, an s3:// prefix or a "
                "postgresql:// URL (the churn-platform command lands the built-in simulation when it is unset)"
            )
        if self.sources.startswith("s3://"):
            return "s3"
        if self.sources.startswith(("postgresql://", "postgres://")):
            return "postgres"
        return "files"

    @property
    def origin(self) -> str:
        if self.kind == "postgres":
            # Never show a password in metadata.
            from urllib.parse import urlsplit

            parts = urlsplit(self.sources)
            return f"postgres:{parts.hostname}:{parts.port or 5432}{parts.path}?{parts.query}"
        return f"{self.kind}:{self.sources}"

    def s3_client(self):
        from dagster_aws.s3 import S3Resource

        return S3Resource(endpoint_url=self.s3_endpoint_url, region_name=self.s3_region).get_client()

    def directory(self) -> Path:
        """The folder of source files (``files`` sources)."""
        return Path(self.sources)

    def register(self, con, location: str) -> str:
        """Make the source at ``location`` (a file name or table, as declared) queryable on DuckDB
        connection ``con``, with a ``__row`` column in input order; returns the relation to select
        from. Parquet files are scanned where they lie (no copy through pandas)."""
        if self.kind == "files":
            path = find_source_file(self.directory(), location)
            if path.suffix.lower() == ".parquet":
                literal = str(path).replace("'", "''")
                return (
                    f"(select * exclude (file_row_number), file_row_number as __row "
                    f"from read_parquet('{literal}', file_row_number = true))"
                )
        frame = self.load(location)
        view = "__source_" + "".join(ch if ch.isalnum() else "_" for ch in location)
        con.register(view, frame.assign(__row=range(len(frame))))
        return view

    def load(self, location: str) -> pd.DataFrame:
        kind = self.kind
        if kind == "s3":
            return read_source_s3(self.s3_client(), self.sources, location)
        if kind == "postgres":
            return read_source_postgres(self.sources, location)
        return read_source_file(self.directory(), location)

    def date_range(self, location: str, column: str) -> tuple[dt.date, dt.date] | None:
        """The first and last day of ``column`` in the source at ``location`` (None when it has
        no readable dates), for partitions that follow the data."""
        import duckdb

        with duckdb.connect() as con:
            relation = self.register(con, location)
            col = '"' + column.replace('"', '""') + '"'
            first, last = con.execute(
                f"select min(d), max(d) from (select cast(try_cast({col} as timestamp) as date) as d "
                f"from {relation}) where d <= current_date"
            ).fetchone()
        return (first, last) if first is not None else None


class BusinessResource(dg.ConfigurableResource):
    """The declared business, for the assets that need more of it than the columns of the dbt models:
    the meaning, bounds and examples of each feature, which training records with the model."""

    declaration_json: str
    """The declaration, as JSON (``Declaration.model_dump_json``)."""

    @classmethod
    def of(cls, declaration) -> BusinessResource:
        return cls(declaration_json=declaration.model_dump_json())

    def declaration(self):
        from churn_platform.business.declaration import Declaration

        return Declaration.model_validate_json(self.declaration_json)

    def catalogue(self, warehouse: Warehouse):
        """The feature catalogue of the last dbt build (``marts.feature_catalogue``), in full."""
        import json

        from churn_platform.business.catalogue import catalogue_from_table

        rows = warehouse.query('select spec from "marts"."feature_catalogue" order by position')
        return catalogue_from_table(self.declaration(), [json.loads(spec) for spec in rows["spec"]])


class GroundTruth(dg.ConfigurableResource):
    """What is known of the true churn probabilities behind the sources. Real data has none (this
    class); the built-in simulation provides a subclass, and ``churn_model`` then logs how close
    the model comes to the best achievable ranking (the oracle)."""

    def oracle_metrics(self, holdout: pd.DataFrame, proba) -> dict[str, float]:
        return {}

    def uplift_oracle_metrics(self, holdout: pd.DataFrame, estimate) -> dict[str, float]:
        """The true uplift's Qini on the holdout contacts, beside the model's (empty: no truth)."""
        return {}

    def survival_oracle_metrics(self, holdout: pd.DataFrame, model_metrics: dict) -> dict[str, float]:
        """The true probabilities' concordance and calibration at each horizon (empty: no truth)."""
        return {}


class Warehouse(dg.ConfigurableResource):
    """The analytical warehouse that dbt builds on, as a Dagster resource: a thin wrapper over
    ``churn_platform.warehouse`` (``DuckDBWarehouseResource`` for the local profile,
    ``PostgresWarehouseResource`` for the production one)."""

    def core(self) -> warehouse.Warehouse:
        raise NotImplementedError

    @property
    def location(self) -> str:
        return self.core().location

    def load_source(self, source: SourceResource, contract, location: str, partition=None) -> warehouse.SourceLoad:
        return self.core().load_source(source, contract, location, partition)

    def write_table(self, schema: str, table: str, frame: pd.DataFrame) -> None:
        self.core().write_table(schema, table, frame)

    def read_table(self, schema: str, table: str) -> pd.DataFrame:
        return self.core().read_table(schema, table)

    def query(self, sql: str) -> pd.DataFrame:
        return self.core().query(sql)

    def replace_rows(self, schema: str, table: str, frame: pd.DataFrame, keys: list[str]) -> int:
        return self.core().replace_rows(schema, table, frame, keys)

    def dbt_vars(self) -> dict[str, str]:
        return self.core().dbt_vars()


class DuckDBWarehouseResource(Warehouse):
    """The warehouse as a DuckDB file (the local profile). Waiting for another process's lock
    is logged to the run's log."""

    path: str
    lock_timeout_s: float = 600.0
    memory_limit: str = "8GB"
    """DuckDB spills to disk beyond this (the dbt profile has the same limit)."""

    def core(self) -> warehouse.DuckDBWarehouse:
        return warehouse.DuckDBWarehouse(
            self.path, self.lock_timeout_s, self.memory_limit, logger=dg.get_dagster_logger()
        )

    def connect(self, read_only: bool = False):
        return self.core().connect(read_only)


class PostgresWarehouseResource(Warehouse):
    """The warehouse as a PostgreSQL database (the production profile)."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    database: str = "churn_platform"

    def core(self) -> warehouse.PostgresWarehouse:
        return warehouse.PostgresWarehouse(
            warehouse.PostgresLocation(self.host, self.port, self.user, self.password, self.database)
        )

    def connect(self):
        return self.core().connect()


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
    """Where HTML reports are written; with ``publish_to`` (``s3://bucket/prefix``, the
    production profile's ``CHURN_PLATFORM_S3_REPORTS``) they are also uploaded there."""

    reports_dir: str
    publish_to: str | None = None
    s3_endpoint_url: str | None = None

    def path_for(self, name: str) -> Path:
        path = Path(self.reports_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def publish(self, path: Path) -> dict[str, dg.MetadataValue]:
        """Upload a written report (when publishing); returns metadata naming where it is."""
        if not self.publish_to:
            return {}
        from dagster_aws.s3 import S3Resource

        bucket, _, prefix = self.publish_to.removeprefix("s3://").partition("/")
        relative = Path(path).resolve().relative_to(Path(self.reports_dir).resolve()).as_posix()
        key = f"{prefix.strip('/')}/{relative}" if prefix.strip("/") else relative
        content_type = {".html": "text/html", ".png": "image/png", ".json": "application/json", ".csv": "text/csv"}.get(
            Path(path).suffix, "application/octet-stream"
        )
        client = S3Resource(endpoint_url=self.s3_endpoint_url).get_client()
        client.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})
        return {"report_s3_uri": dg.MetadataValue.text(f"s3://{bucket}/{key}")}


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
    """The run's thresholds: the monitoring checks' (the retrain sensor uses the same drift
    threshold) and the promotion gate's (the declaration's ``policy``, or ``run``'s options)."""

    drift_threshold: float = policy.DRIFT_THRESHOLD
    """A feature drift share above this warns (CHURN_PLATFORM_DRIFT_THRESHOLD)."""
    drift_sample_rows: int = policy.DRIFT_SAMPLE_ROWS
    """The most rows of each side the feature drift report compares; a larger side is sampled, seeded
    (CHURN_PLATFORM_DRIFT_SAMPLE_ROWS)."""
    roc_auc_floor: float = policy.ROC_AUC_FLOOR
    """The lowest holdout ROC-AUC a model may be promoted with."""
    gate_tolerance: float = policy.GATE_TOLERANCE
    """How much lower than the champion's ROC-AUC a new version's may be and still be promoted."""
    gate_metric: str = "roc_auc"
    """What the gate compares a new version with the champion by: roc_auc or empc (the declaration's policy.gate_metric)."""
    rollout: str = "none"
    """none, or shadow or canary: a version that passes the gate is served beside the champion first (policy.rollout)."""
    rollout_share: float = 0.5
    """The rollout's share of requests (shadow) or customers (canary) (policy.rollout_share)."""
    rollout_min_matured: int = 200
    """Matured live scores a rollout needs before online_comparison decides it (policy.rollout_min_matured)."""
