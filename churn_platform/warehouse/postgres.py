"""The warehouse as a PostgreSQL database (the production profile; dbt-postgres builds on it):
its location, connections, bulk copies from DuckDB, typed reads.

Tables are written by DuckDB ``COPY ... TO`` a CSV file and PostgreSQL ``COPY ... FROM``
it, each column typed from DuckDB's type of it, which is fast (no row-by-row inserts) and
keeps NULL apart from the empty string. Reads come back with the types DuckDB would give:
dates and timestamps as datetime64, numerics as floats.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import os
import re
import tempfile
from collections.abc import Iterator, Sequence

import pandas as pd

from churn_platform.sources.contracts import PARTITION_COLUMN
from churn_platform.warehouse.base import RegistersSource, SourceLoad, Warehouse, check_contract


@dataclasses.dataclass(frozen=True)
class PostgresLocation:
    """A PostgreSQL database (the settings read it from ``CHURN_PLATFORM_PG_*``, as the dbt profile does)."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = dataclasses.field(default="", repr=False)
    database: str = "churn_platform"

    @classmethod
    def from_url(cls, url: str, default_password: str = "") -> PostgresLocation:
        """``postgresql://user[:password]@host:port/database``; without a password in it,
        ``default_password``."""
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(url)
        return cls(
            host=parts.hostname or cls.host,
            port=parts.port or cls.port,
            user=unquote(parts.username or cls.user),
            password=unquote(parts.password) if parts.password else default_password,
            database=unquote(parts.path.lstrip("/")) or cls.database,
        )

    def display(self) -> str:
        """Where it is, never the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


_TYPES = {
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "HUGEINT": "numeric(38, 0)",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "UBIGINT": "numeric(20, 0)",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "VARCHAR": "text",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "INTERVAL": "interval",
    "UUID": "uuid",
    "BLOB": "bytea",
}


def sql_type(duckdb_type: str) -> str:
    """The PostgreSQL type for a DuckDB column type (text for anything without an equivalent)."""
    upper = duckdb_type.upper()
    if upper in _TYPES:
        return _TYPES[upper]
    decimal_type = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", upper)
    if decimal_type:
        return f"numeric({decimal_type.group(1)}, {decimal_type.group(2)})"
    return "text"


class WarehouseConnectionError(RuntimeError):
    """PostgreSQL cannot be reached or the database cannot be created."""


def _create_database(location: PostgresLocation) -> None:
    import psycopg2
    from psycopg2 import sql

    admin = psycopg2.connect(
        host=location.host,
        port=location.port,
        user=location.user,
        password=location.password or None,
        dbname="postgres",
    )
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (location.database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("create database {}").format(sql.Identifier(location.database)))
    finally:
        admin.close()


@contextlib.contextmanager
def connect(location: PostgresLocation) -> Iterator[psycopg2.extensions.connection]:  # noqa: F821
    """A connection in a transaction: committed when the block ends, rolled back on an error.
    A database that does not exist yet is created first."""
    import psycopg2

    def open_connection():
        return psycopg2.connect(
            host=location.host,
            port=location.port,
            user=location.user,
            password=location.password or None,
            dbname=location.database,
            application_name="churn_platform",
        )

    try:
        try:
            con = open_connection()
        except psycopg2.OperationalError as exc:
            if "does not exist" not in str(exc):
                raise
            _create_database(location)
            con = open_connection()
    except psycopg2.OperationalError as exc:
        raise WarehouseConnectionError(
            f"cannot connect to the warehouse {location.display()}: {str(exc).strip()}"
        ) from exc
    try:
        with con:
            yield con
    finally:
        con.close()


def _ensure_schema(cur, schema: str) -> None:
    """``create schema if not exists`` that two transactions may run at once: PostgreSQL lets
    the second fail on the first's committed schema, which is then simply there to use."""
    import psycopg2

    cur.execute("savepoint ensure_schema")
    try:
        cur.execute(f'create schema if not exists "{schema}"')
    except psycopg2.errors.UniqueViolation:
        cur.execute("rollback to savepoint ensure_schema")
    else:
        cur.execute("release savepoint ensure_schema")


