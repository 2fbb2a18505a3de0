"""Monitoring assets: feature drift between training data and the latest features, and the
served predictions with their checks."""

import datetime as dt

import dagster as dg
import pandas as pd

from churn_platform.defs.automation import PREDICTION_LOG, PREDICTION_LOG_CRON, follow_parents, on_cadence
from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import (
    BusinessResource,
    MLflowResource,
    MonitoringPolicy,
    Notifier,
    PredictionLogStore,
    ReportStore,
    Warehouse,
)
from churn_platform.monitoring.drift import feature_drift


def content_version(frame: pd.DataFrame) -> str:
    """A digest of a frame's rows and columns, in order."""
    import hashlib

    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def monitoring_asset(**kwargs):
    """``@dg.asset`` in the monitoring group, with its freshness policy and, unless given,
    eager automation; an update of ``prediction_log`` (reloaded hourly) counts only when what
    was served changed."""
    reads_log = PREDICTION_LOG in kwargs.get("deps", ())
    kwargs.setdefault("automation_condition", follow_parents(on_data_changes_of=[PREDICTION_LOG] if reads_log else []))
    return dg.asset(group_name="monitoring", freshness_policy=freshness_for("monitoring"), **kwargs)


@monitoring_asset(
    deps=[dg.AssetKey("training_set"), dg.AssetKey("scoring_features")],
    kinds={"evidently"},
    check_specs=[
        dg.AssetCheckSpec(
            "drift_share_within_threshold",
            asset="feature_drift_report",
            description="The share of drifted features is at most the drift threshold (warns otherwise).",
        )
    ],
    description=(
        "Evidently data-drift report of the latest `scoring_features` against the `training_set` "
        "features; the drift share drives the `retrain_on_drift` sensor. A side with more rows than the "
        "policy's `drift_sample_rows` is compared through a seeded sample of that many."
    ),
)
def feature_drift_report(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    reports: ReportStore,
    policy: MonitoringPolicy,
    business: BusinessResource,
):
    reference = warehouse.read_table("marts", "training_set")
    current = warehouse.read_table("marts", "scoring_features")
    catalogue = business.catalogue(warehouse)
    result = feature_drift(
        reference, current, catalogue, reports.path_for("feature_drift_report.html"), sample=policy.drift_sample_rows
    )
    if result.sampled:
        context.log.info(
            f"compared seeded samples of at most {policy.drift_sample_rows:,} rows a side: "
            f"{result.reference_rows_compared:,} of {result.reference_rows:,} training rows, "
            f"{result.current_rows_compared:,} of {result.current_rows:,} current rows"
        )
    if result.skipped:
        context.log.info(f"not compared for drift: {result.skipped}")
    context.log.info(
        f"drift share {result.drift_share:.2f} ({result.drifted_columns}/{result.total_columns} features drifted)"
    )
    scores = "\n".join(
        f"| {col} | {result.column_methods.get(col, '')} | {score:.4g} |"
        for col, score in sorted(result.column_scores.items())
    )
    yield dg.MaterializeResult(
        metadata={
            "drift_share": result.drift_share,
            "drifted_columns": result.drifted_columns,
            "total_columns": result.total_columns,
            "reference_rows": result.reference_rows,
            "current_rows": result.current_rows,
            "reference_rows_compared": result.reference_rows_compared,
            "current_rows_compared": result.current_rows_compared,
            "report_path": dg.MetadataValue.path(str(result.html_path)),
            **reports.publish(result.html_path),
            "column_drift": dg.MetadataValue.md("| feature | method | score |\n|---|---|---|\n" + scores),
            "skipped_columns": dg.MetadataValue.json(result.skipped),
        }
    )
    within = result.drift_share <= policy.drift_threshold
    yield dg.AssetCheckResult(
        check_name="drift_share_within_threshold",
        passed=within,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{result.drifted_columns} of {result.total_columns} features drifted (share {result.drift_share:.2f}), "
            f"{'within' if within else 'over'} the threshold {policy.drift_threshold:.2f}"
            + ("" if within else ": the retrain_on_drift sensor will ask for a retraining")
        ),
        metadata={"drift_share": result.drift_share, "threshold": policy.drift_threshold},
    )


