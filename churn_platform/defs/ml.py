"""The model asset: train candidates, log them to MLflow, register the selected one, and let the
promotion gate (a blocking asset check) decide whether it becomes `champion` or `challenger`."""

import dagster as dg

from churn_platform.business.catalogue import LABEL_COLUMN
from churn_platform.defs.automation import follow_parents
from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import (
    BusinessResource,
    GroundTruth,
    MLflowResource,
    MonitoringPolicy,
    Notifier,
    Warehouse,
)
from churn_platform.ml import gate
from churn_platform.ml.profit import ChurnEconomics
from churn_platform.ml.registry import alias_metrics_on, apply_decision, log_and_register
from churn_platform.ml.training import calibrate_best, features_frame, select_best, train_candidates

GATE_CHECK = "promotion_gate"

MODEL_METRICS = (
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "top_decile_lift",
    "precision_at_top_10pct",
    "recall_at_top_10pct",
    "ece",
)
"""The registered version's holdout metrics recorded as the asset's metadata (the run report reads them)."""


class TrainingConfig(dg.Config):
    seed: int = 7
    promotion_floor: float | None = None
    """The holdout ROC-AUC a version must reach to become champion (default: the policy resource's,
    from the declaration's policy.roc_auc_floor or ``run --roc-auc-floor``)."""
    promotion_tolerance: float | None = None
    """How much worse than the champion (same holdout rows) a version may be and still be promoted
    (default: the policy resource's)."""
    gate_metric: str | None = None
    """What the gate compares a version with the champion by: roc_auc or empc (default: the policy
    resource's, from the declaration's policy.gate_metric)."""


