"""Retention decisions on the asset graph: the worklist a customer-success team works from, and what
each campaign did against its controls."""

import dataclasses

import dagster as dg
from pydantic import Field

from churn_platform.business.declaration import TREATED
from churn_platform.decisions.effect import COVARIATE, campaign_power, effect_chart, effects_frame, scores_at_contact
from churn_platform.decisions.effect import campaign_effect as measure_campaigns
from churn_platform.decisions.targeting import TargetingPolicy, candidates_from_scores, worklist_from_candidates
from churn_platform.defs.automation import follow_parents
from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import BusinessResource, GroundTruth, MLflowResource, ReportStore, Warehouse
from churn_platform.defs.scores import HISTORY_TABLE, SCORES_SCHEMA, SCORES_TABLE
from churn_platform.ml.gate import CHALLENGER as CHALLENGER_ALIAS
from churn_platform.ml.registry import UPLIFT_MODEL_NAME, load_by_alias, load_uplift, register_uplift, set_alias
from churn_platform.ml.training import features_frame
from churn_platform.ml.uplift import (
    CROSS_FIT_FOLDS,
    arms_not_ready,
    clearly_better,
    fit_risk_scaled,
    fit_t_learner,
    holdout_split,
    out_of_fold,
    qini_coefficient,
    uplift_at,
    uplift_gate,
)
from churn_platform.monitoring.business import inline_png
from churn_platform.settings import CHAMPION_ALIAS

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
    by_uplift: bool = True
    """Rank by the uplift model's estimates when one holds ``uplift_alias``; else by risk."""
    uplift_alias: str = CHAMPION_ALIAS
    """The uplift version ranked by: ``champion``, or ``challenger`` to draw up what a version the gate
    refused would have chosen."""


def targeting_policy(declaration, config: WorklistConfig) -> TargetingPolicy:
    """The declaration's ``retention`` settings, with the run's overrides."""
    overrides = {
        k: getattr(config, k)
        for k in ("max_contacts", "max_spend", "contact_cost", "control_share")
        if getattr(config, k) is not None
    }
    return TargetingPolicy.of(declaration.retention, **overrides)