class PredictionLogConfig(dg.Config):
    max_age_hours: float = 26.0
    """The log is stale when its latest prediction is older than this."""


@monitoring_asset(
    deps=[dg.AssetKey("training_set")],
    kinds={"parquet", "duckdb"},
    automation_condition=on_cadence(PREDICTION_LOG_CRON),
    check_specs=[
        dg.AssetCheckSpec(
            "prediction_log_is_fresh",
            asset="prediction_log",
            description="A prediction was logged within max_age_hours (warns otherwise).",
        ),
        dg.AssetCheckSpec(
            "served_features_match_training",
            asset="prediction_log",
            description="Served feature columns exist with the training set's types; categories unseen in training are listed.",
        ),
    ],
    description=(
        "Every prediction the API served (request id, time, endpoint, customer id when known, features, "
        "probability, model version), read from the API's Parquet log into `monitoring.prediction_log`."
    ),
)
def prediction_log(
    context: dg.AssetExecutionContext,
    config: PredictionLogConfig,
    warehouse: Warehouse,
    prediction_logs: PredictionLogStore,
    mlflow_store: MLflowResource,
    business: BusinessResource,
):
    from churn_platform.monitoring.served import compare_schema, staleness

    served = prediction_logs.read()
    warehouse.write_table("monitoring", "prediction_log", served)
    training = warehouse.read_table("marts", "training_set")
    by_version = served.groupby("model_version").size().to_dict() if len(served) else {}
    by_arm = served.groupby(["arm", "model_version"]).size().to_dict() if len(served) else {}
    context.log.info(
        f"{len(served):,} logged predictions "
        f"({', '.join(f'{arm} v{version}: {n:,}' for (arm, version), n in by_arm.items()) or 'none'})"
    )
    yield dg.MaterializeResult(
        metadata={
            "rows": len(served),
            "customers": int(served["customer_id"].nunique()) if len(served) else 0,
            "by_model_version": dg.MetadataValue.json({str(k): int(v) for k, v in by_version.items()}),
            "by_arm": dg.MetadataValue.json({f"{arm} v{version}": int(n) for (arm, version), n in by_arm.items()}),
            "returned": int(served["served"].sum()) if len(served) else 0,
            "latest_prediction": str(pd.to_datetime(served["logged_at"], utc=True).max()) if len(served) else "none",
            "mean_probability": float(served["churn_probability"].mean()) if len(served) else float("nan"),
            "log_path": dg.MetadataValue.path(prediction_logs.path),
        },
        # The same served rows give the same version: the assets that read the log follow it
        # only when something new was served, not on every hourly reload.
        data_version=dg.DataVersion(content_version(served)),
    )
    fresh, why, meta = staleness(served, dt.datetime.now(dt.UTC), config.max_age_hours)
    yield dg.AssetCheckResult(
        check_name="prediction_log_is_fresh",
        passed=fresh,
        severity=dg.AssetCheckSeverity.WARN,
        description=why,
        metadata=meta,
    )
    # The served features are checked against what the model that served them was trained on (the
    # latest version in the log), else against the current feature catalogue.
    catalogue = None
    if len(served):
        from churn_platform.ml.registry import version_catalogue

        latest_version = str(served["model_version"].iloc[-1])
        catalogue = version_catalogue(mlflow_store.location, mlflow_store.registered_model_name, latest_version)
        served = served[served["model_version"].astype(str) == latest_version]
    comparison = compare_schema(served, training, catalogue or business.catalogue(warehouse))
    if comparison.matches:
        why = "served features match the training set" + (
            f"; unseen categories: {comparison.unseen_categories}" if comparison.unseen_categories else ""
        )
    else:
        why = f"served features differ from the training set: missing {comparison.missing}, types {comparison.type_mismatches}"
    yield dg.AssetCheckResult(
        check_name="served_features_match_training",
        passed=comparison.matches,
        severity=dg.AssetCheckSeverity.ERROR,
        description=why,
        metadata={
            "missing_columns": dg.MetadataValue.json(comparison.missing),
            "type_mismatches": dg.MetadataValue.json(comparison.type_mismatches),
            "unseen_categories": dg.MetadataValue.json(comparison.unseen_categories),
        },
    )


