"""Business monitoring: the monthly churn, MRR churn and NRR mart, charted for the UI."""

import dagster as dg

from churn_platform.defs.automation import follow_parents
from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import ReportStore, Warehouse
from churn_platform.monitoring.business import business_chart, inline_png, latest_complete, markdown_table


@dg.asset(
    group_name="business",
    deps=[dg.AssetKey("business_metrics_monthly")],
    kinds={"python", "matplotlib"},
    freshness_policy=freshness_for("business"),
    automation_condition=follow_parents(),
    description=(
        "Chart and headline numbers of `business_metrics_monthly`: customer churn rate, MRR churn "
        "and net revenue retention of the latest complete month, as metadata that the UI plots over time."
    ),
)
def business_health(
    context: dg.AssetExecutionContext, warehouse: Warehouse, reports: ReportStore
) -> dg.MaterializeResult:
    frame = warehouse.read_table("business", "business_metrics_monthly")
    if frame.empty:
        raise dg.Failure("business_metrics_monthly is empty: the sources cover less than two months")
    path = reports.path_for("business_health.png")
    png = business_chart(frame, path)
    latest = latest_complete(frame)
    metadata: dict[str, object] = {
        "months": len(frame),
        "chart_path": dg.MetadataValue.path(str(path)),
        **reports.publish(path),
        "chart": dg.MetadataValue.md(inline_png(png, "monthly churn and retention")),
        "by_month": dg.MetadataValue.md(markdown_table(frame)),
    }
    if latest is not None:
        metadata.update(
            {
                "latest_complete_month": str(latest["month"])[:10],
                "churn_rate": float(latest["churn_rate"]),
                "mrr_churn_rate": float(latest["mrr_churn_rate"]),
                "net_revenue_retention": float(latest["net_revenue_retention"]),
                "customers_at_start": int(latest["customers_at_start"]),
            }
        )
        context.log.info(
            f"{metadata['latest_complete_month']}: churn {latest['churn_rate']:.1%}, MRR churn {latest['mrr_churn_rate']:.1%}, "
            f"NRR {latest['net_revenue_retention']:.1%}"
        )
    return dg.MaterializeResult(metadata=metadata)
