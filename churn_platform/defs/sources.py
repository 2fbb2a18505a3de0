"""Raw source assets: read each source, check it against its data contract, load the
accepted rows into the warehouse's raw schema and the rejected ones, with their
reasons, into the quarantine schema."""

import datetime as dt

import dagster as dg

from churn_platform import policy
from churn_platform.defs.partitions import PARTITIONED_SOURCE, slice_for
from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import SourceResource, Warehouse
from churn_platform.sources.contracts import CONTRACTS, SOURCE_NAMES


class SourceLoadConfig(dg.Config):
    max_quarantine_share: float = policy.MAX_QUARANTINE_SHARE
    """The share of received rows that may be quarantined before the blocking check fails."""


def build_source_asset(name: str, partitions: dg.DailyPartitionsDefinition | None = None) -> dg.AssetsDefinition:
    """A source asset; with ``partitions`` it is loaded day by day (by its contract's time
    column), and a backfill of any range of days runs as one run."""
    contract = CONTRACTS[name]
    check_name = "quarantine_share_within_limit"
    partition_metadata = (
        {"partitioned_by": f"{contract.time_column} (daily, UTC)", "partitions_start": str(partitions.start.date())}
        if partitions is not None
        else {}
    )

    @dg.asset(
        name=name,
        group_name="sources",
        description=contract.description,
        kinds={"python", "duckdb"},
        freshness_policy=freshness_for("sources"),
        check_specs=[
            dg.AssetCheckSpec(
                check_name,
                asset=name,
                blocking=True,
                description="Fails, and stops downstream assets, when too many received rows break the contract.",
            )
        ],
        metadata={
            "contract_version": contract.version,
            "key": ", ".join(contract.key),
            "time_column": contract.time_column,
            **partition_metadata,
        },
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions is not None else None,
    )
    def _source(
        context: dg.AssetExecutionContext,
        config: SourceLoadConfig,
        source: SourceResource,
        warehouse: Warehouse,
    ):
        part = slice_for(context, partitions) if partitions is not None else None
        days = f" for {part.start} to {part.end - dt.timedelta(days=1)}" if part is not None else ""
        context.log.info(f"reading {name} from {source.origin}{days}")
        loaded = warehouse.load_source(source, contract, partition=part)
        counts, table_rows, preview = loaded.counts, loaded.table_rows, loaded.preview
        context.log.info(
            f"{name}{days}: received {counts.received:,}, accepted {counts.accepted:,}, "
            f"quarantined {counts.quarantined:,} {counts.reasons or ''}"
        )
        slice_metadata = (
            {
                "partition_days": f"{part.start} to {part.end - dt.timedelta(days=1)}",
                "table_rows": table_rows,
            }
            if part is not None
            else {}
        )
        share = counts.quarantine_share
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": counts.accepted,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name=column, type=kind) for column, kind in loaded.schema]
                ),
                "received_rows": counts.received,
                "accepted_rows": counts.accepted,
                "quarantined_rows": counts.quarantined,
                "quarantine_share": share,
                "quarantine_reasons": dg.MetadataValue.json(counts.reasons),
                "origin": source.origin,
                "table": f"raw.{name}",
                "warehouse": warehouse.location,
                "quarantine_table": f"quarantine.{name}",
                "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
                **slice_metadata,
            }
        )
        yield dg.AssetCheckResult(
            check_name=check_name,
            passed=share <= config.max_quarantine_share,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{share:.2%} of {counts.received:,} rows quarantined (limit {config.max_quarantine_share:.2%})",
            metadata={"quarantine_share": share, "limit": config.max_quarantine_share, **counts.reasons},
        )

    return _source


def build_source_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [build_source_asset(name, partitions if name == PARTITIONED_SOURCE else None) for name in SOURCE_NAMES]
