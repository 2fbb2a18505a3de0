"""Raw source assets: read each source, check it against its data contract, load the
accepted rows into the warehouse's raw schema and the rejected ones, with their
reasons, into the quarantine schema."""

import dagster as dg

from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import SourceResource, WarehouseResource
from churn_platform.sources.contracts import CONTRACTS, apply_contract
from churn_platform.sources.generator import SOURCE_NAMES


class SourceLoadConfig(dg.Config):
    max_quarantine_share: float = 0.05
    """The share of received rows that may be quarantined before the blocking check fails."""


def _column_schema(frame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in frame.dtypes.items()])


def build_source_asset(name: str) -> dg.AssetsDefinition:
    contract = CONTRACTS[name]
    check_name = "quarantine_share_within_limit"

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
        metadata={"contract_version": contract.version, "key": ", ".join(contract.key), "time_column": contract.time_column},
    )
    def _source(
        context: dg.AssetExecutionContext,
        config: SourceLoadConfig,
        source: SourceResource,
        warehouse: WarehouseResource,
    ):
        context.log.info(f"reading {name} from {source.origin}")
        frame = source.load(name)
        result = apply_contract(frame, contract)
        warehouse.write_table("raw", name, result.accepted)
        warehouse.write_table("quarantine", name, result.quarantined)
        context.log.info(
            f"{name}: received {result.received:,}, accepted {len(result.accepted):,}, "
            f"quarantined {len(result.quarantined):,} {result.reasons() or ''}"
        )
        share = result.quarantine_share
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(result.accepted),
                "dagster/column_schema": _column_schema(result.accepted),
                "received_rows": result.received,
                "accepted_rows": len(result.accepted),
                "quarantined_rows": len(result.quarantined),
                "quarantine_share": share,
                "quarantine_reasons": dg.MetadataValue.json(result.reasons()),
                "origin": source.origin,
                "table": f"raw.{name}",
                "quarantine_table": f"quarantine.{name}",
                "preview": dg.MetadataValue.md(result.accepted.head(5).to_markdown(index=False)),
            }
        )
        yield dg.AssetCheckResult(
            check_name=check_name,
            passed=share <= config.max_quarantine_share,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{share:.2%} of {result.received:,} rows quarantined (limit {config.max_quarantine_share:.2%})",
            metadata={"quarantine_share": share, "limit": config.max_quarantine_share, **result.reasons()},
        )

    return _source


source_assets = [build_source_asset(name) for name in SOURCE_NAMES]