@dg.asset(
    group_name="decisions",
    deps=[dg.AssetKey("churn_scores")],
    kinds={"python", "duckdb"},
    freshness_policy=freshness_for("decisions"),
    automation_condition=follow_parents(),
    description=(
        "Whom to contact this campaign: the scored customers with the best expected benefit of a contact "
        "(churn probability × value at risk × save rate − contact cost; estimated uplift × value at risk − "
        "contact cost once an uplift model is `churn_uplift@champion`) while it is positive and the budget "
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
    mlflow_store: MLflowResource,
) -> dg.MaterializeResult:
    declaration = business.declaration()
    policy = targeting_policy(declaration, config)
    scores = warehouse.read_table(SCORES_SCHEMA, SCORES_TABLE)
    if scores.empty:
        raise dg.Failure("scores.churn_scores has no rows: there is nobody to target until customers are scored")
    as_of = scores["snapshot_date"].max()
    campaign = config.campaign or f"{declaration.business}-{as_of:%Y-%m-%d}"
    uplift, uplift_name = None, ""
    estimator, uplift_version = (
        load_uplift(mlflow_store.location, config.uplift_alias) if config.by_uplift else (None, None)
    )
    if estimator is not None:
        features = warehouse.read_table("marts", "scoring_features")
        by_customer = features.set_index(features["customer_id"].astype(str))
        rows = by_customer.reindex(scores["customer_id"].astype(str)).reset_index(drop=True)
        uplift, uplift_name = estimator.predict(rows), f"{UPLIFT_MODEL_NAME} v{uplift_version}"
        if config.uplift_alias != CHAMPION_ALIAS:
            uplift_name += f" @{config.uplift_alias}"
        context.log.info(f"targeting by the uplift of {uplift_name}: mean estimated uplift {uplift.mean():+.4f}")
    else:
        context.log.info(
            f"targeting by risk (no uplift model is {config.uplift_alias})" if config.by_uplift else "targeting by risk"
        )
    candidates = candidates_from_scores(scores, policy, uplift, uplift_name)
    worklist = worklist_from_candidates(candidates, policy, campaign)
    warehouse.write_table(DECISIONS_SCHEMA, WORKLIST_TABLE, worklist)
    csv_path = reports.path_for(f"worklists/{campaign}.csv")
    parquet_path = reports.path_for(f"worklists/{campaign}.parquet")
    worklist.to_csv(csv_path, index=False)
    worklist.to_parquet(parquet_path, index=False)
    treated = worklist[worklist["arm"] == "treated"]
    positive = int((candidates["expected_benefit"] > 0).sum())
    context.log.info(
        f"{campaign}: {len(worklist):,} customers selected ({len(treated):,} to contact, "
        f"{len(worklist) - len(treated):,} held out) of {len(scores):,} scored; "
        f"{positive:,} had a positive expected benefit"
    )
    power = campaign_power(
        worklist["churn_probability"],
        expected_effect=(treated["uplift"] if uplift is not None else treated["churn_probability"] * policy.save_rate),
        n_treated=len(treated),
        n_control=len(worklist) - len(treated),
    )
    if len(worklist) == len(treated) and len(treated):
        context.log.warning(f"{campaign}: no controls are held out, so its effect can never be measured")
    elif power.expected_effect < power.detectable_effect:
        needed = (
            f"about {power.controls_for_expected:,} controls would"
            if power.controls_for_expected
            else "no number of controls would, with this many contacts"
        )
        context.log.warning(
            f"{campaign}: the expected effect ({power.expected_effect * 100:.1f} points of churn) is below the "
            f"smallest its {len(worklist) - len(treated):,} controls can tell from zero "
            f"({power.detectable_effect * 100:.1f} points, 80% power at the 90% level); {needed}. Its measurement "
            "will likely say 'not distinguishable from zero': hold out more (control_share) or contact more."
        )
    preview = worklist.head(10)[
        ["rank", "customer_id", "arm", "churn_probability", "uplift", "expected_benefit", "reason"]
    ]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(worklist),
            "table": f"{DECISIONS_SCHEMA}.{WORKLIST_TABLE}",
            "campaign": campaign,
            "targeted_by": candidates["targeted_by"].iloc[0],
            "snapshot_date": str(as_of.date()),
            "scored_customers": len(scores),
            "positive_benefit_customers": positive,
            "treated": len(treated),
            "control": len(worklist) - len(treated),
            "spend": float(treated["cost"].sum()),
            "expected_benefit_treated": float(treated["expected_benefit"].sum()),
            "value_at_risk_selected": float(worklist["value_at_risk"].sum()),
            "expected_effect": power.expected_effect,
            "detectable_effect": power.detectable_effect if power.detectable_effect < 1 else "no controls",
            "controls_for_expected_effect": power.controls_for_expected or "not reachable",
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
    deps=[dg.AssetKey("campaign_outcomes"), dg.AssetKey("churn_scores")],
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
        "`decisions.campaign_effects` and a chart. Where every contact of a campaign has a churn score from before "
        "it (`scores.churn_scores_history`), the effects are regression-adjusted by that score, which narrows the "
        "intervals without biasing them."
    ),
)
def campaign_effect(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    business: BusinessResource,
    reports: ReportStore,
):
    retention = business.declaration().retention
    outcomes = scores_at_contact(warehouse.read_table(DECISIONS_SCHEMA, "campaign_outcomes"), score_history(warehouse))
    effects = measure_campaigns(outcomes, value_months=retention.value_months)
    table = effects_frame(effects)
    warehouse.write_table(DECISIONS_SCHEMA, EFFECTS_TABLE, table)
    chart_path = reports.path_for("campaign_effect.png")
    png = effect_chart(effects, chart_path)
    for e in effects:
        if e.effect is None:
            context.log.info(f"{e.campaign}: {e.matured} of {e.treated + e.control} contacts matured, not judged yet")
        else:
            adjustment = (
                f"; adjusted by the score before the contact (intervals {e.interval_vs_unadjusted:.0%} and "
                f"{e.mrr_interval_vs_unadjusted:.0%} of the unadjusted widths)"
                if e.adjusted_by
                else "; unadjusted (not every contact has a score from before it)"
            )
            context.log.info(
                f"{e.campaign}: churn {e.churn_treated:.1%} treated against {e.churn_control:.1%} control; "
                f"saved {e.saved_customers:.1f} customers [{e.saved_customers_low:.1f}, {e.saved_customers_high:.1f}], "
                f"{e.saved_mrr:,.0f} MRR; cost {e.cost:,.0f}; {e.verdict}{adjustment}"
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
            "adjusted_by",
        ]
    ]
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "table": f"{DECISIONS_SCHEMA}.{EFFECTS_TABLE}",
            "campaigns": len(effects),
            "measured_campaigns": sum(e.effect is not None for e in effects),
            "contacts": len(outcomes),
            "contacts_with_score_before": int(outcomes[COVARIATE].notna().sum()),
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


