"""int_daily_usage's microbatches replace their days on both warehouses: a day built again after a
row left the source no longer holds that row (a merge on a key would keep it), whether the batches
are days or months (CHURN_PLATFORM_USAGE_BATCH_SIZE, set by a long run)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import duckdb
import pytest

from churn_platform.business.catalogue import build_catalogue, dbt_vars
from churn_platform.defs.dbt import USAGE_BATCH_SIZE_ENV, dbt_executable, usage_batch_size
from churn_platform.settings import DBT_PROJECT_DIR
from churn_platform_tests.business import B2B

ROWS = [(1, "2025-01-01", 1), (1, "2025-01-02", 2), (2, "2025-01-02", 3), (2, "2025-02-01", 4)]


def _build(target: str, variables: dict, start: str, end: str, tmp_path, batch: str = "day") -> str:
    args = [dbt_executable(), "run", "--select", "tag:daily_partitioned", "--target", target]
    business = dbt_vars(B2B, build_catalogue(B2B), usage_begin="2025-01-01")
    args += ["--vars", json.dumps({**variables, **business}), "--event-time-start", start, "--event-time-end", end]
    args += ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    env = {**os.environ, USAGE_BATCH_SIZE_ENV: batch}
    result = subprocess.run(args, cwd=DBT_PROJECT_DIR, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def _duckdb(tmp_path):
    path = str(tmp_path / "w.duckdb")

    def sql(statement: str):
        with duckdb.connect(path) as con:
            return con.execute(statement).fetchall()

    return "duckdb", {"warehouse_path": path}, sql, lambda: None


def _postgres(tmp_path):
    import psycopg2

    name = f"churn_mb_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'create database "{name}"')

    def sql(statement: str):
        con = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=name)
        try:
            with con, con.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall() if cur.description else []
        finally:
            con.close()

    def drop():
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
        admin.close()

    return "postgres", {"pg_database": name}, sql, drop


def test_long_runs_build_months_and_short_ones_days():
    assert usage_batch_size(1) == usage_batch_size(31) == "day"
    assert usage_batch_size(32) == usage_batch_size(365) == "month"
    assert usage_batch_size(365, "day") == "day" and usage_batch_size(1, "month") == "month"
    with pytest.raises(ValueError, match="CHURN_PLATFORM_USAGE_BATCH_SIZE='week': choose one of day, month"):
        usage_batch_size(10, "week")


@pytest.mark.parametrize("batch", ["day", "month"])
@pytest.mark.parametrize(
    "warehouse", [_duckdb, pytest.param(_postgres, marks=pytest.mark.postgres)], ids=["duckdb", "postgres"]
)
def test_a_day_built_again_is_replaced_not_merged(warehouse, batch, tmp_path):
    target, variables, sql, drop = warehouse(tmp_path)
    try:
        sql("create schema raw")
        sql(
            "create table raw.events (customer_id bigint, event_date date, sessions double precision, "
            "minutes double precision, feature_uses double precision)"
        )
        values = ", ".join(f"({c}, date '{d}', {s}, {s}.0, {s})" for c, d, s in ROWS)
        sql(f"insert into raw.events values {values}")
        log = _build(target, variables, "2025-01-01", "2025-02-02", tmp_path, batch)
        batches = {"day": 32, "month": 2}[batch]
        assert f"Batch {batches} of {batches} OK" in log and f"of {batches + 1}" not in log, log[-2000:]
        query = (
            "select customer_id, cast(event_date as varchar), cast(sessions as integer) from intermediate.int_daily_usage "
            "order by 1, 2"
        )
        assert sql(query) == [(1, "2025-01-01", 1), (1, "2025-01-02", 2), (2, "2025-01-02", 3), (2, "2025-02-01", 4)]
        # Customer 2's row of the second day leaves the source; that day is built again.
        sql("delete from raw.events where customer_id = 2 and event_date = date '2025-01-02'")
        sql("update raw.events set sessions = 5 where event_date = date '2025-01-02'")
        _build(target, variables, "2025-01-02", "2025-01-03", tmp_path, batch)
        assert sql(query) == [(1, "2025-01-01", 1), (1, "2025-01-02", 5), (2, "2025-02-01", 4)]
    finally:
        drop()
