"""Raw source assets: read each source, load it into the warehouse's raw schema."""


import dagster as dg

from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import SourceResource, WarehouseResource
from churn_platform.sources.generator import SOURCE_NAMES

DESCRIPTIONS = {
    "crm_customers": "CRM accounts: plan, contract, region, segment, seats, channel, cancellation.",
    "usage_events": "Product usage per customer and day: sessions, minutes, feature uses.",
    "billing_invoices": "Monthly invoices with payment status (paid, late, failed, open).",
    "support_tickets": "Support tickets: opened and resolved times, category, priority, satisfaction.",
}


def _column_schema(frame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in frame.dtypes.items()])


def build_source_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name="sources",
        description=DESCRIPTIONS[name],
        kinds={"python", "duckdb"},
        freshness_policy=freshness_for("sources"),
    )
    def _source(context: dg.AssetExecutionContext, source: SourceResource, warehouse: WarehouseResource):
        context.log.info(f"reading {name} from {source.origin}")
        frame = source.load(name)
        warehouse.write_table("raw", name, frame)
        context.log.info(f"loaded {len(frame):,} rows into raw.{name}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(frame),
                "dagster/column_schema": _column_schema(frame),
                "origin": source.origin,
                "table": f"raw.{name}",
                "preview": dg.MetadataValue.md(frame.head(5).to_markdown(index=False)),
            }
        )

    return _source


source_assets = [build_source_asset(name) for name in SOURCE_NAMES]