def score_history(warehouse: Warehouse):
    """``scores.churn_scores_history``'s scores of the customers in ``decisions.campaign_outcomes``
    (no rows before the first scoring)."""
    import pandas as pd

    exists = warehouse.query(
        "select count(*) as n from information_schema.tables "
        f"where table_schema = '{SCORES_SCHEMA}' and table_name = '{HISTORY_TABLE}'"
    )
    if int(exists["n"].iloc[0]) == 0:
        return pd.DataFrame(columns=["customer_id", "snapshot_date", "churn_probability", "scored_at"])
    return warehouse.query(
        "select cast(customer_id as varchar) as customer_id, snapshot_date, churn_probability, scored_at "
        f'from "{SCORES_SCHEMA}"."{HISTORY_TABLE}" where cast(customer_id as varchar) in '
        f'(select cast(customer_id as varchar) from "{DECISIONS_SCHEMA}"."campaign_outcomes")'
    )


def settle_alias(context, location, name: str, version: str, promote: bool, candidate: str, reason: str) -> dict:
    """Point ``champion`` (promoted) or ``challenger`` at a newly registered decision model's version,
    log the decision, and return it as the asset's metadata."""
    alias = CHAMPION_ALIAS if promote else CHALLENGER_ALIAS
    set_alias(location, name, alias, version)
    decision = "promoted" if promote else "not promoted"
    context.log.info(f"{name} v{version} ({candidate}): {decision}: {reason}")
    return {
        "status": "trained",
        "registered_model": name,
        "model_version": version,
        "alias": alias,
        "candidate": candidate,
        "decision": decision,
        "reason": reason,
    }


UPLIFT_TABLE = "uplift_training_set"


class UpliftConfig(dg.Config):
    candidates: list[str] = Field(default_factory=lambda: ["risk_scaled", "logistic_regression", "lightgbm"])
    """The learners tried, simplest first: the first fitted is kept unless another has the higher
    holdout Qini in at least 90% of bootstrap resamples of the contacts. ``risk_scaled``: the churn
    champion's probability shifted by a contact's penalised effect; the others: a T-learner of that
    churn model candidate per arm."""
    min_per_arm: int = 50
    """The fewest matured contacts an arm of the training campaigns needs before a model is fitted."""
    beat_risk: bool = True
    """Promote only a model whose holdout Qini is above that of ranking the same contacts by the churn
    champion's risk: the worklist targets by risk until an uplift model ranks better than it."""


