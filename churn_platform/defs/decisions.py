"""Retention decisions on the asset graph: the worklist a customer-success team works from."""

import dataclasses

import dagster as dg
import pandas as pd

from churn_platform.decisions.targeting import TargetingPolicy, expected_benefit, worklist_from_scores
from churn_platform.defs.automation import follow_parents
from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import BusinessResource, ReportStore, Warehouse
from churn_platform.defs.scores import SCORES_SCHEMA, SCORES_TABLE

DECISIONS_SCHEMA = "decisions"
WORKLIST_TABLE = "retention_worklist"


class WorklistConfig(dg.Config):
    """A campaign's name and, for this run, any of the declaration's ``retention`` settings."""

    campaign: str = ""
    """The campaign's name (default: the business and the scores' snapshot date). It seeds the
    control arm: the same name holds out the same customers."""
    max_contacts: int | None = None
    """The most customers selected (treated and control); default: the declaration's."""
    max_spend: float | None = None
    """The most spent on the treated customers; default: the declaration's."""
    contact_cost: float | None = None
    """What one contact costs; default: the declaration's."""
    control_share: float | None = None
    """The share held out as a control; default: the declaration's."""


def targeting_policy(declaration, config: WorklistConfig) -> TargetingPolicy:
    """The declaration's ``retention`` settings, with the run's overrides."""
    settings = declaration.retention.model_dump()
    overrides = {
        k: getattr(config, k)
        for k in ("max_contacts", "max_spend", "contact_cost", "control_share")
        if getattr(config, k) is not None
    }
    return TargetingPolicy(**{**settings, **overrides})


@dg.asset(
    group_name="decisions",
    deps=[dg.AssetKey("churn_scores")],
    kinds={"python", "duckdb"},
    freshness_policy=freshness_for("decisions"),
    automation_condition=follow_parents(),
    description=(
        "Whom to contact this campaign: the scored customers with the best expected benefit of a contact "
        "(churn probability × value at risk × save rate − contact cost) while it is positive and the budget "
        "lasts, a share of them held out as a control by a hash of the campaign and the customer's key; each "
        "with the reason (risk, drivers, value, expected benefit). Table `decisions.retention_worklist` and a "
        "CSV and Parquet export a CRM can import."
    ),
)
def retention_worklist(
    context: dg.AssetExecutionContext,
    config: WorklistConfig,
    warehouse: Warehouse,
    business: BusinessResource,
    reports: ReportStore,
) -> dg.MaterializeResult:
    declaration = business.declaration()
    policy = targeting_policy(declaration, config)
    scores = warehouse.read_table(SCORES_SCHEMA, SCORES_TABLE)
    if scores.empty:
        raise dg.Failure("scores.churn_scores has no rows: there is nobody to target until customers are scored")
    as_of = scores["snapshot_date"].max()
    campaign = config.campaign or f"{declaration.business}-{as_of:%Y-%m-%d}"
    worklist = worklist_from_scores(scores, policy, campaign)
    warehouse.write_table(DECISIONS_SCHEMA, WORKLIST_TABLE, worklist)
    csv_path = reports.path_for(f"worklists/{campaign}.csv")
    parquet_path = reports.path_for(f"worklists/{campaign}.parquet")
    worklist.to_csv(csv_path, index=False)
    worklist.to_parquet(parquet_path, index=False)
    treated = worklist[worklist["arm"] == "treated"]
    mrr = pd.to_numeric(scores["mrr"], errors="coerce").fillna(0.0).to_numpy()
    positive = int((expected_benefit(mrr, policy, churn_probability=scores["churn_probability"].to_numpy()) > 0).sum())
    context.log.info(
        f"{campaign}: {len(worklist):,} customers selected ({len(treated):,} to contact, "
        f"{len(worklist) - len(treated):,} held out) of {len(scores):,} scored; "
        f"{positive:,} had a positive expected benefit"
    )
    preview = worklist.head(10)[["rank", "customer_id", "arm", "churn_probability", "expected_benefit", "reason"]]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(worklist),
            "table": f"{DECISIONS_SCHEMA}.{WORKLIST_TABLE}",
            "campaign": campaign,
            "snapshot_date": str(as_of.date()),
            "scored_customers": len(scores),
            "positive_benefit_customers": positive,
            "treated": len(treated),
            "control": len(worklist) - len(treated),
            "spend": float(treated["cost"].sum()),
            "expected_benefit_treated": float(treated["expected_benefit"].sum()),
            "value_at_risk_selected": float(worklist["value_at_risk"].sum()),
            "policy": dg.MetadataValue.json(dataclasses.asdict(policy)),
            "export_csv": dg.MetadataValue.path(str(csv_path)),
            "export_parquet": dg.MetadataValue.path(str(parquet_path)),
            **reports.publish(csv_path),
            "preview": dg.MetadataValue.md(preview.to_markdown(index=False, floatfmt=".3f")),
        }
    )
