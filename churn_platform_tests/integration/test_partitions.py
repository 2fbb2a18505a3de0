"""Daily partitions of the usage events: a backfill in ranges loads every row exactly once
(rows outside the partitions are quarantined, never dropped), and re-materializing a
partition leaves the same rows, in the source table and in the dbt models built from it."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg
import duckdb
import pandas as pd
import pytest

from churn_platform.apps.location import platform_definitions
from churn_platform.settings import Settings
from churn_platform.simulation.generator import GeneratorConfig, generate, write_sources
from churn_platform.sources.contracts import OUTSIDE_PARTITIONS, PartitionSlice, load_with_contract
from churn_platform_tests.business import b2b_contracts

DAYS = 60
START = dt.date(2025, 1, 1)
# The models the dbt project tags daily_partitioned.
USAGE_SELECTION = [dg.AssetKey("events"), dg.AssetKey("stg_events"), dg.AssetKey("int_daily_usage")]
# The usage models are tested against the raw accounts (orphan usage), which are loaded with them.
SELECTION = [*USAGE_SELECTION, dg.AssetKey("accounts")]
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("partitions")
    data = generate(GeneratorConfig(customers=150, days=DAYS, seed=21, fault_rate=0.02))
    # Valid rows dated before the first and after the last partition.
    outside = data.usage_events.head(3).copy()
    outside["event_date"] = pd.to_datetime(["2024-12-20", "2025-03-05", "2025-04-01"]).astype(
        outside["event_date"].dtype
    )
    data.usage_events = pd.concat([data.usage_events, outside], ignore_index=True)
    write_sources(data, root / "src")
    # Set partitions (the data's own dates would include the rows placed outside them).
    settings = Settings(
        home=root / "home",
        sources=str(root / "src"),
        days=DAYS,
        partitions_start=START,
        partitions_end_setting=START + dt.timedelta(days=DAYS),
    )
    settings.ensure_dirs()
    saved = dict(os.environ)
    settings.export()
    defs = platform_definitions(settings)
    yield settings, defs, data
    os.environ.clear()
    os.environ.update(saved)


def _materialize(settings, defs, **kwargs) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("daily_pipeline")
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        result = job.execute_in_process(instance=instance, asset_selection=SELECTION, **kwargs)
    assert result.success
    return result


def _tables(settings) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return {
            "raw": con.execute("select * from raw.events order by all").df(),
            "quarantine": con.execute("select * from quarantine.events order by all").df(),
            "int_daily_usage": con.execute("select * from intermediate.int_daily_usage order by all").df(),
        }


def test_partitions_cover_the_configured_days(setup):
    _settings, defs, _ = setup
    job = defs.resolve_job_def("daily_pipeline")
    keys = job.partitions_def.get_partition_keys()
    assert keys[0] == "2025-01-01" and keys[-1] == "2025-03-01" and len(keys) == DAYS
    schedule = defs.resolve_schedule_def("daily_pipeline_schedule")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"


def test_backfill_in_ranges_loads_every_row_once_and_rematerializing_is_idempotent(setup):
    settings, defs, data = setup
    # A backfill of the first 30 days runs as one run (single-run backfill policy)...
    first = _materialize(settings, defs, tags={RANGE_START: "2025-01-01", RANGE_END: "2025-01-30"})
    usage_runs = {e.step_key for e in first.get_asset_materialization_events()}
    assert usage_runs == {"accounts", "events", "dbt_daily_usage"}
    materialized = {
        e.partition for e in first.get_asset_materialization_events() if e.asset_key == dg.AssetKey("events")
    }
    assert len(materialized) == 30
    after_first = _tables(settings)
    assert after_first["raw"]["event_date"].max() < pd.Timestamp("2025-01-31")
    # ...then the rest.
    _materialize(settings, defs, tags={RANGE_START: "2025-01-31", RANGE_END: "2025-03-01"})
    loaded = _tables(settings)

    # Nothing lost: every received row is accepted or quarantined, exactly once.
    received = len(data.usage_events)
    assert len(loaded["raw"]) + len(loaded["quarantine"]) == received
    outside = loaded["quarantine"][loaded["quarantine"]["quarantine_reason"].str.startswith(OUTSIDE_PARTITIONS)]
    assert sorted(outside["event_date"].str[:10]) == ["2024-12-20", "2025-03-05", "2025-04-01"]
    # The reason names the column as the business knows it, and the settings that decide.
    assert "event_date outside the partitions (2025-01-01 to 2025-03-01" in outside["quarantine_reason"].iloc[0]
    assert "CHURN_PLATFORM_PARTITIONS_START" in outside["quarantine_reason"].iloc[0]
    # The early row belongs to the first partition, the late ones to the last.
    assert sorted(outside["partition_date"].astype(str)) == ["2025-01-01", "2025-03-01", "2025-03-01"]

    # The same rows as one unpartitioned load of the whole file, less the rows outside the window.
    with duckdb.connect() as con:
        path = str(settings.sources) + "/usage_events.parquet"
        relation = f"(select *, file_row_number as __row from read_parquet('{path}', file_row_number = true))"
        whole = load_with_contract(con, b2b_contracts()["events"], relation, "accepted", "quarantined")
        expected = con.execute(
            "select * from accepted where event_date >= date '2025-01-01' and event_date < date '2025-03-02' order by all"
        ).df()
    assert whole.received == received
    pd.testing.assert_frame_equal(loaded["raw"].reset_index(drop=True), expected.reset_index(drop=True))

    # The dbt model built per partition holds one row per customer and day, for every loaded day.
    daily = loaded["int_daily_usage"]
    assert not daily.duplicated(["customer_id", "event_date"]).any()
    assert len(daily) == len(loaded["raw"].drop_duplicates(["customer_id", "event_date"]))

    # Re-materializing one partition, and a range, leaves exactly the same rows.
    _materialize(settings, defs, partition_key="2025-01-05")
    _materialize(settings, defs, tags={RANGE_START: "2025-02-20", RANGE_END: "2025-03-01"})
    again = _tables(settings)
    for name, frame in loaded.items():
        pd.testing.assert_frame_equal(again[name], frame, obj=name)

    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for key in USAGE_SELECTION:
            assert len(instance.get_materialized_partitions(key)) == DAYS, key


def test_partition_slice_assigns_each_row_to_one_day():
    part = PartitionSlice(
        start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 3), first=dt.date(2025, 1, 1), last_end=dt.date(2025, 1, 3)
    )
    with duckdb.connect() as con:
        con.execute(
            "create table t as select * from (values (date '2024-06-01'), (date '2025-01-02'), (date '2025-05-01'), (null)) v(d)"
        )
        days = [r[0].isoformat() for r in con.execute(f"select {part.assigned_day_sql('d')} from t").fetchall()]
    assert days == ["2025-01-01", "2025-01-02", "2025-01-02", "2025-01-02"]
    with pytest.raises(ValueError, match="ends after"):
        PartitionSlice(
            start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 5), first=dt.date(2025, 1, 1), last_end=dt.date(2025, 1, 3)
        )


def test_settings_reject_an_end_before_the_start():
    with pytest.raises(ValueError, match="must come after"):
        Settings(home=START, partitions_start=START, partitions_end_setting=dt.date(2024, 1, 1))  # type: ignore[arg-type]


def test_partitions_follow_the_data_unless_set(tmp_path):
    from churn_platform.defs.partitions import PartitionsUndatedError, partition_bounds
    from churn_platform.defs.resources import SourceResource
    from churn_platform_tests.business import B2B

    usage = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "event_date": ["2024-03-02", "2024-05-30", "2099-01-01"],  # a future date is a fault, not a day
            "sessions": [1, 2, 3],
            "minutes": [1.0, 2.0, 3.0],
            "feature_uses": [1, 1, 1],
        }
    )
    usage.to_csv(tmp_path / "usage_events.csv", index=False)
    source = SourceResource(sources=str(tmp_path))
    settings = Settings(home=tmp_path / "home", sources=str(tmp_path))
    assert partition_bounds(settings, B2B, source) == (dt.date(2024, 3, 2), dt.date(2024, 5, 31))
    # The environment (or the declaration) sets them.
    pinned = Settings(home=tmp_path / "home", partitions_start=dt.date(2024, 1, 1), partitions_end_setting="open")
    assert partition_bounds(pinned, B2B, source) == (dt.date(2024, 1, 1), None)
    # No readable date: the error says what to set.
    usage.assign(event_date="someday").to_csv(tmp_path / "usage_events.csv", index=False)
    with pytest.raises(PartitionsUndatedError, match=r"partitions\.start"):
        partition_bounds(settings, B2B, source)
