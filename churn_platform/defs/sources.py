"""Raw source assets: read each source, check it against its data contract, load the
accepted rows into the warehouse's raw schema and the rejected ones, with their
reasons, into the quarantine schema."""

import dagster as dg

from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import SourceResource, WarehouseResource
from churn_platform.sources.contracts import CONTRACTS, load_with_contract
from churn_platform.sources.generator import SOURCE_NAMES


class SourceLoadConfig(dg.Config):
    max_quarantine_share: float = 0.05
    """The share of received rows that may be quarantined before the blocking check fails."""


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
        with warehouse.connect() as con:
            relation = source.register(con, name)
            con.execute("create schema if not exists raw")
            con.execute("create schema if not exists quarantine")
            counts = load_with_contract(con, contract, relation, f"raw.{name}", f"quarantine.{name}")
            schema = con.execute(f"describe raw.{name}").fetchall()
            preview = con.execute(f"select * from raw.{name} limit 5").df()
        context.log.info(
            f"{name}: received {counts.received:,}, accepted {counts.accepted:,}, "
            f"quarantined {counts.quarantined:,} {counts.reasons or ''}"
        )
        share = counts.quarantine_share
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": counts.accepted,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name=str(row[0]), type=str(row[1])) for row in schema]
                ),
                "received_rows": counts.received,
                "accepted_rows": counts.accepted,
                "quarantined_rows": counts.quarantined,
                "quarantine_share": share,
                "quarantine_reasons": dg.MetadataValue.json(counts.reasons),
                "origin": source.origin,
                "table": f"raw.{name}",
                "quarantine_table": f"quarantine.{name}",
                "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
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


source_assets = [build_source_asset(name) for name in SOURCE_NAMES]
