"""Daily partitions of the usage events and the dbt models that follow them day by day."""

import datetime as dt

import dagster as dg

from churn_platform.settings import Settings
from churn_platform.sources.contracts import PartitionSlice

PARTITIONED_SOURCE = "usage_events"
"""The source loaded day by day; the other sources are small and reloaded whole."""

PARTITIONED_DBT_TAG = "daily_partitioned"
"""The dbt tag of the models built per partition (``int_daily_usage`` by dbt's microbatches, a day
each); which models carry it is said in the dbt project."""


def usage_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    end = settings.partitions_end
    return dg.DailyPartitionsDefinition(
        start_date=settings.partitions_start.isoformat(),
        end_date=end.isoformat() if end is not None else None,
        timezone="UTC",
    )


def slice_for(context: dg.AssetExecutionContext, partitions: dg.DailyPartitionsDefinition) -> PartitionSlice:
    """The days a run covers: one partition, or a range of them (a single-run backfill)."""
    window = context.partition_time_window
    end: dt.datetime | None = partitions.end
    return PartitionSlice(
        start=window.start.date(),
        end=window.end.date(),
        first=partitions.start.date(),
        last_end=end.date() if end is not None else None,
    )


def all_partitions_range(partitions: dg.DailyPartitionsDefinition) -> tuple[str, str]:
    keys = partitions.get_partition_keys()
    if not keys:
        raise ValueError("the usage partitions are empty: their start lies in the future")
    return keys[0], keys[-1]