@monitoring_asset(
    deps=[PREDICTION_LOG, dg.AssetKey("churn_model"), dg.AssetKey("training_set")],
    kinds={"evidently"},
    description=(
        "Evidently value-drift and summary report of the served churn probabilities (`prediction_log`) "
        "against the champion's probabilities on the holdout (the latest labelled snapshot)."
    ),
)
def prediction_drift_report(
    context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MLflowResource, reports: ReportStore
) -> dg.MaterializeResult:
    from churn_platform.ml.registry import load_by_alias
    from churn_platform.ml.training import time_split
    from churn_platform.monitoring.drift import prediction_drift
    from churn_platform.settings import CHAMPION_ALIAS

    champion = load_by_alias(mlflow_store.location, mlflow_store.registered_model_name, CHAMPION_ALIAS)
    holdout = time_split(warehouse.read_table("marts", "training_set"), champion.features).test
    reference = pd.Series(champion.predict_proba(holdout))
    served = warehouse.read_table("monitoring", "prediction_log")
    if "arm" in served.columns:  # the champion's scores only: a challenger's are another model's
        from churn_platform.serving.rollout import CHAMPION

        served = served[served["arm"].fillna(CHAMPION) == CHAMPION]
    result = prediction_drift(reference, served["churn_probability"], reports.path_for("prediction_drift_report.html"))
    if result.score is None:
        context.log.info(f"no prediction drift verdict: {result.note}")
    else:
        context.log.info(
            f"served probabilities vs holdout: {result.method} {result.score:.4g} (drifted: {result.drifted})"
        )
    metadata = {
        "champion_version": champion.version,
        "reference_rows": result.reference_rows,
        "served_rows": result.current_rows,
        "reference_mean_probability": result.reference_mean,
        "served_mean_probability": float("nan") if result.current_mean is None else result.current_mean,
        "drift_score": float("nan") if result.score is None else result.score,
        "drift_method": result.method or "none",
        "drift_detected": "unknown" if result.drifted is None else str(result.drifted).lower(),
    }
    if result.html_path is not None:
        metadata["report_path"] = dg.MetadataValue.path(str(result.html_path))
        metadata.update(reports.publish(result.html_path))
    if result.note:
        metadata["note"] = result.note
    return dg.MaterializeResult(metadata=metadata)


class PerformanceConfig(dg.Config):
    floor: float | None = None
    """The matured ROC-AUC below which the model is failing (default: the promotion gate's floor, from
    the policy resource: the declaration's policy.roc_auc_floor or ``run --roc-auc-floor``)."""
    min_rows: int = 50
    """Matured predictions a month needs to be judged."""


@monitoring_asset(
    deps=[dg.AssetKey("churn_outcomes")],
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec(
            "performance_above_floor",
            asset="model_performance",
            description="The latest month with enough matured predictions has ROC-AUC at or above the floor (error otherwise).",
        )
    ],
    description=(
        "Real performance of each model version: ROC-AUC, top-decile lift and calibration (mean predicted "
        "against observed churn, expected calibration error) of matured predictions per as-of month."
    ),
)
def model_performance(
    context: dg.AssetExecutionContext, config: PerformanceConfig, warehouse: Warehouse, policy: MonitoringPolicy
):
    from churn_platform.monitoring.outcomes import latest_judgeable, performance

    floor = config.floor if config.floor is not None else policy.roc_auc_floor
    perf = performance(warehouse.read_table("monitoring", "churn_outcomes"))
    warehouse.write_table("monitoring", "model_performance", perf)
    latest = latest_judgeable(perf, config.min_rows)
    table = (
        perf.assign(month=perf["month"].astype(str)).to_markdown(index=False, floatfmt=".3f")
        if len(perf)
        else "no matured predictions yet"
    )
    metadata: dict[str, object] = {"months": len(perf), "by_version_and_month": dg.MetadataValue.md(table)}
    if latest is not None:
        metadata.update(
            {
                "model_version": str(latest["model_version"]),
                "month": str(latest["month"])[:10],
                "roc_auc": float(latest["roc_auc"]),
                "top_decile_lift": float(latest["top_decile_lift"]),
                "mean_predicted": float(latest["mean_predicted"]),
                "observed_rate": float(latest["observed_rate"]),
                "ece": float(latest["ece"]),
                "matured_predictions": int(latest["predictions"]),
            }
        )
    yield dg.MaterializeResult(metadata=metadata)
    if latest is None:
        yield dg.AssetCheckResult(
            check_name="performance_above_floor",
            passed=True,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"nothing to judge yet: no month has {config.min_rows} matured predictions of both outcomes",
        )
        return
    passed = latest["roc_auc"] >= floor
    yield dg.AssetCheckResult(
        check_name="performance_above_floor",
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"version {latest['model_version']}, {str(latest['month'])[:7]}: matured ROC-AUC {latest['roc_auc']:.3f} "
            f"{'reaches' if passed else 'is below'} the floor {floor:.2f} ({int(latest['predictions'])} predictions)"
        ),
        metadata={
            "roc_auc": float(latest["roc_auc"]),
            "floor": floor,
            "model_version": str(latest["model_version"]),
        },
    )


