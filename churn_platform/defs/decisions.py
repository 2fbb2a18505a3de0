"""Retention decisions on the asset graph: the worklist a customer-success team works from, and what
each campaign did against its controls."""

import dataclasses

import dagster as dg
import pandas as pd

from churn_platform.decisions.effect import campaign_effect as measure_campaigns
from churn_platform.decisions.effect import effect_chart, effects_frame
from churn_platform.decisions.targeting import TargetingPolicy, expected_benefit, worklist_from_scores
from churn_platform.defs.automation import follow_parents
from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import BusinessResource, ReportStore, Warehouse
from churn_platform.defs.scores import SCORES_SCHEMA, SCORES_TABLE
from churn_platform.monitoring.business import inline_png

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


EFFECTS_TABLE = "campaign_effects"
EFFECT_CHECK = "campaign_effects_distinguishable"


@dg.asset(
    group_name="decisions",
    deps=[dg.AssetKey("campaign_outcomes")],
    kinds={"python", "duckdb"},
    freshness_policy=freshness_for("decisions"),
    automation_condition=follow_parents(),
    check_specs=[
        dg.AssetCheckSpec(
            EFFECT_CHECK,
            asset="campaign_effect",
            description="Warns when a campaign's horizon has passed and its effect is not distinguishable from zero.",
        )
    ],
    description=(
        "What each campaign did, from `campaign_outcomes`: churn rates of its treated and control arms, the effect "
        "(control minus treated), saved customers and saved MRR with 90% bootstrap intervals, cost and ROI; table "
        "`decisions.campaign_effects` and a chart."
    ),
)
def campaign_effect(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    business: BusinessResource,
    reports: ReportStore,
):
    retention = business.declaration().retention
    outcomes = warehouse.read_table(DECISIONS_SCHEMA, "campaign_outcomes")
    effects = measure_campaigns(outcomes, value_months=retention.value_months)
    table = effects_frame(effects)
    warehouse.write_table(DECISIONS_SCHEMA, EFFECTS_TABLE, table)
    chart_path = reports.path_for("campaign_effect.png")
    png = effect_chart(effects, chart_path)
    for e in effects:
        if e.effect is None:
            context.log.info(f"{e.campaign}: {e.matured} of {e.treated + e.control} contacts matured, not judged yet")
        else:
            context.log.info(
                f"{e.campaign}: churn {e.churn_treated:.1%} treated against {e.churn_control:.1%} control; "
                f"saved {e.saved_customers:.1f} customers [{e.saved_customers_low:.1f}, {e.saved_customers_high:.1f}], "
                f"{e.saved_mrr:,.0f} MRR; cost {e.cost:,.0f}; {e.verdict}"
            )
    shown = table[
        [
            "campaign",
            "treated",
            "control",
            "churn_treated",
            "churn_control",
            "saved_customers",
            "saved_mrr",
            "roi",
            "verdict",
        ]
    ]
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "table": f"{DECISIONS_SCHEMA}.{EFFECTS_TABLE}",
            "campaigns": len(effects),
            "measured_campaigns": sum(e.effect is not None for e in effects),
            "contacts": len(outcomes),
            "by_campaign": dg.MetadataValue.md(
                shown.to_markdown(index=False, floatfmt=".3f") if len(shown) else "no campaigns yet"
            ),
            "chart": dg.MetadataValue.md(inline_png(png, "campaign effect")),
            "chart_path": dg.MetadataValue.path(str(chart_path)),
            **reports.publish(chart_path),
        }
    )
    unclear = [e.campaign for e in effects if e.verdict == "no effect distinguishable from zero"]
    measured = [e for e in effects if e.effect is not None]
    yield dg.AssetCheckResult(
        check_name=EFFECT_CHECK,
        passed=not unclear,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"not distinguishable from zero after their horizon: {', '.join(unclear)}"
            if unclear
            else f"{len(measured)} measured campaign(s), each with an effect distinguishable from zero"
            if measured
            else "no campaign has matured yet"
        ),
        metadata={"unclear_campaigns": ", ".join(unclear) or "none", "measured_campaigns": len(measured)},
    )