@dg.asset(
    group_name="ml",
    deps=[dg.AssetKey("training_set")],
    kinds={"lightgbm", "scikitlearn", "mlflow"},
    freshness_policy=freshness_for("ml"),
    automation_condition=follow_parents(),
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset="churn_model",
            blocking=True,
            description=(
                "Promotes the new version to `champion` when its holdout ROC-AUC reaches the floor and is not worse "
                "than the champion's on the same rows by more than the tolerance; otherwise it becomes `challenger` "
                "(a warning), and below the floor the check fails with an error that stops downstream assets."
            ),
        )
    ],
    description=(
        "Churn model candidates (logistic regression, random forest, LightGBM) trained on the time-based split of "
        "`training_set`; the best on the validation snapshot is calibrated, registered in MLflow, and promoted "
        "through the promotion gate."
    ),
)
def churn_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    warehouse: Warehouse,
    mlflow_store: MLflowResource,
    ground_truth: GroundTruth,
    notifier: Notifier,
    policy: MonitoringPolicy,
    business: BusinessResource,
):
    data = warehouse.read_table("marts", "training_set")
    catalogue = business.catalogue(warehouse)
    context.log.info(
        f"training on {len(data):,} labelled rows ({data[LABEL_COLUMN].mean():.1%} churned), "
        f"{len(catalogue)} features ({len(catalogue.categorical)} categorical)"
    )
    # What a retention campaign on the scores is worth (EMPC), valued by the declaration's retention
    # section and the customers' revenue (when the features carry it).
    economics = ChurnEconomics.of(business.declaration().retention, data["mrr"]) if "mrr" in data else None
    split, results = train_candidates(data, catalogue, seed=config.seed, economics=economics)
    for r in results:
        empc = f", test EMPC {r.test_metrics['empc']:.2f}" if "empc" in r.test_metrics else ""
        context.log.info(
            f"{r.name}: validation ROC-AUC {r.validation_metrics['roc_auc']:.4f}, test ROC-AUC "
            f"{r.test_metrics['roc_auc']:.4f}{empc}"
        )
    best = select_best(results)
    selected = calibrate_best(split, best, catalogue, economics)
    context.log.info(
        f"selected {best.name}; calibrated on the validation snapshot: test Brier "
        f"{best.test_metrics['brier']:.4f} → {selected.test_metrics['brier']:.4f}, ECE "
        f"{best.test_metrics['ece']:.4f} → {selected.test_metrics['ece']:.4f}"
    )
    # On simulated data: the best achievable ranking of the same holdout rows.
    oracle = ground_truth.oracle_metrics(
        split.test, selected.model.predict_proba(features_frame(split.test, catalogue))[:, 1]
    )
    if oracle:
        context.log.info(
            f"oracle ROC-AUC {oracle['oracle_roc_auc']:.4f} on the holdout; model / oracle {oracle['model_over_oracle']:.3f}"
        )
        selected.test_metrics.update(oracle)
    # The champion, scored on the same holdout rows before the new version exists.
    location, name = mlflow_store.location, mlflow_store.registered_model_name
    champion_version, champion_scored, champion_note = alias_metrics_on(
        location, name, gate.CHAMPION, split.test, split.test[LABEL_COLUMN].astype(int), economics
    )
    registered = log_and_register(
        location,
        split,
        results,
        selected,
        catalogue,
        registered_model_name=name,
        extra_tags={"dagster_run_id": context.run_id},
    )
    decision = gate.decide(
        registered.version,
        registered.metrics["roc_auc"],
        champion_version,
        champion_scored.get("roc_auc"),
        floor=config.promotion_floor if config.promotion_floor is not None else policy.roc_auc_floor,
        tolerance=config.promotion_tolerance if config.promotion_tolerance is not None else policy.gate_tolerance,
        champion_note=champion_note,
        metric=config.gate_metric or policy.gate_metric,
        candidate_empc=selected.test_metrics.get("empc"),
        champion_empc=champion_scored.get("empc"),
    )
    # With a rollout policy a version that passed is served beside the champion before it replaces it.
    decision = gate.stage(decision, policy.rollout, policy.rollout_share)
    apply_decision(location, name, decision)
    context.log.info(f"{name} version {registered.version} → @{decision.alias}: {decision.reason}")
    notifier.notify(
        "rollout" if decision.alias == gate.ROLLOUT else "promotion" if decision.promoted else "challenger",
        f"{name} version {registered.version} "
        + (
            f"passed the gate; in {decision.rollout_mode} beside the champion (@{gate.ROLLOUT})"
            if decision.alias == gate.ROLLOUT
            else "promoted to @champion"
            if decision.promoted
            else f"kept as @{decision.alias}: not promoted"
        ),
        {
            "reason": decision.reason,
            "candidate_roc_auc": round(decision.candidate_roc_auc, 4),
            "champion_version": decision.champion_version or "none",
            "champion_roc_auc": "n/a" if decision.champion_roc_auc is None else round(decision.champion_roc_auc, 4),
            "run_id": context.run_id,
        },
        logger=context.log,
    )
    rows = "\n".join(
        f"| {r.name} | {r.validation_metrics['roc_auc']:.4f} | {r.test_metrics['roc_auc']:.4f} | "
        f"{r.test_metrics['pr_auc']:.4f} | {r.test_metrics['brier']:.4f} | "
        f"{r.test_metrics.get('empc', float('nan')):.2f} | {'**selected**' if r is best else ''} |"
        for r in results
    )
    table = (
        "| candidate | validation ROC-AUC | test ROC-AUC | test PR-AUC | test Brier | test EMPC | |\n"
        "|---|---|---|---|---|---|---|\n" + rows
    )
    gate_metadata = {
        "gate_decision": "promoted" if decision.promoted else "rejected",
        "gate_reason": decision.reason,
        "candidate_roc_auc": decision.candidate_roc_auc,
        "champion_version": decision.champion_version or "none",
        "champion_roc_auc_same_holdout": decision.champion_roc_auc if decision.champion_roc_auc is not None else "n/a",
        "floor": decision.floor,
        "tolerance": decision.tolerance,
        "gate_metric": decision.metric,
        **({"champion_empc_same_holdout": decision.champion_empc} if decision.champion_empc is not None else {}),
    }
    yield dg.MaterializeResult(
        metadata={
            "registered_model": registered.name,
            "model_version": registered.version,
            "alias": decision.alias,
            "model_uri": registered.model_uri,
            "candidate": registered.candidate,
            **{k: registered.metrics[k] for k in MODEL_METRICS},
            **{k: registered.metrics[k] for k in ("empc", "empc_contact_share") if k in registered.metrics},
            "calibration": "sigmoid (Platt) on the validation snapshot",
            **dict(oracle.items()),
            "mlflow_run_id": registered.run_id,
            "mlflow_parent_run_id": registered.parent_run_id,
            "mlflow_tracking_uri": mlflow_store.tracking_uri,
            "candidates": dg.MetadataValue.md(table),
            **gate_metadata,
            **dict(split.describe().items()),
        }
    )
    yield dg.AssetCheckResult(
        check_name=GATE_CHECK,
        passed=decision.promoted,
        severity=dg.AssetCheckSeverity.ERROR if decision.below_floor else dg.AssetCheckSeverity.WARN,
        description=decision.reason,
        metadata=gate_metadata,
    )