def copy_relation(
    staging,
    relation: str,
    con,
    schema: str,
    table: str,
    replace: bool,
    before_copy: tuple[str, Sequence] | list[tuple[str, Sequence]] | None = None,
) -> int:
    """Copy DuckDB ``relation`` (on connection ``staging``) into PostgreSQL ``schema.table`` on
    ``con``, inside ``con``'s transaction. ``replace`` drops and recreates the table; otherwise it
    is created if missing and the statements of ``before_copy`` (SQL, parameters) run first, to
    delete the rows being replaced. Returns the rows copied."""
    columns = staging.execute(f"describe select * from {relation}").fetchall()
    definition = ", ".join(f'"{name}" {sql_type(str(kind))}' for name, kind, *_ in columns)
    target = f'"{schema}"."{table}"'
    statements = [before_copy] if isinstance(before_copy, tuple) else list(before_copy or [])
    with con.cursor() as cur:
        _ensure_schema(cur, schema)
        if replace:
            cur.execute(f"drop table if exists {target} cascade")
        cur.execute(f"create table if not exists {target} ({definition})")
        for statement, params in statements:
            cur.execute(statement, params)
        with tempfile.TemporaryDirectory(prefix="churn_pg_copy_") as tmp:
            path = os.path.join(tmp, "rows.csv")
            literal = path.replace("'", "''")
            staging.execute(f"copy (select * from {relation}) to '{literal}' (format csv, header true)")
            names = ", ".join(f'"{name}"' for name, *_ in columns)
            with open(path, encoding="utf-8") as rows:
                cur.copy_expert(f"copy {target} ({names}) from stdin with (format csv, header true)", rows)
            return cur.rowcount


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates and timestamps as datetime64 and numerics as floats, as DuckDB returns them."""
    for column in frame.columns:
        series = frame[column]
        if series.dtype != object:
            if pd.api.types.is_datetime64_any_dtype(series) and getattr(series.dt, "tz", None) is None:
                frame[column] = series.astype("datetime64[us]")
            continue
        sample = series.dropna()
        if sample.empty:
            continue
        first = sample.iloc[0]
        if isinstance(first, decimal.Decimal):
            frame[column] = pd.to_numeric(series.astype(object).where(series.notna(), None), errors="coerce").astype(
                float
            )
        elif isinstance(first, dt.date) and not isinstance(first, dt.datetime):
            frame[column] = pd.to_datetime(series).astype("datetime64[us]")
    return frame


def read_query(con, sql: str) -> pd.DataFrame:
    """Run ``sql`` and return its rows as a data frame."""
    with con.cursor() as cur:
        cur.execute(sql)
        names = [d.name for d in cur.description]
        frame = pd.DataFrame.from_records(cur.fetchall(), columns=names)
    return _normalise(frame)


@dataclasses.dataclass
class PostgresWarehouse(Warehouse):
    """A PostgreSQL database.

    Raw loads are checked against their contracts by DuckDB in memory, then copied in with
    PostgreSQL's ``COPY`` in one transaction per source: a failed load leaves the previous
    tables as they were. The database is created on first use if the user may create it."""

    postgres: PostgresLocation

    @property
    def location(self) -> str:
        return self.postgres.display()

    @contextlib.contextmanager
    def connect(self) -> Iterator[psycopg2.extensions.connection]:  # noqa: F821
        """A psycopg2 connection in a transaction, committed when the block ends without error."""
        with connect(self.postgres) as con:
            yield con

    def load_source(self, source: RegistersSource, contract, location: str, partition=None) -> SourceLoad:
        import duckdb

        name = contract.source
        time_column = contract.time_column
        with duckdb.connect() as staging:
            counts = check_contract(staging, source, contract, location, partition)
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
                        copy_relation(
                            staging,
                            f"{schema}.{name}",
                            con,
                            schema,
                            name,
                            replace=False,
                            before_copy=(deletes[schema], window),
                        )
                with con.cursor() as cur:
                    cur.execute(f'select count(*) from raw."{name}"')
                    table_rows = int(cur.fetchone()[0])
            schema = [(str(r[0]), sql_type(str(r[1]))) for r in staging.execute(f"describe raw.{name}").fetchall()]
            preview = staging.execute(f"select * from raw.{name} limit 5").df()
        return SourceLoad(counts, schema, table_rows, preview)

    def write_table(self, schema: str, table: str, frame: pd.DataFrame) -> None:
        import duckdb

        with duckdb.connect() as staging, self.connect() as con:
            staging.register("incoming_frame", frame)
            copy_relation(staging, "incoming_frame", con, schema, table, replace=True)

    def query(self, sql: str) -> pd.DataFrame:
        with self.connect() as con:
            return read_query(con, sql)

    def replace_rows(self, schema: str, table: str, frame: pd.DataFrame, keys: list[str]) -> int:
        import duckdb

        with duckdb.connect() as staging, self.connect() as con:
            staging.register("incoming_rows", frame)
            distinct = staging.execute(f"select distinct {', '.join(keys)} from incoming_rows").fetchall()
            match = " and ".join(f'"{k}" = %s' for k in keys)
            copy_relation(
                staging,
                "incoming_rows",
                con,
                schema,
                table,
                replace=False,
                before_copy=[(f'delete from "{schema}"."{table}" where {match}', tuple(row)) for row in distinct],
            )
            with con.cursor() as cur:
                cur.execute(f'select count(*) from "{schema}"."{table}"')
                return int(cur.fetchone()[0])

    def dbt_vars(self) -> dict[str, str]:
        # The password stays in the environment (CHURN_PLATFORM_PG_PASSWORD); it is never a variable.
        return {
            "pg_host": self.postgres.host,
            "pg_port": str(self.postgres.port),
            "pg_user": self.postgres.user,
            "pg_database": self.postgres.database,
        }
