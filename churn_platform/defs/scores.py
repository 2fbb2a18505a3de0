"""Batch scores of every active customer by the champion, for analysts."""

import time

import dagster as dg

from churn_platform import policy
from churn_platform.defs.automation import follow_parents
from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import MLflowResource, Warehouse
from churn_platform.ml.registry import load_by_alias
from churn_platform.ml.scoring import RiskTiers, compiled, reference_values, score_frame, score_with_ray
from churn_platform.settings import CHAMPION_ALIAS

SCORES_SCHEMA = "scores"
SCORES_TABLE = "churn_scores"


class ScoringConfig(dg.Config):
    high_risk_share: float = policy.HIGH_RISK_SHARE
    """The top share of the population by probability that is tier ``high``."""
    medium_risk_share: float = policy.MEDIUM_RISK_SHARE
    """The next share that is tier ``medium``; the rest is ``low``."""
    ray_min_rows: int = 1_000_000
    """From this many customers on, scoring runs on Ray Data instead of in process."""


@dg.asset(
    group_name="ml",
    deps=[dg.AssetKey("scoring_features"), dg.AssetKey("churn_model")],
    kinds={"python", "duckdb", "ray"},
    freshness_policy=freshness_for("ml"),
    automation_condition=follow_parents(),
    description=(
        "Every active customer at the latest snapshot scored by the `champion`: probability, risk tier, "
        "the top three drivers of the risk (occlusion against the typical customer), revenue at risk "
        "(probability × MRR) and the model version; table `scores.churn_scores` in the warehouse."
    ),
)
def churn_scores(
    context: dg.AssetExecutionContext,
    config: ScoringConfig,
    warehouse: Warehouse,
    mlflow_store: MLflowResource,
) -> dg.MaterializeResult:
    population = warehouse.read_table("marts", "scoring_features")
    champion = load_by_alias(mlflow_store.location, mlflow_store.registered_model_name, CHAMPION_ALIAS)
    catalogue = champion.features
    absent = [name for name in catalogue.names if name not in population.columns]
    if absent:
        context.log.warning(
            f"the champion's features {', '.join(absent)} are not in scoring_features (the data or the "
            "declaration changed since it was trained): scored as missing until a new model is trained"
        )
    tiers = RiskTiers(high=config.high_risk_share, medium=config.medium_risk_share)
    reference = reference_values(population, catalogue)
    # The compiled scorer scores and explains (the pipeline where there is none); the cut-offs come
    # from the same scores of the whole population, so that batches score exactly like the whole.
    scorer = compiled(champion.model, catalogue)
    cutoffs = tiers.cutoffs(scorer.predict_proba(population) if scorer else champion.predict_proba(population))
    explanation = scorer.explanation if scorer else "occlusion against the typical customer (pipeline)"
    context.log.info(f"drivers: {explanation}")
    started = time.monotonic()
    engine = "ray" if len(population) >= config.ray_min_rows else "in-process"
    context.log.info(f"scoring {len(population):,} customers with {champion.name} v{champion.version} ({engine})")
    if engine == "ray":
        scores = score_with_ray(
            population, mlflow_store.tracking_uri, champion.name, champion.version, reference, cutoffs, catalogue
        )
    else:
        scores = score_frame(
            champion.model,
            catalogue,
            population,
            champion.name,
            champion.version,
            reference,
            cutoffs,
            scorer=scorer or False,
        )
    seconds = time.monotonic() - started
    warehouse.write_table(SCORES_SCHEMA, SCORES_TABLE, scores)
    history_rows = record_history(warehouse, scores)
    by_tier = scores.groupby("risk_tier")["revenue_at_risk"].agg(["size", "sum"])
    top = scores.nlargest(10, "revenue_at_risk")[
        ["customer_id", "churn_probability", "risk_tier", "driver_1", "driver_2", "driver_3", "revenue_at_risk"]
    ]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(scores),
            "table": f"{SCORES_SCHEMA}.{SCORES_TABLE}",
            "model_version": champion.version,
            "engine": engine,
            "drivers_explained_by": explanation,
            "seconds": round(seconds, 2),
            "high_risk_customers": int(by_tier["size"].get("high", 0)),
            "medium_risk_customers": int(by_tier["size"].get("medium", 0)),
            "revenue_at_risk_total": float(scores["revenue_at_risk"].sum()),
            "revenue_at_risk_high_tier": float(by_tier["sum"].get("high", 0.0)),
            "high_risk_cutoff": cutoffs[0],
            "medium_risk_cutoff": cutoffs[1],
            "top_revenue_at_risk": dg.MetadataValue.md(top.to_markdown(index=False, floatfmt=".3f")),
            "history_rows": history_rows,
            "features_scored_as_missing": ", ".join(absent) or "none",
        }
    )


HISTORY_TABLE = "churn_scores_history"


def record_history(warehouse: Warehouse, scores) -> int:
    """Keep every run's scores in `scores.churn_scores_history`, one set per snapshot date and model
    version (a rerun replaces its own set), for the feedback loop (`churn_outcomes`). Returns its rows."""
    import pandas as pd

    rows = scores.assign(scored_at=pd.Timestamp.now(tz="UTC").tz_localize(None).floor("us"))
    return warehouse.replace_rows(SCORES_SCHEMA, HISTORY_TABLE, rows, ["snapshot_date", "model_version"])
