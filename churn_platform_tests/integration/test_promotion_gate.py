"""The promotion gate: its rules, and the real `churn_model` asset against a real MLflow
registry: a good model becomes champion, a model trained on shuffled labels never does,
and a worse model becomes challenger while the champion stays."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pytest
from mlflow import MlflowClient

from churn_platform.business.catalogue import LABEL_COLUMN, TIME_COLUMN
from churn_platform.defs.ml import GATE_CHECK, churn_model
from churn_platform.defs.resources import (
    DuckDBWarehouseResource,
    GroundTruth,
    MLflowResource,
    MonitoringPolicy,
    Notifier,
)
from churn_platform.ml import gate
from churn_platform.ml.registry import MLflowLocation, load_by_alias
from churn_platform_tests.business import business_resource, write_catalogue
from churn_platform_tests.unit.test_training import make_training_set


@pytest.mark.parametrize(
    ("candidate", "champion", "promoted", "below", "phrase"),
    [
        (0.80, None, True, False, "first model version"),
        (0.65, None, False, True, "below the floor"),
        (0.81, 0.80, True, False, "against champion"),
        (0.795, 0.80, True, False, "against champion"),  # within the tolerance
        (0.78, 0.80, False, False, "worse than champion"),
        (float("nan"), None, False, True, "below the floor"),
    ],
)
def test_gate_rules(candidate, champion, promoted, below, phrase):
    decision = gate.decide("2", candidate, None if champion is None else "1", champion, floor=0.7, tolerance=0.01)
    assert decision.promoted is promoted and decision.below_floor is below
    assert decision.alias == ("champion" if promoted else "challenger")
    assert phrase in decision.reason
    assert decision.tags()["gate_decision"] == ("promoted" if promoted else "rejected")


def test_a_champion_that_cannot_score_the_holdout_is_reported():
    decision = gate.decide("3", 0.75, "2", None, champion_note="KeyError: 'sessions_7d'")
    assert decision.promoted and "could not be scored" in decision.reason and "sessions_7d" in decision.reason


def test_gate_arguments_are_checked():
    with pytest.raises(ValueError, match="floor"):
        gate.decide("1", 0.8, None, None, floor=1.5)
    with pytest.raises(ValueError, match="tolerance"):
        gate.decide("1", 0.8, None, None, tolerance=-0.1)


@pytest.fixture
def registry(tmp_path, webhook):
    location = MLflowLocation(f"sqlite:///{tmp_path / 'mlflow.db'}", "gate-test", (tmp_path / "artifacts").as_uri())
    resources = {
        "warehouse": DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb")),
        # Your own data: no ground truth, so no oracle.
        "ground_truth": GroundTruth(),
        "mlflow_store": MLflowResource(
            tracking_uri=location.tracking_uri,
            experiment_name=location.experiment_name,
            artifact_location=location.artifact_location,
        ),
        "notifier": Notifier(webhook_url=webhook.url),
        "policy": MonitoringPolicy(),
        "business": business_resource(),
    }
    return location, resources


def _train(resources, frame, **config) -> dg.ExecuteInProcessResult:
    resources["warehouse"].write_table("marts", "training_set", frame)
    write_catalogue(resources["warehouse"])
    return dg.materialize(
        [churn_model],
        resources=resources,
        run_config={"ops": {"churn_model": {"config": config}}} if config else None,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _gate(result) -> dg.AssetCheckEvaluation:
    (evaluation,) = [c for c in result.get_asset_check_evaluations() if c.check_name == GATE_CHECK]
    return evaluation


def test_the_gate_promotes_good_models_only(registry, webhook):
    location, resources = registry
    good = make_training_set(rows_per_snapshot=800, seed=1)

    first = _train(resources, good)
    assert first.success and _gate(first).passed
    meta = first.get_asset_materialization_events()[0].materialization.metadata
    assert meta["alias"].value == "champion" and meta["model_version"].value == "1"
    assert 0 <= meta["ece"].value < 0.2 and meta["calibration"].value.startswith("sigmoid")
    assert "oracle_roc_auc" not in meta
    # The selected run carries the evaluation plots.
    client = MlflowClient(location.tracking_uri)
    plots = {a.path for a in client.list_artifacts(meta["mlflow_run_id"].value, "plots")}
    assert plots == {
        f"plots/{n}.png" for n in ("roc", "precision_recall", "reliability", "gains_lift", "feature_importance")
    }

    # Shuffled labels: no signal, so below the floor; it must never become champion.
    shuffled = good.copy()
    rng = np.random.default_rng(0)
    for _, idx in shuffled.groupby(TIME_COLUMN).groups.items():
        shuffled.loc[idx, LABEL_COLUMN] = rng.permutation(shuffled.loc[idx, LABEL_COLUMN].to_numpy())
    noise = _train(resources, shuffled)
    evaluation = _gate(noise)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "below the floor" in evaluation.description
    assert str(client.get_model_version_by_alias("churn_model", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("churn_model", "challenger").version) == "2"
    assert client.get_model_version("churn_model", "2").tags["gate_decision"] == "rejected"

    # With no floor, a model trained on noise (its training snapshots' labels shuffled, the
    # holdout intact) is judged against the champion on the same holdout rows: challenger, a warning.
    weaker = good.copy()
    snapshots = sorted(weaker[TIME_COLUMN].unique())
    train_rows = weaker.index[weaker[TIME_COLUMN] < snapshots[-2]]
    weaker.loc[train_rows, LABEL_COLUMN] = rng.permutation(weaker.loc[train_rows, LABEL_COLUMN].to_numpy())
    worse = _train(resources, weaker, promotion_floor=0.0)
    evaluation = _gate(worse)
    assert not evaluation.passed, evaluation.description
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "worse than champion version 1" in evaluation.description
    assert load_by_alias(location, "churn_model", "champion").version == "1"
    # Each decision was announced through the notifier's webhook.
    assert webhook.kinds() == ["promotion", "challenger", "challenger"]
    assert "version 1 promoted to @champion" in webhook.texts()[0]
    assert "version 3 kept as @challenger" in webhook.texts()[2]


def test_the_gate_can_compare_by_expected_profit():
    """With metric empc the champion comparison is by EMPC on the same rows (the tolerance a share of
    the champion's); a better ROC-AUC does not save a version that earns less; the floor still holds."""
    close = gate.decide("2", 0.80, "1", 0.82, tolerance=0.05, metric="empc", candidate_empc=10.0, champion_empc=10.4)
    assert close.promoted and "EMPC 10.00" in close.reason and close.tags()["gate_metric"] == "empc"
    poorer = gate.decide("2", 0.85, "1", 0.80, tolerance=0.01, metric="empc", candidate_empc=9.0, champion_empc=10.0)
    assert not poorer.promoted and poorer.alias == gate.CHALLENGER and "below champion version 1" in poorer.reason
    low = gate.decide("2", 0.6, "1", 0.8, floor=0.7, metric="empc", candidate_empc=20.0, champion_empc=10.0)
    assert not low.promoted and low.below_floor
    with pytest.raises(ValueError, match="has none"):
        gate.decide("2", 0.8, None, None, metric="empc")
    with pytest.raises(ValueError, match="roc_auc or empc"):
        gate.decide("2", 0.8, None, None, metric="profit")


def test_expected_profit_rewards_a_better_ranking():
    from churn_platform.business.declaration import Retention
    from churn_platform.ml.profit import ChurnEconomics

    rng = np.random.default_rng(0)
    truth = rng.random(20_000) * 0.3
    churned = rng.random(truth.size) < truth
    economics = ChurnEconomics.of(Retention(contact_cost=120, value_months=12, save_rate=0.2), [400.0, 600.0])
    assert economics.clv == 6_000.0
    informed, share = economics.empc(churned, truth)
    blind, _ = economics.empc(churned, rng.random(truth.size))
    assert informed > blind and 0 < share <= 1
    assert ChurnEconomics.of(Retention(), [0.0, 0.0]) is None  # no revenue to value customers by


def test_with_a_rollout_policy_a_version_that_passes_is_served_beside_the_champion_first(registry, webhook):
    location, resources = registry
    resources["policy"] = MonitoringPolicy(rollout="canary", rollout_share=0.25)
    frame = make_training_set(rows_per_snapshot=800, seed=1)
    first = _train(resources, frame)
    assert first.get_asset_materialization_events()[0].materialization.metadata["alias"].value == "champion"
    second = _train(resources, frame)
    meta = second.get_asset_materialization_events()[0].materialization.metadata
    assert second.success and _gate(second).passed
    assert meta["alias"].value == "rollout" and "served in canary (25%) beside champion version 1" in (
        meta["gate_reason"].value
    )
    client = MlflowClient(location.tracking_uri)
    aliases = {a: str(v) for a, v in client.get_registered_model("churn_model").aliases.items()}
    assert aliases == {"champion": "1", "rollout": "2"}
    tags = client.get_model_version("churn_model", "2").tags
    assert tags["rollout_mode"] == "canary" and tags["rollout_share"] == "0.25"
    assert webhook.kinds() == ["promotion", "rollout"]
