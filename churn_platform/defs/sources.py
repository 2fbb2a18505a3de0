"""Raw source assets, one per source role the declared business has: read the source, check it
against its data contract, load the accepted rows into the warehouse's raw schema (under the
platform's column names) and the rejected ones, as received and with every rule they break, into
the quarantine schema."""

import datetime as dt

import dagster as dg

from churn_platform.business.declaration import Declaration
from churn_platform.defs.partitions import PARTITIONED_SOURCE, slice_for
from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import SourceResource, Warehouse
from churn_platform.sources.contracts import Contract, contracts_for


def build_source_asset(
    contract: Contract,
    location: str,
    quarantine_limit: float,
    partitions: dg.DailyPartitionsDefinition | None = None,
) -> dg.AssetsDefinition:
    """A source asset reading ``location``; with ``partitions`` it is loaded day by day (by its
    contract's time column), and a backfill of any range of days runs as one run."""
    name = contract.source
    check_name = "quarantine_share_within_limit"

    class SourceLoadConfig(dg.Config):
        max_quarantine_share: float = quarantine_limit
        """The share of received rows that may be quarantined before the blocking check fails
        (the declaration's policy.max_quarantine_share by default)."""

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
            "location": location,
            "key": ", ".join(contract.key),
            "time_column": contract.time_column,
            "columns_read": dg.MetadataValue.md(
                "| column | read from |\n|---|---|\n"
                + "\n".join(
                    f"| {c.name} | {'(not declared: empty)' if c.absent else c.label} |" for c in contract.columns
                )
            ),
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
        context.log.info(f"reading {name} ({location}) from {source.origin}{days}")
        loaded = warehouse.load_source(source, contract, location, partition=part)
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
                "quarantine_rules": dg.MetadataValue.json(counts.rules),
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


def build_source_assets(
    declaration: Declaration, partitions: dg.DailyPartitionsDefinition, max_quarantine_share: float | None = None
) -> list[dg.AssetsDefinition]:
    """A source asset per source the business declares (the usage source partitioned by day); the
    quarantine limit is ``max_quarantine_share``, else the declaration's."""
    contracts = contracts_for(declaration)
    limit = max_quarantine_share if max_quarantine_share is not None else declaration.policy.max_quarantine_share
    return [
        build_source_asset(
            contract,
            declaration.source(role).location,
            limit,
            partitions if role == PARTITIONED_SOURCE else None,
        )
        for role, contract in contracts.items()
    ]
