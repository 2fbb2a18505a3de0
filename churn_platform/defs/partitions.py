"""Daily partitions of the usage events and the dbt models that follow them day by day."""

import datetime as dt

import dagster as dg

from churn_platform.business.declaration import PARTITIONED_ROLE, Declaration
from churn_platform.settings import OPEN_ENDED, Settings
from churn_platform.sources.contracts import PartitionSlice, contracts_for

PARTITIONED_SOURCE = PARTITIONED_ROLE
"""The source loaded day by day (usage); the other sources are small and reloaded whole."""

PARTITIONED_DBT_TAG = "daily_partitioned"
"""The dbt tag of the models built per partition (``int_daily_usage`` by dbt's microbatches, a day
each); which models carry it is said in the dbt project."""


class PartitionsUndatedError(ValueError):
    """The partitions should follow the data, and the usage source has no readable dates."""


def partition_bounds(settings: Settings, declaration: Declaration, source) -> tuple[dt.date, dt.date | None]:
    """The first day of the usage partitions and the day after the last (None: open-ended): the
    environment's (``CHURN_PLATFORM_PARTITIONS_START`` / ``_END``), else the declaration's
    (``partitions``), else the usage data's first and last day (read from ``source``)."""
    start = settings.partitions_start or declaration.partitions.start
    end = settings.partitions_end_setting or declaration.partitions.end
    if start is None or end is None:
        contract = contracts_for(declaration)[PARTITIONED_SOURCE]
        column = contract.column(contract.time_column).label
        location = declaration.sources.events.location
        try:
            found = source.date_range(location, column)
        except Exception as exc:
            raise PartitionsUndatedError(
                f"the usage partitions follow the data, but the usage source ({location}) cannot be read: {exc}. "
                "Set partitions.start (and partitions.end, or end: open) in the declaration, or "
                "CHURN_PLATFORM_PARTITIONS_START"
            ) from exc
        if found is None:
            raise PartitionsUndatedError(
                f"the usage partitions follow the data, but column {column!r} of the usage source ({location}) "
                "has no readable dates up to today. Set partitions.start in the declaration, or "
                "CHURN_PLATFORM_PARTITIONS_START"
            )
        start = start or found[0]
        if end is None:
            end = found[1] + dt.timedelta(days=1)
    if end == OPEN_ENDED:
        return start, None
    if end <= start:  # type: ignore[operator]
        raise ValueError(f"the usage partitions end ({end}) must come after their start ({start})")
    return start, end  # type: ignore[return-value]


def usage_partitions(start: dt.date, end: dt.date | None) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=start.isoformat(),
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
