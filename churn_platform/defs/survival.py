"""Time to churn on the asset graph: the survival model beside the 30-day classifier, and the horizon
probabilities, expected lifetime, customer value and revenue at risk of every scored customer."""

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from churn_platform import policy
from churn_platform.business.catalogue import ID_COLUMN, TIME_COLUMN
from churn_platform.defs.automation import follow_parents
from churn_platform.defs.decisions import settle_alias
from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import BusinessResource, GroundTruth, MLflowResource, Warehouse
from churn_platform.ml.registry import (
    SURVIVAL_MODEL_NAME,
    load_decision_model,
    register_decision_model,
)
from churn_platform.ml.survival import (
    HORIZONS,
    evaluate_survival,
    fit_survival,
    holdout_snapshot,
    person_periods,
)
from churn_platform.ml.training import features_frame
from churn_platform.settings import CHAMPION_ALIAS

SURVIVAL_TABLE = "survival_set"
SCORES_TABLE = "survival_scores"
VALUE_HORIZON_MONTHS = 12
CHECK = "survival_calibrated"


class SurvivalConfig(dg.Config):
    candidates: list[str] = Field(default_factory=lambda: ["lightgbm", "logistic_regression"])
    """The churn model candidates tried as the interval hazard model; the best holdout concordance wins."""
    seed: int = 7


def _rows(warehouse: Warehouse, table: str) -> pd.DataFrame:
    # In a stable order: the warehouse returns rows in any order, and the fit depends on it.
    frame = warehouse.read_table("marts", table)
    frame[TIME_COLUMN] = pd.to_datetime(frame[TIME_COLUMN])
    return frame.sort_values([TIME_COLUMN, ID_COLUMN], ignore_index=True)


