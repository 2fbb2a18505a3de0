"""The decision assets: the retention worklist (the warehouse table and the CRM export, the
declaration's budget and a run's overrides, the same control arm on a rerun, a clear failure with
nobody scored) and the campaign effect (measured per campaign, a warning for one without effect)."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from churn_platform.decisions.targeting import WORKLIST_COLUMNS
from churn_platform.defs.decisions import campaign_effect, retention_worklist
from churn_platform.defs.resources import DuckDBWarehouseResource, MLflowResource, ReportStore
from churn_platform_tests.business import B2B, business_resource
from churn_platform_tests.unit.test_decisions import scores


def big_accounts(n: int = 1_000) -> pd.DataFrame:
    """Scores of accounts large enough that most are worth a contact at the B2B example's cost."""
    frame = scores(n=n)
    frame["mrr"] *= 20
    return frame


def materialize(tmp_path, frame: pd.DataFrame, config: dict | None = None, declaration=B2B, instance=None):
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    warehouse.write_table("scores", "churn_scores", frame)
    return dg.materialize(
        [retention_worklist],
        resources={
            "warehouse": warehouse,
            "reports": ReportStore(reports_dir=str(tmp_path / "reports")),
            "business": business_resource(declaration),
            # An empty registry: no uplift model, so the worklist targets by risk.
            "mlflow_store": MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment_name="w"),
        },
        run_config={"ops": {"retention_worklist": {"config": config or {}}}},
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    ), warehouse


def test_the_worklist_is_a_table_and_an_export_within_the_declared_budget(tmp_path):
    result, warehouse = materialize(tmp_path, big_accounts())
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    campaign = meta["campaign"].value
    assert campaign == "saas_b2b-2025-12-01"
    table = warehouse.read_table("decisions", "retention_worklist")
    assert list(table.columns) == list(WORKLIST_COLUMNS)
    assert len(table) == B2B.retention.max_contacts == meta["treated"].value + meta["control"].value
    exported = pd.read_csv(meta["export_csv"].value)
    assert exported.customer_id.tolist() == table.customer_id.tolist()
    assert pd.read_parquet(meta["export_parquet"].value).reason.tolist() == table.reason.tolist()
    assert meta["spend"].value == pytest.approx(B2B.retention.contact_cost * meta["treated"].value)
    # What its controls can measure, before it runs.
    treated = table[table.arm == "treated"]
    assert meta["expected_effect"].value == pytest.approx((treated.churn_probability * B2B.retention.save_rate).mean())
    assert 0 < meta["detectable_effect"].value < 1

    # A rerun of the same campaign holds out the same customers.
    _, warehouse_again = materialize(tmp_path / "again", big_accounts())
    pd.testing.assert_frame_equal(warehouse_again.read_table("decisions", "retention_worklist"), table)