ONLINE_CHECK = "challenger_not_worse_online"


@monitoring_asset(
    deps=[dg.AssetKey("prediction_log"), dg.AssetKey("churn_outcomes")],
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec(
            ONLINE_CHECK,
            asset="online_comparison",
            description=(
                "Warns when a challenger's matured ROC-AUC on the same live customers is below the champion's by "
                "more than the promotion gate's tolerance."
            ),
        )
    ],
    description=(
        "Each shadow or canary challenger against the champion on the same live records (`prediction_log`): how far "
        "apart their probabilities are, how alike their rankings, their score distributions and, once the outcomes "
        "mature (`churn_outcomes`), ROC-AUC and calibration of each on the same customers; table "
        "`monitoring.online_comparison`. A version the gate staged as `@rollout` (policy.rollout) is decided here: "
        "made champion once enough of its live scores have matured and it is not worse, rolled back if it is."
    ),
)
def online_comparison(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    policy: MonitoringPolicy,
    mlflow_store: MLflowResource,
    notifier: Notifier,
):
    from churn_platform.monitoring.online import compare_online, comparisons_frame

    log, outcomes = (
        warehouse.read_table("monitoring", "prediction_log"),
        warehouse.read_table("monitoring", "churn_outcomes"),
    )
    comparisons = compare_online(log, outcomes)
    table = comparisons_frame(comparisons)
    warehouse.write_table("monitoring", "online_comparison", table)
    for c in comparisons:
        judged = (
            f"; matured ROC-AUC {c.roc_auc_challenger:.3f} against {c.roc_auc_champion:.3f} on {c.labelled_pairs:,} "
            "customers"
            if c.roc_auc_difference is not None
            else f"; {c.labelled_pairs:,} matured pairs, not yet enough to compare performance"
        )
        context.log.info(
            f"challenger v{c.challenger_version} ({c.mode}) against champion v{c.champion_version}: {c.pairs:,} pairs, "
            f"mean |difference| {c.mean_abs_difference:.4f}, rank correlation {c.rank_correlation:.3f}, "
            f"top-decile agreement {c.top_decile_agreement:.0%}{judged}"
        )
    shown = table[
        [
            "challenger_version",
            "champion_version",
            "mode",
            "pairs",
            "mean_abs_difference",
            "rank_correlation",
            "top_decile_agreement",
            "ks_statistic",
            "labelled_pairs",
            "roc_auc_champion",
            "roc_auc_challenger",
        ]
    ]
    # A rollout is judged on all its pairs, in shadow and canary alike.
    rollout = decide_rollout(context, compare_online(log, outcomes, by_mode=False), policy, mlflow_store, notifier)
    yield dg.MaterializeResult(
        metadata={
            **rollout,
            "dagster/row_count": len(table),
            "table": "monitoring.online_comparison",
            "comparisons": dg.MetadataValue.md(
                shown.to_markdown(index=False, floatfmt=".4f") if len(shown) else "no challenger in the prediction log"
            ),
        }
    )
    worse = [
        c for c in comparisons if c.roc_auc_difference is not None and c.roc_auc_difference < -policy.gate_tolerance
    ]
    judged = [c for c in comparisons if c.roc_auc_difference is not None]
    yield dg.AssetCheckResult(
        check_name=ONLINE_CHECK,
        passed=not worse,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "; ".join(
                f"challenger v{c.challenger_version} ({c.mode}): matured ROC-AUC {c.roc_auc_challenger:.3f} is below "
                f"champion v{c.champion_version}'s {c.roc_auc_champion:.3f} by more than {policy.gate_tolerance:g}"
                for c in worse
            )
            if worse
            else f"{len(judged)} challenger comparison(s) with matured outcomes, none worse than the champion"
            if judged
            else "no challenger with enough matured outcomes to judge"
            if comparisons
            else "no challenger in the prediction log"
        ),
        metadata={"worse": ", ".join(f"v{c.challenger_version}" for c in worse) or "none", "judged": len(judged)},
    )


