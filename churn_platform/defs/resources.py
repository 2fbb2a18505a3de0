"""Dagster resources: the only place that knows where data and models live."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd

from churn_platform.ml.registry import MLflowLocation
from churn_platform.sources.contracts import PARTITION_COLUMN, ContractCounts, load_with_contract
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


@dataclasses.dataclass
class SourceLoad:
    """What loading one source (or a slice of its days) into the warehouse did."""

    counts: ContractCounts
    schema: list[tuple[str, str]]
    table_rows: int
    preview: pd.DataFrame


def check_contract(con, source: "SourceResource", contract, partition=None) -> ContractCounts:
    """Check a source against its contract on DuckDB connection ``con``, into ``raw.<source>``
    (accepted) and ``quarantine.<source>`` (rejected, with the reason) on that connection."""
    name = contract.source
    relation = source.register(con, name)
    con.execute("create schema if not exists raw")
    con.execute("create schema if not exists quarantine")
    return load_with_contract(con, contract, relation, f"raw.{name}", f"quarantine.{name}", partition=partition)


class Warehouse(dg.ConfigurableResource):
    """The analytical warehouse that dbt builds on: what assets may ask of it, whatever it is.

    ``WarehouseResource`` is a DuckDB file (the local profile); ``PostgresWarehouseResource``
    is a PostgreSQL database (the production profile). Data contracts are checked by DuckDB
    in both (in memory for PostgreSQL), so both accept and quarantine exactly the same rows."""


    @property
    def location(self) -> str:
        raise NotImplementedError

    def load_source(self, source: "SourceResource", contract, partition=None) -> SourceLoad:
        raise NotImplementedError

    def write_table(self, schema: str, table: str, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def read_table(self, schema: str, table: str) -> pd.DataFrame:
        return self.query(f'select * from "{schema}"."{table}"')

    def query(self, sql: str) -> pd.DataFrame:
        raise NotImplementedError

    def replace_rows(self, schema: str, table: str, frame: pd.DataFrame, keys: list[str]) -> int:
        """Insert ``frame`` into ``schema.table`` (created on first use), first deleting the rows
        whose ``keys`` match one of the frame's; returns the table's rows."""
        raise NotImplementedError

    def dbt_environment(self) -> dict[str, str]:
        """The environment the dbt profile reads this warehouse's location from."""
        raise NotImplementedError


class WarehouseResource(Warehouse):
    """The warehouse as a DuckDB file (the local profile).

    DuckDB allows one writing process at a time. The local profile runs each job's
    steps in one process; when two runs overlap, a connection waits for the other
    run's lock for up to ``lock_timeout_s`` seconds before it fails with a clear error.
    """

    path: str
    lock_timeout_s: float = 600.0
    memory_limit: str = "8GB"
    """DuckDB spills to disk beyond this (the dbt profile has the same limit)."""

    @property
    def location(self) -> str:
        return self.path

    def _open(self, read_only: bool):
        import duckdb

        started = time.monotonic()
        delay, told = 0.2, None
        while True:
            try:
                connection = duckdb.connect(self.path, read_only=read_only, config={"memory_limit": self.memory_limit})
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                waited = time.monotonic() - started
                if waited > self.lock_timeout_s:
                    raise WarehouseLockedError(
                        f"the warehouse {self.path} stayed locked by another process for "
                        f"{self.lock_timeout_s:.0f}s: {exc}"
                    ) from exc
                if told is None or waited - told >= 30:
                    holder = re.search(r"PID (\d+)", str(exc))
                    dg.get_dagster_logger().warning(
                        f"the warehouse {self.path} is locked by another process"
                        + (f" (PID {holder.group(1)})" if holder else "")
                        + f": waiting for it, {waited:.0f}s so far, for up to {self.lock_timeout_s:.0f}s "
                        "(another run or a program holding the DuckDB file open; it is released when that ends)"
                    )
                    told = waited
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                if told is not None:
                    dg.get_dagster_logger().info(f"the warehouse {self.path} is free after {time.monotonic() - started:.0f}s")
                return connection

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator["duckdb.DuckDBPyConnection"]:  # noqa: F821
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = self._open(read_only)
        try:
            yield con
        finally:
            con.close()

    def load_source(self, source: "SourceResource", contract, partition=None) -> SourceLoad:
        name = contract.source
        with self.connect() as con:
            counts = check_contract(con, source, contract, partition)
            schema = [(str(r[0]), str(r[1])) for r in con.execute(f"describe raw.{name}").fetchall()]
            table_rows = int(con.execute(f"select count(*) from raw.{name}").fetchone()[0])
            preview = con.execute(f"select * from raw.{name} limit 5").df()
        return SourceLoad(counts, schema, table_rows, preview)

    def write_table(self, schema: str, table: str, frame: pd.DataFrame) -> None:
        with self.connect() as con:
            con.execute(f'create schema if not exists "{schema}"')
            con.register("incoming_frame", frame)
            con.execute(f'create or replace table "{schema}"."{table}" as select * from incoming_frame')
            con.unregister("incoming_frame")

    def query(self, sql: str) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            return con.execute(sql).df()

    def replace_rows(self, schema: str, table: str, frame: pd.DataFrame, keys: list[str]) -> int:
        target = f'"{schema}"."{table}"'
        match = " and ".join(f'h."{k}" = n."{k}"' for k in keys)
        with self.connect() as con:
            con.execute(f'create schema if not exists "{schema}"')
            con.register("incoming_rows", frame)
            con.execute(f"create table if not exists {target} as select * from incoming_rows limit 0")
            con.execute(f"delete from {target} h using (select distinct {', '.join(keys)} from incoming_rows) n where {match}")
            con.execute(f"insert into {target} by name select * from incoming_rows")
            con.unregister("incoming_rows")
            return int(con.execute(f"select count(*) from {target}").fetchone()[0])

    def dbt_environment(self) -> dict[str, str]:
        return {"CHURN_PLATFORM_WAREHOUSE": self.path, "CHURN_PLATFORM_DUCKDB_MEMORY_LIMIT": self.memory_limit}