def test_a_run_can_name_its_campaign_and_change_the_budget(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    result, warehouse = materialize(
        tmp_path, big_accounts(), {"campaign": "spring", "max_spend": 1_000.0}, instance=instance
    )
    assert result.success
    table = warehouse.read_table("decisions", "retention_worklist")
    assert set(table.campaign) == {"spring"} and table.cost.sum() <= 1_000
    assert (table.arm == "treated").sum() == 1_000 // B2B.retention.contact_cost
    # Eight contacts hold no control out (10% of eight rounds to none): the run says it cannot be measured.
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert meta["control"].value == 0 and meta["detectable_effect"].value == "no controls"
    assert any("spring: no controls are held out" in m for m in logged), logged
    # With 40 contacts and a quarter held out the controls are too few for the expected effect.
    instance = dg.DagsterInstance.ephemeral()
    config = {"campaign": "summer", "max_contacts": 40, "control_share": 0.25}
    result, _ = materialize(tmp_path / "summer", big_accounts(), config, instance=instance)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert meta["control"].value > 0 and meta["detectable_effect"].value > meta["expected_effect"].value
    assert any("summer: the expected effect" in m and "hold out more" in m for m in logged), logged


def test_nobody_scored_is_a_clear_failure(tmp_path):
    result, _ = materialize(tmp_path, scores(n=5).head(0))
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "has no rows: there is nobody to target" in str(failure.step_failure_data.error)


def outcomes(campaign: str, n_treated: int, n_control: int, churn_treated, churn_control, seed: int, matured=True):
    rng = np.random.default_rng(seed)
    arm = np.array(["treated"] * n_treated + ["control"] * n_control)
    churned = rng.random(arm.size) < np.where(arm == "treated", churn_treated, churn_control)
    return pd.DataFrame(
        {
            "action_id": [f"{campaign}-{i}" for i in range(arm.size)],
            "campaign": campaign,
            "customer_id": np.arange(arm.size),
            "arm": arm,
            "cost": np.where(arm == "treated", 120.0, 0.0),
            "mrr": 400.0,
            "matured": matured,
            "churned": churned if matured else None,
        }
    )


def measure(tmp_path, frame: pd.DataFrame, history: pd.DataFrame | None = None):
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    warehouse.write_table("decisions", "campaign_outcomes", frame)
    if history is not None:
        warehouse.write_table("scores", "churn_scores_history", history)
    result = dg.materialize(
        [campaign_effect],
        resources={
            "warehouse": warehouse,
            "reports": ReportStore(reports_dir=str(tmp_path / "reports")),
            "business": business_resource(),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    (check,) = result.get_asset_check_evaluations()
    return result.get_asset_materialization_events()[0].materialization.metadata, check, warehouse


def test_each_campaign_is_measured_and_one_without_effect_warns(tmp_path):
    frame = pd.concat(
        [
            outcomes("works", 1_500, 1_500, 0.08, 0.2, seed=1),
            outcomes("nothing", 1_000, 150, 0.15, 0.15, seed=2),
            outcomes("young", 300, 30, 0.1, 0.1, seed=3, matured=False),
        ],
        ignore_index=True,
    )
    meta, check, warehouse = measure(tmp_path, frame)
    effects = warehouse.read_table("decisions", "campaign_effects").set_index("campaign")
    assert effects.loc["works", "verdict"] == "kept customers" and effects.loc["works", "saved_customers_low"] > 0
    assert effects.loc["works", "saved_mrr"] == pytest.approx(effects.loc["works", "saved_customers"] * 400)
    assert effects.loc["nothing", "verdict"] == "no effect distinguishable from zero"
    assert effects.loc["young", "verdict"] == "not matured" and pd.isna(effects.loc["young", "effect"])
    assert meta["campaigns"].value == 3 and meta["measured_campaigns"].value == 2
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "nothing" in check.description and "works" not in check.description
    assert (tmp_path / "reports" / "campaign_effect.png").stat().st_size > 0


def test_no_campaign_yet_is_said_so(tmp_path):
    meta, check, warehouse = measure(tmp_path, outcomes("none", 0, 0, 0.1, 0.1, seed=4))
    assert check.passed and check.description == "no campaign has matured yet"
    assert meta["campaigns"].value == 0 and warehouse.read_table("decisions", "campaign_effects").empty


def test_a_campaign_scored_before_its_contacts_is_measured_adjusted_by_the_score(tmp_path):
    """Where every contact has a churn score from before it, the effect is adjusted by it: the
    interval narrows; a campaign with unscored contacts is measured unadjusted."""
    rng = np.random.default_rng(5)
    n = 2_000
    p = rng.beta(0.5, 2, n)  # a score that tells customers apart: it explains much of who churns
    arm = np.where(np.arange(n) % 2 == 0, "treated", "control")
    churned = rng.random(n) < np.where(arm == "treated", 0.6 * p, p)
    scored = pd.DataFrame(
        {
            "action_id": [f"s-{i}" for i in range(n)],
            "campaign": "scored",
            "customer_id": np.arange(n),
            "contact_date": pd.Timestamp("2025-08-01"),
            "arm": arm,
            "cost": np.where(arm == "treated", 120.0, 0.0),
            "mrr": 400.0,
            "matured": True,
            "churned": churned,
        }
    )
    unscored = scored.assign(campaign="unscored", action_id=[f"u-{i}" for i in range(n)], customer_id=np.arange(n) + n)
    history = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "snapshot_date": pd.Timestamp("2025-08-01"),
            "churn_probability": p,
            "model_version": "1",
            "scored_at": pd.Timestamp("2026-01-01"),
        }
    )
    meta, _, warehouse = measure(tmp_path, pd.concat([scored, unscored], ignore_index=True), history)
    effects = warehouse.read_table("decisions", "campaign_effects").set_index("campaign")
    assert effects.loc["scored", "adjusted_by"] == "churn_probability_at_contact"
    assert effects.loc["scored", "interval_vs_unadjusted"] < 0.95
    assert effects.loc["scored", "verdict"] == "kept customers"
    assert pd.isna(effects.loc["unscored", "adjusted_by"]) and pd.isna(
        effects.loc["unscored", "interval_vs_unadjusted"]
    )
    assert meta["contacts_with_score_before"].value == n


def test_simulated_campaigns_are_measured_within_their_true_effect(tmp_path):
    """Two campaigns on the simulated B2B business, with real dbt: persuadable customers contacted
    keep more of them, sleeping dogs contacted lose more; each interval holds the true mean uplift of
    its treated customers (from the ground truth), and the controls were drawn by the hash."""
    from churn_platform.decisions.effect import campaign_effect as measure
    from churn_platform.decisions.targeting import control_draw
    from churn_platform.simulation import retention
    from churn_platform.simulation.generator import GeneratorConfig, generate
    from churn_platform_tests.business import load_and_build

    config = GeneratorConfig(customers=20_000, days=365, seed=11)
    day = pd.Timestamp("2025-11-01")
    before = generate(config)
    truth = before.churn_probability_truth
    at_day = truth[truth.snapshot_date == day].merge(before.retention_effect, on="customer_id")
    campaigns = []
    for name, segment in (("persuade", "persuadable"), ("wake_the_dogs", "sleeping_dog")):
        who = at_day.loc[at_day.segment == segment, "customer_id"].to_numpy()
        arms = np.where(control_draw(name, who.tolist()) < 0.5, "control", "treated")
        campaigns.append(retention.contacts("saas_b2b", who, arms, day + pd.Timedelta(hours=9), name))
    actions = pd.concat(campaigns, ignore_index=True)
    after = generate(config, actions=actions)
    path = tmp_path / "w.duckdb"
    load_and_build(B2B, after.tables, path, tmp_path, select="+campaign_outcomes", read_features=False)
    outcomes = DuckDBWarehouseResource(path=str(path)).read_table("decisions", "campaign_outcomes")
    assert len(outcomes) == len(actions) and outcomes.churned.notna().all() and (outcomes.mrr > 0).mean() > 0.95
    effects = {e.campaign: e for e in measure(outcomes)}
    uplift = at_day.set_index("customer_id").uplift_30d
    for name, verdict in (("persuade", "kept customers"), ("wake_the_dogs", "lost customers")):
        e = effects[name]
        treated = actions[(actions.campaign == name) & (actions.arm == "treated")].customer_id
        true_effect = float(uplift.loc[treated].mean())
        assert e.verdict == verdict, e
        assert e.effect_low <= true_effect <= e.effect_high, (name, true_effect, e)


def test_an_uplift_model_learns_from_two_random_campaigns_and_is_registered(tmp_path):
    """Two campaigns on random halves of the simulated B2B customers (each with a random control
    half), real dbt up to the uplift training set, then the uplift asset: trained on the first,
    held out on the second, registered as churn_uplift v1 and promoted; its Qini is compared with the
    true uplift's. Before any campaign has matured it waits and says why."""
    from churn_platform.apps.location import SimulatedGroundTruth
    from churn_platform.decisions.targeting import control_draw
    from churn_platform.defs.decisions import uplift_model
    from churn_platform.ml.registry import UPLIFT_MODEL_NAME, MLflowLocation, load_uplift
    from churn_platform.simulation import retention
    from churn_platform.simulation.generator import GeneratorConfig, generate, write_sources
    from churn_platform_tests.business import load_and_build, write_catalogue

    config = GeneratorConfig(customers=12_000, days=365, seed=5)
    before = generate(config)
    truth = before.churn_probability_truth
    campaigns = []
    for name, day in (("october", "2025-10-01"), ("november", "2025-11-01")):
        active = truth.loc[truth.snapshot_date == pd.Timestamp(day), "customer_id"].to_numpy()
        who = active[control_draw(f"pick-{name}", active.tolist()) < 0.5]
        arms = np.where(control_draw(name, who.tolist()) < 0.5, "control", "treated")
        campaigns.append(retention.contacts("saas_b2b", who, arms, pd.Timestamp(day) + pd.Timedelta(hours=9), name))
    after = generate(config, actions=pd.concat(campaigns, ignore_index=True))
    folder = tmp_path / "sources"
    write_sources(after, folder)
    path = tmp_path / "w.duckdb"
    load_and_build(B2B, after.tables, path, tmp_path, select="+uplift_training_set", read_features=False)
    warehouse = DuckDBWarehouseResource(path=str(path))
    write_catalogue(warehouse)
    location = MLflowLocation(f"sqlite:///{tmp_path / 'mlflow.db'}", "uplift-test", (tmp_path / "artifacts").as_uri())
    resources = {
        "warehouse": warehouse,
        "business": business_resource(),
        "mlflow_store": MLflowResource(
            tracking_uri=location.tracking_uri,
            experiment_name=location.experiment_name,
            artifact_location=location.artifact_location,
        ),
        "ground_truth": SimulatedGroundTruth(folder=str(folder)),
    }
    training = warehouse.read_table("decisions", "uplift_training_set")
    assert set(training.campaign) == {"october", "november"} and training.churned.notna().all()

    result = dg.materialize([uplift_model], resources=resources, instance=dg.DagsterInstance.ephemeral())
    meta = {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}
    assert meta["status"] == "trained" and meta["held_out"] == "campaign november", meta
    assert meta["model_version"] == "1" and meta["alias"] == "champion" and meta["qini"] > 0, meta
    assert meta["oracle_qini"] > 0 and meta["oracle_matched_share"] > 0.95, meta
    estimator, version = load_uplift(location, "champion")
    assert version == "1"
    scored = estimator.predict(training.head(200))
    assert scored.shape == (200,) and np.isfinite(scored).all()

    # The champion now ranks the worklist: nobody it expects a contact to drive away is on it.
    latest = warehouse.query(
        "select * from marts.customer_features where snapshot_date = (select max(snapshot_date) from marts.customer_features)"
    )
    warehouse.write_table("marts", "scoring_features", latest)
    scored = scores(n=len(latest))
    scored["customer_id"], scored["mrr"] = latest["customer_id"].to_numpy(), scored["mrr"] * 20
    warehouse.write_table("scores", "churn_scores", scored)
    worklist = dg.materialize(
        [retention_worklist],
        resources={**resources, "reports": ReportStore(reports_dir=str(tmp_path / "reports"))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert worklist.success
    table = warehouse.read_table("decisions", "retention_worklist")
    assert set(table.targeted_by) == {"uplift (churn_uplift v1)"} and len(table) > 0 and (table.uplift > 0).all()

    # With too few matured contacts, the asset waits.
    warehouse.write_table("decisions", "uplift_training_set", training.head(30))
    waiting = dg.materialize([uplift_model], resources=resources, instance=dg.DagsterInstance.ephemeral())
    meta = waiting.get_asset_materialization_events()[0].materialization.metadata
    assert meta["status"].value == "waiting for campaigns" and "at least 50" in meta["reason"].value
    assert UPLIFT_MODEL_NAME == "churn_uplift"
