"""The production profile: chosen by one variable, its resources, and the PostgreSQL warehouse
against the machine's real server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import uuid

import pandas as pd
import pytest

from churn_platform.settings import PRODUCTION_REQUIRED, Settings

PRODUCTION_ENV = {
    "CHURN_PLATFORM_PROFILE": "production",
    "CHURN_PLATFORM_PG_HOST": "127.0.0.1",
    "CHURN_PLATFORM_PG_PORT": "5432",
    "CHURN_PLATFORM_PG_USER": "postgres",
    "CHURN_PLATFORM_PG_PASSWORD": "s3cret-value",
    "CHURN_PLATFORM_PG_DATABASE": "churn_profile_test",
    "CHURN_PLATFORM_S3_LANDING": "s3://bucket/landing/",
    "CHURN_PLATFORM_MLFLOW_TRACKING_URI": "http://mlflow:5000",
    "CHURN_PLATFORM_RAY_ADDRESS": "ray-head:6379",
}


@pytest.fixture
def production_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("CHURN_PLATFORM_"):
            monkeypatch.delenv(name)
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CHURN_PLATFORM_HOME", str(tmp_path))
    return PRODUCTION_ENV


def test_production_needs_its_locations_and_says_which(monkeypatch):
    monkeypatch.setenv("CHURN_PLATFORM_PROFILE", "production")
    for name in PRODUCTION_REQUIRED:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError) as error:
        Settings.from_env()
    for name in PRODUCTION_REQUIRED:
        assert name in str(error.value)
    monkeypatch.setenv("CHURN_PLATFORM_PROFILE", "staging")
    with pytest.raises(ValueError, match="local, production"):
        Settings.from_env()


def test_production_settings_and_resources(production_env):
    from churn_platform.defs import build_definitions, warehouse_for
    from churn_platform.defs.resources import PostgresWarehouseResource

    settings = Settings.from_env()
    assert settings.is_production and settings.dbt_target == "postgres"
    assert settings.mlflow_tracking_uri == "http://mlflow:5000" and settings.mlflow_artifact_location is None
    assert settings.effective_sources == "s3://bucket/landing"
    assert settings.ray_address == "ray-head:6379"
    # The password reaches neither the Serve config nor the warehouse resource's config.
    assert settings.features_uri == "postgresql://postgres@127.0.0.1:5432/churn_profile_test"
    warehouse = warehouse_for(settings)
    assert isinstance(warehouse, PostgresWarehouseResource)
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in repr(warehouse)
    assert "s3cret-value" not in warehouse.dbt_vars().values()
    from churn_platform.business.declaration import Declaration
    from churn_platform_tests.business import B2B

    # Production declares its partitions (a live feed): the landing zone is not read to date them.
    declared: Declaration = B2B.model_copy(update={"partitions": B2B.partitions.model_copy(update={"end": "open"})})
    definitions = build_definitions(dataclasses.replace(settings, partitions_start=dt.date(2025, 1, 1)), declared)
    assert definitions.executor.name == "multiprocess"
    assert definitions.resources["source"].sources == "s3://bucket/landing"


def test_local_is_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("CHURN_PLATFORM_PROFILE", raising=False)
    monkeypatch.delenv("CHURN_PLATFORM_TARGET", raising=False)
    settings = Settings(home=tmp_path)
    assert not settings.is_production and settings.dbt_target == "duckdb"
    assert settings.mlflow_tracking_uri.startswith("sqlite:///") and settings.features_uri.endswith("warehouse.duckdb")


@pytest.fixture
def pg_warehouse():
    import psycopg2

    from churn_platform.defs.resources import PostgresWarehouseResource

    name = f"churn_wh_test_{uuid.uuid4().hex[:8]}"
    warehouse = PostgresWarehouseResource(database=name)
    yield warehouse
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
    admin.close()


@pytest.mark.postgres
def test_postgres_warehouse_round_trips_types_nulls_and_replaces_rows(pg_warehouse):
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "snapshot_date": pd.to_datetime(["2025-01-01", "2025-01-01", "2025-02-01"]),
            "model_version": ["1", "1", "2"],
            "probability": [0.25, None, 0.75],
            "note": ["", None, 'quoted, "comma"'],
            "flag": [True, False, True],
        }
    )
    # The database does not exist yet: it is created on first use.
    pg_warehouse.write_table("scores", "t", frame)
    back = pg_warehouse.read_table("scores", "t").sort_values("customer_id").reset_index(drop=True)
    assert list(back.columns) == list(frame.columns)
    assert back["snapshot_date"].dtype.kind == "M" and back["customer_id"].dtype.kind == "i"
    assert (
        back["note"].tolist()[0] == ""
        and back["note"].tolist()[1] is None
        and back["note"].tolist()[2] == 'quoted, "comma"'
    )
    assert pd.isna(back["probability"][1]) and back["probability"][2] == 0.75
    # A numeric computed in SQL comes back as a float, a date as datetime64, like DuckDB gives them.
    summary = pg_warehouse.query("select avg(customer_id) as mean_id, min(snapshot_date::date) as first from scores.t")
    assert summary["mean_id"].dtype.kind == "f" and summary["first"].iloc[0] == pd.Timestamp("2025-01-01")
    # replace_rows deletes the keys it brings again, keeps the others.
    again = frame.iloc[[0]].assign(probability=0.5)
    total = pg_warehouse.replace_rows("scores", "t", again, ["snapshot_date", "model_version"])
    assert total == 2  # (2025-01-01, "1") had two rows, now one; (2025-02-01, "2") kept
    kept = pg_warehouse.read_table("scores", "t").sort_values("customer_id")
    assert kept["probability"].tolist() == [0.5, 0.75]


@pytest.mark.postgres
def test_postgres_warehouse_loads_a_source_through_its_contract(pg_warehouse, tmp_path):
    from churn_platform.defs.resources import SourceResource
    from churn_platform.simulation.generator import GeneratorConfig, generate, write_sources
    from churn_platform.sources.contracts import PartitionSlice
    from churn_platform_tests.business import b2b_contracts

    contracts = b2b_contracts()

    data = generate(GeneratorConfig(customers=60, days=60, seed=3, fault_rate=0.05))
    write_sources(data, tmp_path / "src")
    source = SourceResource(sources=str(tmp_path / "src"))
    loaded = pg_warehouse.load_source(source, contracts["accounts"], "crm_customers")
    assert loaded.counts.quarantined > 0 and loaded.table_rows == loaded.counts.accepted
    assert len(pg_warehouse.read_table("quarantine", "accounts")) == loaded.counts.quarantined
    # A daily slice replaces only its days; loading it twice leaves the same rows.
    contract = contracts["events"]
    first = dt.date(2025, 1, 1)
    whole = PartitionSlice(first, first + dt.timedelta(days=60), first, first + dt.timedelta(days=60))
    pg_warehouse.load_source(source, contract, "usage_events", partition=whole)
    before = pg_warehouse.query("select count(*) as n from raw.events")["n"].iloc[0]
    week = PartitionSlice(first + dt.timedelta(days=7), first + dt.timedelta(days=14), first, whole.last_end)
    pg_warehouse.load_source(source, contract, "usage_events", partition=week)
    pg_warehouse.load_source(source, contract, "usage_events", partition=week)
    after = pg_warehouse.query("select count(*) as n from raw.events")["n"].iloc[0]
    assert after == before


@pytest.mark.postgres
def test_postgres_warehouse_loads_run_in_parallel(pg_warehouse):
    """Sources load in parallel steps, whose first writes create the same schema at once: the
    second waits for the first's transaction and then uses the schema it committed."""
    import threading
    import time

    pg_warehouse.write_table("warmup", "t", pd.DataFrame({"a": [1]}))  # the database exists
    errors = []

    def second_load():
        try:
            pg_warehouse.write_table("raw_parallel", "second", pd.DataFrame({"a": list(range(100))}))
        except Exception as exc:
            errors.append(exc)

    with pg_warehouse.connect() as first, first.cursor() as cur:
        cur.execute('create schema "raw_parallel"')  # not committed yet
        cur.execute('create table "raw_parallel"."first" (a integer)')
        other = threading.Thread(target=second_load)
        other.start()
        time.sleep(1.0)  # the second load now waits on the first's schema
    other.join(timeout=60)
    assert not errors, errors
    assert len(pg_warehouse.read_table("raw_parallel", "second")) == 100