def decide_rollout(context, comparisons, policy: MonitoringPolicy, mlflow_store: MLflowResource, notifier) -> dict:
    """Decide the registry's ``@rollout`` version, if there is one, from its comparison with the current
    champion: promote it, roll it back, or wait for more matured outcomes. Returns the decision as metadata."""
    from churn_platform.ml import gate
    from churn_platform.ml.registry import alias_version, alias_with_tags, settle_rollout

    location, name = mlflow_store.location, mlflow_store.registered_model_name
    found = alias_with_tags(location, name, gate.ROLLOUT)
    # ``comparisons`` pool each version's modes (``compare_online(by_mode=False)``): one per pair of versions.
    if found is None:
        return {"rollout": "none"}
    version, tags = found
    champion = alias_version(location.tracking_uri, name, gate.CHAMPION) or "none"
    match = next((c for c in comparisons if c.challenger_version == version and c.champion_version == champion), None)
    verdict = gate.rollout_verdict(
        version,
        champion,
        match.labelled_pairs if match else 0,
        match.roc_auc_challenger if match else None,
        match.roc_auc_champion if match else None,
        min_matured=policy.rollout_min_matured,
        tolerance=policy.gate_tolerance,
    )
    context.log.info(
        f"{name}@{gate.ROLLOUT} (version {version}, {tags.get('rollout_mode', '?')}): {verdict.action}: {verdict.reason}"
    )
    if verdict.action != "wait":
        promote = verdict.action == "promote"
        settle_rollout(location, name, version, promote, verdict.reason)
        notifier.notify(
            "promotion" if promote else "rollback",
            f"{name} version {version} " + ("promoted to @champion after its rollout" if promote else "rolled back"),
            {"reason": verdict.reason, "run_id": context.run_id},
            logger=context.log,
        )
    return {
        "rollout": f"version {version}: {verdict.action}",
        "rollout_reason": verdict.reason,
        "rollout_pairs": match.pairs if match else 0,
        "rollout_matured_pairs": match.labelled_pairs if match else 0,
    }


ESTIMATE_CHECK = "estimated_performance_above_floor"


def latest_scores(history):
    """Each snapshot's scores by the version that scored it last (after a retraining, the new
    champion's), as customer_id, as_of, churn_probability and model_version."""
    if history.empty:
        return pd.DataFrame(columns=["customer_id", "as_of", "churn_probability", "model_version"])
    last = history.sort_values("scored_at").groupby("snapshot_date")["model_version"].last()
    chosen = history.merge(last.rename("last_version"), left_on="snapshot_date", right_index=True)
    chosen = chosen[chosen["model_version"].astype(str) == chosen["last_version"].astype(str)]
    return chosen.rename(columns={"snapshot_date": "as_of"})[
        ["customer_id", "as_of", "churn_probability", "model_version"]
    ]