class PostgresWarehouseResource(Warehouse):
    """The warehouse as a PostgreSQL database (the production profile; dbt-postgres builds on it).

    Raw loads are checked against their contracts by DuckDB in memory, then copied in with
    PostgreSQL's ``COPY`` in one transaction per source: a failed load leaves the previous
    tables as they were. The database is created on first use if the user may create it."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    database: str = "churn_platform"

    @property
    def location(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def _postgres(self):
        from churn_platform.settings import PostgresLocation

        return PostgresLocation(self.host, self.port, self.user, self.password, self.database)

    @contextlib.contextmanager
    def connect(self) -> Iterator["psycopg2.extensions.connection"]:  # noqa: F821
        """A psycopg2 connection in a transaction, committed when the block ends without error."""
        from churn_platform.warehouse_pg import connect

        with connect(self._postgres()) as con:
            yield con

    def load_source(self, source: "SourceResource", contract, partition=None) -> SourceLoad:
        import duckdb

        from churn_platform.warehouse_pg import copy_relation, sql_type

        name = contract.source
        time_column = contract.time_column
        with duckdb.connect() as staging:
            counts = check_contract(staging, source, contract, partition)
            with self.connect() as con:
                if partition is None:
                    copy_relation(staging, f"raw.{name}", con, "raw", name, replace=True)
                    copy_relation(staging, f"quarantine.{name}", con, "quarantine", name, replace=True)
                else:
                    window = (partition.start.isoformat(), partition.end.isoformat())
                    deletes = {
                        "raw": f'delete from raw."{name}" where "{time_column}" >= %s::date and "{time_column}" < %s::date',
                        "quarantine": f'delete from quarantine."{name}" where {PARTITION_COLUMN} >= %s::date and {PARTITION_COLUMN} < %s::date',
                    }
                    for schema in ("raw", "quarantine"):
                        copy_relation(staging, f"{schema}.{name}", con, schema, name, replace=False, before_copy=(deletes[schema], window))
                with con.cursor() as cur:
                    cur.execute(f'select count(*) from raw."{name}"')
                    table_rows = int(cur.fetchone()[0])
            schema = [(str(r[0]), sql_type(str(r[1]))) for r in staging.execute(f"describe raw.{name}").fetchall()]
            preview = staging.execute(f"select * from raw.{name} limit 5").df()
        return SourceLoad(counts, schema, table_rows, preview)

    def write_table(self, schema: str, table: str, frame: pd.DataFrame) -> None:
        import duckdb

        from churn_platform.warehouse_pg import copy_relation

        with duckdb.connect() as staging, self.connect() as con:
            staging.register("incoming_frame", frame)
            copy_relation(staging, "incoming_frame", con, schema, table, replace=True)

    def query(self, sql: str) -> pd.DataFrame:
        from churn_platform.warehouse_pg import read_query

        with self.connect() as con:
            return read_query(con, sql)

    def replace_rows(self, schema: str, table: str, frame: pd.DataFrame, keys: list[str]) -> int:
        import duckdb

        from churn_platform.warehouse_pg import copy_relation

        with duckdb.connect() as staging, self.connect() as con:
            staging.register("incoming_rows", frame)
            distinct = staging.execute(f"select distinct {', '.join(keys)} from incoming_rows").fetchall()
            match = " and ".join(f'"{k}" = %s' for k in keys)
            copy_relation(
                staging, "incoming_rows", con, schema, table, replace=False,
                before_copy=[(f'delete from "{schema}"."{table}" where {match}', tuple(row)) for row in distinct],
            )
            with con.cursor() as cur:
                cur.execute(f'select count(*) from "{schema}"."{table}"')
                return int(cur.fetchone()[0])

    def dbt_environment(self) -> dict[str, str]:
        # The password stays whatever the environment already holds; it is never written here.
        return {
            "CHURN_PLATFORM_PG_HOST": self.host,
            "CHURN_PLATFORM_PG_PORT": str(self.port),
            "CHURN_PLATFORM_PG_USER": self.user,
            "CHURN_PLATFORM_PG_DATABASE": self.database,
        }


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
        content_type = {".html": "text/html", ".png": "image/png", ".json": "application/json"}.get(Path(path).suffix, "application/octet-stream")
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
    """Thresholds of the monitoring checks (the retrain sensor uses the same drift threshold)."""

    drift_threshold: float = 0.3
    """A feature drift share above this warns (CHURN_PLATFORM_DRIFT_THRESHOLD)."""