@dg.asset(
    group_name="decisions",
    deps=[dg.AssetKey(UPLIFT_TABLE)],
    kinds={"python", "mlflow"},
    freshness_policy=freshness_for("decisions"),
    automation_condition=follow_parents(),
    description=(
        "An uplift model learnt from the matured contacts of the campaigns with controls (`uplift_training_set`): "
        "`risk_scaled` (the churn champion's risk shifted by a contact's penalised effect) unless a T-learner is "
        "clearly better, judged on the latest campaign (or by cross-fitting a single one); tracked in MLflow, "
        "registered as `churn_uplift` and moved to `champion` when its holdout Qini coefficient is above 0, "
        "above that of ranking the same contacts by churn risk, and not below the current champion's. Until "
        "enough contacts have matured it says what it waits for."
    ),
)
def uplift_model(
    context: dg.AssetExecutionContext,
    config: UpliftConfig,
    warehouse: Warehouse,
    business: BusinessResource,
    mlflow_store: MLflowResource,
    ground_truth: GroundTruth,
) -> dg.MaterializeResult:
    # In a stable order: the warehouse returns rows in any order, and the fit depends on it.
    frame = warehouse.read_table(DECISIONS_SCHEMA, UPLIFT_TABLE).sort_values("action_id", ignore_index=True)
    frame["churned"] = frame["churned"].astype(bool)
    not_ready = arms_not_ready(frame, config.min_per_arm)
    if not_ready:
        why = f"no uplift model yet: {not_ready}"
        context.log.info(why)
        return dg.MaterializeResult(metadata={"status": "waiting for campaigns", "reason": why, "contacts": len(frame)})
    catalogue = business.catalogue(warehouse)
    split = holdout_split(frame)
    if split is None:  # one campaign: every contact judged out of fold, the model fitted on them all
        train = holdout = frame
        held_out = f"{CROSS_FIT_FOLDS}-fold cross-fitting of campaign {frame['campaign'].iloc[0]}'s contacts"
    else:
        train, holdout, held_out = split
    treated, churned = (holdout["arm"] == TREATED).to_numpy(), holdout["churned"].to_numpy()
    churn_model, risk_qini = None, None
    if "risk_scaled" in config.candidates or config.beat_risk:
        try:
            loaded = load_by_alias(mlflow_store.location, mlflow_store.registered_model_name, CHAMPION_ALIAS)
            churn_model = loaded.model
        except Exception as exc:
            context.log.warning(f"no churn champion to build on or compare with ({type(exc).__name__}: {exc})")
        else:
            # Ranking by risk is what the worklist does without an uplift model: the baseline to beat.
            risk = churn_model.predict_proba(features_frame(holdout, catalogue, fill_missing=True))[:, 1]
            risk_qini = qini_coefficient(risk, treated, churned)
            context.log.info(
                f"churn_model v{loaded.version}: ranking by its risk has Qini {risk_qini:.5f} on {held_out}"
            )

    def fitter(candidate: str):
        if candidate == "risk_scaled":
            if churn_model is None:
                raise ValueError("there is no churn_model@champion to scale")
            return lambda rows: fit_risk_scaled(rows, catalogue, churn_model, min_per_arm=config.min_per_arm)
        return lambda rows: fit_t_learner(rows, catalogue, candidate=candidate, min_per_arm=config.min_per_arm)

    tried: dict[str, tuple] = {}
    for candidate in config.candidates:
        try:
            fit = fitter(candidate)
            learner = fit(train)
            estimate = out_of_fold(fit, frame) if split is None else learner.uplift(holdout)
        except Exception as exc:  # a learner that cannot be fitted here is skipped, with the reason
            context.log.warning(f"{candidate}: {type(exc).__name__}: {exc}")
            continue
        tried[candidate] = (learner, estimate, qini_coefficient(estimate, treated, churned))
        context.log.info(f"{candidate}: Qini {tried[candidate][2]:.5f} on {held_out}")
    if not tried:
        raise dg.Failure(f"no uplift candidate could be fitted on the training campaigns ({len(train):,} contacts)")
    # The simplest learner fitted (the first in the list) stays unless another is clearly better.
    best = next(iter(tried))
    for candidate in tried:
        if candidate != best:
            better, share = clearly_better(tried[candidate][1], tried[best][1], treated, churned)
            context.log.info(f"{candidate} over {best}: a higher Qini in {share:.0%} of bootstrap resamples")
            best = candidate if better else best
    learner, estimate, qini = tried[best]
    metrics = {
        "qini": qini,
        "uplift_top_10pct": uplift_at(estimate, treated, churned, 0.1),
        "uplift_top_30pct": uplift_at(estimate, treated, churned, 0.3),
        "holdout_contacts": float(len(holdout)),
        "training_contacts": float(len(train)),
        **ground_truth.uplift_oracle_metrics(holdout, estimate),
    }
    if risk_qini is not None:
        metrics["risk_qini"] = risk_qini
    if "oracle_qini" in metrics:
        context.log.info(
            f"the true uplift's Qini on the same contacts: {metrics['oracle_qini']:.5f}; "
            f"model / oracle {metrics['qini_over_oracle']:.2f}"
        )
    location = mlflow_store.location
    champion, champion_version = load_uplift(location, CHAMPION_ALIAS)
    champion_qini = qini_coefficient(champion.predict(holdout), treated, churned) if champion is not None else None
    promote, reason = uplift_gate(qini, risk_qini if config.beat_risk else None, champion_qini, champion_version)
    version, run_id = register_uplift(
        location,
        learner,
        features_frame(holdout.head(5), catalogue, fill_missing=True),
        params={"candidate": best, "held_out": held_out, "campaigns": frame["campaign"].nunique()},
        metrics={k: float(v) for k, v in metrics.items() if v == v},
        tags={"candidate": best, "decision": "promoted" if promote else "not promoted"},
    )
    return dg.MaterializeResult(
        metadata={
            **settle_alias(context, location, UPLIFT_MODEL_NAME, version, promote, best, reason),
            "held_out": held_out,
            "candidates_qini": dg.MetadataValue.json({c: t[2] for c, t in tried.items()}),
            "mlflow_run_id": run_id,
            **{k: float(v) for k, v in metrics.items()},
        }
    )