@monitoring_asset(
    deps=[dg.AssetKey("churn_scores"), dg.AssetKey("churn_outcomes")],
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec(
            ESTIMATE_CHECK,
            asset="estimated_performance",
            description=(
                "Warns when the latest month whose outcomes have not matured has an estimated ROC-AUC below the "
                "promotion floor: the model has likely decayed, a month before the labels could say so."
            ),
        )
    ],
    description=(
        "Each month's ROC-AUC and churn rate estimated from the batch scores alone (confidence-based performance "
        "estimation: calibrated probabilities give the expected ROC curve), before the outcomes mature; beside each "
        "month whose outcomes have matured, the realised values and the estimate's error. Table "
        "`monitoring.estimated_performance`; the retrain sensor acts on an estimate below the floor."
    ),
)
def estimated_performance(context: dg.AssetExecutionContext, warehouse: Warehouse, policy: MonitoringPolicy):
    from churn_platform.defs.scores import HISTORY_TABLE, SCORES_SCHEMA
    from churn_platform.monitoring.estimation import estimate_by_month

    history = warehouse.read_table(SCORES_SCHEMA, HISTORY_TABLE)
    outcomes = warehouse.read_table("monitoring", "churn_outcomes")
    scores = latest_scores(history)
    estimates = estimate_by_month(scores, outcomes[outcomes["source"] == "batch"])
    warehouse.write_table("monitoring", "estimated_performance", estimates)
    realised = estimates[estimates["estimate_error"].notna()]
    pending = estimates[estimates["estimate_error"].isna()]
    latest = pending.iloc[-1] if len(pending) else None
    for row in estimates.itertuples():
        context.log.info(
            f"{row.month:%Y-%m}: estimated ROC-AUC {row.estimated_roc_auc:.3f} from {row.scores:,} scores"
            + (
                f"; realised {row.realised_roc_auc:.3f} (error {row.estimate_error:+.3f})"
                if row.estimate_error == row.estimate_error
                else "; outcomes not matured yet"
            )
        )
    table = (
        estimates.assign(month=estimates["month"].dt.strftime("%Y-%m")).to_markdown(index=False, floatfmt=".3f")
        if len(estimates)
        else "no scores yet"
    )
    metadata: dict[str, object] = {
        "dagster/row_count": len(estimates),
        "table": "monitoring.estimated_performance",
        "by_month": dg.MetadataValue.md(table),
        "months_realised": len(realised),
    }
    if len(realised):
        metadata["mean_abs_estimate_error"] = float(realised["estimate_error"].abs().mean())
    if latest is not None:
        metadata.update(
            {
                "month": f"{latest['month']:%Y-%m}",
                "model_version": str(latest["model_version"]),
                "estimated_roc_auc": float(latest["estimated_roc_auc"]),
                "estimated_churn_rate": float(latest["estimated_churn_rate"]),
            }
        )
    yield dg.MaterializeResult(metadata=metadata)
    floor = policy.roc_auc_floor
    if latest is None:
        passed, description = True, "no month awaits its outcomes"
    else:
        passed = bool(latest["estimated_roc_auc"] >= floor)
        description = (
            f"{latest['month']:%Y-%m}: estimated ROC-AUC {latest['estimated_roc_auc']:.3f} "
            f"{'reaches' if passed else 'is below'} the floor {floor:.2f} (outcomes not matured yet)"
        )
    yield dg.AssetCheckResult(
        check_name=ESTIMATE_CHECK, passed=passed, severity=dg.AssetCheckSeverity.WARN, description=description
    )


SEGMENT_CHECK = "segments_within_threshold"
ATTRIBUTION_CHECK = "attributions_stable"