@dg.asset(
    group_name="ml",
    deps=[dg.AssetKey(SURVIVAL_TABLE), dg.AssetKey("scoring_features")],
    kinds={"lightgbm", "mlflow", "duckdb"},
    freshness_policy=freshness_for("ml"),
    automation_condition=follow_parents(),
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset="churn_survival",
            description=(
                f"Warns when the survival model's calibration error at a horizon ({', '.join(f'{d}' for d in HORIZONS)} "
                f"days) exceeds {policy.SURVIVAL_CALIBRATION_TOLERANCE}."
            ),
        )
    ],
    description=(
        "Time to churn: a discrete-time survival model (an interval hazard classifier on `survival_set`, which "
        "censors customers still active at the data's end) giving each customer's churn probability at 30, 60 "
        "and 90 days and expected remaining lifetime. Judged on the latest snapshot followed for 90 days by "
        "concordance and calibration at each horizon (beside the oracle's on generated data), registered in "
        "MLflow as `churn_survival` (`champion` when its concordance is not below the champion's on the same "
        "rows), and applied to the latest snapshot: table `scores.survival_scores` with customer value "
        "(MRR × expected lifetime) and the revenue at risk over the next 12 months."
    ),
)
def churn_survival(
    context: dg.AssetExecutionContext,
    config: SurvivalConfig,
    warehouse: Warehouse,
    business: BusinessResource,
    mlflow_store: MLflowResource,
    ground_truth: GroundTruth,
):
    frame = _rows(warehouse, SURVIVAL_TABLE)
    test_day = holdout_snapshot(frame)
    if test_day is None:
        why = f"no snapshot has been followed for {HORIZONS[-1]} days with an earlier one to learn from"
        context.log.info(f"no survival model yet: {why}")
        yield dg.MaterializeResult(metadata={"status": "waiting for history", "reason": why, "rows": len(frame)})
        yield dg.AssetCheckResult(check_name=CHECK, passed=True, description=f"not judged: {why}")
        return
    catalogue = business.catalogue(warehouse)
    train = person_periods(frame[frame[TIME_COLUMN] < test_day], until=test_day)
    holdout = frame[frame[TIME_COLUMN] == test_day].reset_index(drop=True)
    context.log.info(
        f"{len(train):,} person-months from {frame[TIME_COLUMN].lt(test_day).sum():,} snapshot rows "
        f"({train['churned'].mean():.2%} with a cancellation); holdout snapshot {test_day.date()} ({len(holdout):,} customers)"
    )
    tried = {}
    for candidate in config.candidates:
        model = fit_survival(train, catalogue, candidate=candidate, seed=config.seed)
        _, metrics = evaluate_survival(model, holdout)
        tried[candidate] = (model, metrics)
        context.log.info(
            f"{candidate}: concordance {metrics['concordance']:.4f}, calibration error "
            + ", ".join(f"{d}d {metrics.get(f'calibration_error_{d}d', float('nan')):.4f}" for d in HORIZONS)
        )
    best = max(tried, key=lambda c: tried[c][1]["concordance"])
    model, metrics = tried[best]
    metrics.update(ground_truth.survival_oracle_metrics(holdout, metrics))
    if "oracle_concordance" in metrics:
        context.log.info(
            f"the true probabilities' concordance on the same customers: {metrics['oracle_concordance']:.4f} "
            f"(model {metrics['concordance']:.4f})"
        )
    location = mlflow_store.location
    champion, champion_version = load_decision_model(location, SURVIVAL_MODEL_NAME, CHAMPION_ALIAS)
    champion_concordance = evaluate_survival(champion, holdout)[1]["concordance"] if champion is not None else None
    promote = champion_concordance is None or metrics["concordance"] >= champion_concordance
    reason = (
        "first survival model"
        if champion_concordance is None
        else f"concordance {metrics['concordance']:.4f} {'reaches' if promote else 'is below'} the champion's "
        f"(v{champion_version}) {champion_concordance:.4f} on the same customers"
    )
    version, run_id = register_decision_model(
        location,
        SURVIVAL_MODEL_NAME,
        model,
        features_frame(holdout.head(5), catalogue, fill_missing=True),
        params={"candidate": best, "holdout_snapshot": str(test_day.date()), "interval_days": 30},
        metrics={k: float(v) for k, v in metrics.items() if v == v},
        tags={"candidate": best, "decision": "promoted" if promote else "not promoted"},
    )
    decided = settle_alias(context, location, SURVIVAL_MODEL_NAME, version, promote, best, reason)

    serving_model, serving_version = (model, version) if promote else (champion, champion_version)
    latest = warehouse.read_table("marts", "scoring_features")
    scores = survival_scores(serving_model, latest, f"{SURVIVAL_MODEL_NAME} v{serving_version}")
    warehouse.write_table("scores", SCORES_TABLE, scores)
    bad = {
        d: metrics[f"calibration_error_{d}d"]
        for d in HORIZONS
        if metrics.get(f"calibration_error_{d}d", 0.0) > policy.SURVIVAL_CALIBRATION_TOLERANCE
    }
    yield dg.MaterializeResult(
        metadata={
            **decided,
            "holdout_snapshot": str(test_day.date()),
            "training_person_months": len(train),
            "holdout_customers": len(holdout),
            "mlflow_run_id": run_id,
            "candidates_concordance": dg.MetadataValue.json({c: t[1]["concordance"] for c, t in tried.items()}),
            **{k: float(v) for k, v in metrics.items()},
            "scores_table": f"scores.{SCORES_TABLE}",
            "dagster/row_count": len(scores),
            "mean_expected_lifetime_months": float(scores["expected_lifetime_months"].mean()),
            "revenue_at_risk_12m": float(scores["revenue_at_risk_12m"].sum()),
        }
    )
    yield dg.AssetCheckResult(
        check_name=CHECK,
        passed=not bad,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "calibration error above "
            + f"{policy.SURVIVAL_CALIBRATION_TOLERANCE} at "
            + ", ".join(f"{d} days ({e:.4f})" for d, e in bad.items())
            if bad
            else f"calibration error at most {policy.SURVIVAL_CALIBRATION_TOLERANCE} at {', '.join(f'{d}' for d in HORIZONS)} days"
        ),
        metadata={
            f"calibration_error_{d}d": float(metrics.get(f"calibration_error_{d}d", float("nan"))) for d in HORIZONS
        },
    )


SCORE_COLUMNS = (
    "customer_id",
    "snapshot_date",
    *(f"churn_probability_{d}d" for d in HORIZONS),
    "expected_lifetime_months",
    "expected_months_next_12",
    "mrr",
    "customer_value",
    "revenue_at_risk_12m",
    "model",
)


def survival_scores(model, latest: pd.DataFrame, model_name: str) -> pd.DataFrame:
    """Each customer of the latest snapshot: churn probability at each horizon, expected lifetime,
    customer value (MRR × expected lifetime) and revenue at risk over the next twelve months
    (MRR × the months of them they are expected to be gone)."""
    curves = model.curves(latest)
    mrr = (
        pd.to_numeric(latest["mrr"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        if "mrr" in latest
        else np.zeros(len(latest))
    )
    out = pd.concat([latest[[ID_COLUMN, TIME_COLUMN]].reset_index(drop=True), curves.reset_index(drop=True)], axis=1)
    out["mrr"] = mrr
    out["customer_value"] = mrr * out["expected_lifetime_months"]
    out["revenue_at_risk_12m"] = mrr * (VALUE_HORIZON_MONTHS - out["expected_months_next_12"])
    out["model"] = model_name
    return out[list(SCORE_COLUMNS)]