@monitoring_asset(
    deps=[dg.AssetKey("training_set"), dg.AssetKey("scoring_features"), dg.AssetKey("churn_model")],
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec(
            SEGMENT_CHECK,
            asset="segment_drift_report",
            description="Warns when a segment's drift share is above the drift threshold.",
        ),
        dg.AssetCheckSpec(
            ATTRIBUTION_CHECK,
            asset="segment_drift_report",
            description="Warns when the features the champion's scores rest on have changed between training and now.",
        ),
    ],
    description=(
        "Drift per segment of customers (each value of a categorical attribute, and each risk tier by the champion's "
        "scores), training rows against the latest `scoring_features`, and attribution drift: each feature's share of "
        "the champion's explanations (TreeSHAP, linear terms or occlusion) on the training rows against the latest "
        "rows. Table `monitoring.segment_drift`."
    ),
)
def segment_drift_report(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    policy: MonitoringPolicy,
    business: BusinessResource,
    mlflow_store: MLflowResource,
):
    from churn_platform import policy as thresholds
    from churn_platform.ml.registry import load_by_alias
    from churn_platform.ml.scoring import RiskTiers, explain_records, reference_values
    from churn_platform.ml.training import features_frame
    from churn_platform.monitoring.drift import sample_rows
    from churn_platform.monitoring.segments import attribution_drift, risk_tiers, segment_drift
    from churn_platform.settings import CHAMPION_ALIAS

    catalogue = business.catalogue(warehouse)
    reference = sample_rows(warehouse.read_table("marts", "training_set"), policy.drift_sample_rows).reset_index(
        drop=True
    )
    current = sample_rows(warehouse.read_table("marts", "scoring_features"), policy.drift_sample_rows).reset_index(
        drop=True
    )
    champion = load_by_alias(
        mlflow_store.location, mlflow_store.registered_model_name, CHAMPION_ALIAS
    ).with_compiled_scorer()
    model_catalogue = champion.catalogue or catalogue
    ref_p = champion.predict_proba(reference)
    cur_p = champion.predict_proba(current)
    cutoffs = RiskTiers().cutoffs(ref_p)
    segments = {name: (reference[name], current[name]) for name in catalogue.categorical}
    segments["risk_tier"] = (risk_tiers(ref_p, cutoffs), risk_tiers(cur_p, cutoffs))
    results = segment_drift(reference, current, catalogue, segments)
    table = pd.DataFrame(
        [
            {
                "attribute": r.attribute,
                "value": r.value,
                "reference_rows": r.reference_rows,
                "current_rows": r.current_rows,
                "drift_share": r.drift_share,
                "drifted_features": ", ".join(r.drifted),
            }
            for r in results
        ],
        columns=["attribute", "value", "reference_rows", "current_rows", "drift_share", "drifted_features"],
    ).sort_values("drift_share", ascending=False, ignore_index=True)
    warehouse.write_table("monitoring", "segment_drift", table)

    # What the champion leans on, training rows against the latest rows (the same seeded samples).
    typical = reference_values(reference, model_catalogue)

    def contributions(frame):
        rows = sample_rows(frame, thresholds.ATTRIBUTION_SAMPLE_ROWS)
        records = features_frame(rows, model_catalogue, fill_missing=True).to_dict("records")
        return explain_records(champion.model, records, typical, champion.scorer, model_catalogue)[1]

    attributions = attribution_drift(contributions(reference), contributions(current), model_catalogue.names)
    worst = table.head(1)
    context.log.info(
        f"{len(table)} segments compared; "
        + (
            f"the most drifted: {worst['attribute'].iloc[0]}={worst['value'].iloc[0]} "
            f"({worst['drift_share'].iloc[0]:.2f})"
            if len(worst)
            else "none had enough rows"
        )
        + f"; attribution drift {attributions.distance:.3f}"
    )
    moved = "\n".join(f"| {name} | {before:.3f} | {after:.3f} |" for name, before, after in attributions.changes())
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "table": "monitoring.segment_drift",
            "segments": len(table),
            "max_segment_drift_share": float(table["drift_share"].max()) if len(table) else 0.0,
            "by_segment": dg.MetadataValue.md(
                table.head(20).to_markdown(index=False, floatfmt=".2f") if len(table) else "no segment had enough rows"
            ),
            "attribution_drift": attributions.distance,
            "attribution_changes": dg.MetadataValue.md(
                "| feature | share in training | share now |\n|---|---|---|\n" + moved
            ),
            "champion_version": champion.version,
        }
    )
    over = table[table["drift_share"] > policy.drift_threshold]
    yield dg.AssetCheckResult(
        check_name=SEGMENT_CHECK,
        passed=over.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "drifted segments: "
            + "; ".join(
                f"{r.attribute}={r.value} ({r.drift_share:.2f}: {r.drifted_features})"
                for r in over.head(5).itertuples()
            )
            if len(over)
            else f"{len(table)} segments, none with a drift share above {policy.drift_threshold:.2f}"
        ),
        metadata={"drifted_segments": len(over), "threshold": policy.drift_threshold},
    )
    stable = attributions.distance <= thresholds.ATTRIBUTION_DRIFT_THRESHOLD
    yield dg.AssetCheckResult(
        check_name=ATTRIBUTION_CHECK,
        passed=stable,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"attribution drift {attributions.distance:.3f} "
            + ("within" if stable else "above")
            + f" {thresholds.ATTRIBUTION_DRIFT_THRESHOLD}; moved most: "
            + ", ".join(f"{n} {a:.2f} → {b:.2f}" for n, a, b in attributions.changes(3))
        ),
        metadata={"attribution_drift": attributions.distance},
    )
