"""Retention decisions as plain functions: the worklist within its budget with a hashed control
arm, and a campaign's effect against its controls with bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_platform.decisions.effect import COVARIATE, campaign_effect, campaign_power, scores_at_contact
from churn_platform.decisions.targeting import (
    WORKLIST_COLUMNS,
    TargetingPolicy,
    control_draw,
    expected_benefit,
    select,
    worklist_from_scores,
)


def candidates(n: int = 1_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"customer_id": np.arange(1, n + 1), "churn_probability": rng.beta(1, 8, n), "mrr": rng.gamma(2, 50, n)}
    )
    policy = TargetingPolicy(contact_cost=10, value_months=12, save_rate=0.2, max_contacts=None)
    frame["expected_benefit"] = expected_benefit(frame.mrr, policy, churn_probability=frame.churn_probability)
    return frame


def test_expected_benefit_by_risk_and_by_uplift():
    policy = TargetingPolicy(contact_cost=10, value_months=12, save_rate=0.25)
    by_risk = expected_benefit(np.array([100.0]), policy, churn_probability=np.array([0.4]))
    assert by_risk == pytest.approx(0.4 * 0.25 * 1_200 - 10)
    by_uplift = expected_benefit(np.array([100.0, 100.0]), policy, uplift=np.array([0.05, -0.02]))
    np.testing.assert_allclose(by_uplift, [0.05 * 1_200 - 10, -0.02 * 1_200 - 10])
    with pytest.raises(ValueError, match="needs churn probabilities or uplift"):
        expected_benefit(np.array([1.0]), policy)


def test_the_worklist_takes_the_best_positive_benefit_within_the_contact_budget():
    frame = candidates()
    worklist = select(frame, TargetingPolicy(max_contacts=150), campaign="june")
    assert len(worklist) == 150 and (worklist.expected_benefit > 0).all()
    assert worklist.expected_benefit.is_monotonic_decreasing and list(worklist["rank"]) == list(range(1, 151))
    threshold = worklist.expected_benefit.min()
    assert (frame.loc[~frame.customer_id.isin(worklist.customer_id), "expected_benefit"] <= threshold).all()
    # About a tenth held out, by the hash: the same on a second run, another draw for another campaign.
    share = (worklist.arm == "control").mean()
    assert 0.04 < share < 0.18
    again = select(frame, TargetingPolicy(max_contacts=150), campaign="june")
    pd.testing.assert_frame_equal(worklist, again)
    other = select(frame, TargetingPolicy(max_contacts=150), campaign="july")
    assert set(other.customer_id) == set(worklist.customer_id)
    assert list(other.arm) != list(worklist.arm)
    assert (worklist.cost == np.where(worklist.arm == "treated", 10.0, 0.0)).all()


def test_a_money_budget_counts_only_the_treated_and_no_benefit_means_no_contact():
    frame = candidates()
    worklist = select(frame, TargetingPolicy(max_contacts=None, max_spend=500, contact_cost=10), campaign="c")
    assert worklist.cost.sum() <= 500 and (worklist.arm == "treated").sum() == 50
    nobody = select(frame.assign(expected_benefit=-1.0), TargetingPolicy(), campaign="c")
    assert nobody.empty


def test_the_control_draw_is_uniform_and_stable():
    draw = control_draw("spring", list(range(20_000)))
    assert 0.09 < (draw < 0.1).mean() < 0.11
    assert control_draw("spring", [7, "usr_00ab"]).tolist() == control_draw("spring", [7, "usr_00ab"]).tolist()


def test_bad_policies_and_inputs_are_refused():
    with pytest.raises(ValueError, match="save_rate"):
        TargetingPolicy(save_rate=1.5)
    with pytest.raises(ValueError, match="control_share"):
        TargetingPolicy(control_share=1.0)
    with pytest.raises(ValueError, match="needs a name"):
        select(candidates(), TargetingPolicy(), campaign="")
    with pytest.raises(ValueError, match="lack columns"):
        select(candidates().drop(columns="expected_benefit"), TargetingPolicy(), campaign="c")


def contacts(n_treated: int, n_control: int, churn_treated: float, churn_control: float, seed: int = 1):
    rng = np.random.default_rng(seed)
    arm = np.array(["treated"] * n_treated + ["control"] * n_control)
    p = np.where(arm == "treated", churn_treated, churn_control)
    return pd.DataFrame(
        {
            "campaign": "c1",
            "arm": arm,
            "churned": rng.random(arm.size) < p,
            "mrr": 100.0,
            "cost": np.where(arm == "treated", 10.0, 0.0),
        }
    )


def test_a_campaign_that_kept_customers_is_measured_with_its_interval():
    (result,) = campaign_effect(contacts(3_000, 3_000, 0.10, 0.20))
    assert result.verdict == "kept customers"
    assert result.effect == pytest.approx(0.10, abs=0.03)
    assert 0 < result.effect_low < result.effect < result.effect_high
    assert result.saved_customers == pytest.approx(result.effect * 3_000)
    assert result.saved_mrr == pytest.approx(result.saved_customers * 100, rel=1e-9)
    assert result.cost == 30_000 and result.roi == pytest.approx((result.saved_mrr * 12 - 30_000) / 30_000)


def test_a_campaign_without_effect_is_reported_as_such_and_an_immature_one_is_not_judged():
    (none,) = campaign_effect(contacts(2_000, 200, 0.15, 0.15, seed=3))
    assert none.verdict == "no effect distinguishable from zero"
    assert none.effect_low < 0 < none.effect_high
    young = contacts(500, 50, 0.1, 0.2).assign(churned=None)
    (unknown,) = campaign_effect(young)
    assert unknown.verdict == "not matured" and unknown.effect is None and unknown.matured == 0
    with pytest.raises(ValueError, match="lack columns"):
        campaign_effect(young.drop(columns="mrr"))


def test_a_contact_that_drives_customers_away_is_a_loss():
    (result,) = campaign_effect(contacts(3_000, 3_000, 0.30, 0.15))
    assert result.verdict == "lost customers" and result.effect_high < 0 and result.roi < 0


def scored_contacts(seed: int, n: int = 1_000) -> tuple[pd.DataFrame, float, float]:
    """A campaign whose contact cuts every customer's churn probability by 40%, with the probability
    known before the contact, and its true effects on churn and on lost revenue per treated customer."""
    rng = np.random.default_rng(seed)
    p, mrr = rng.beta(2, 6, n), rng.lognormal(5, 1, n)
    arm = np.where(rng.random(n) < 0.5, "control", "treated")
    churned = rng.random(n) < np.where(arm == "treated", 0.6 * p, p)
    frame = pd.DataFrame(
        {"campaign": "c", "arm": arm, "churned": churned, "mrr": mrr, "cost": 10.0 * (arm == "treated"), COVARIATE: p}
    )
    treated = arm == "treated"
    return frame, float(0.4 * p[treated].mean()), float((0.4 * p * mrr)[treated].mean())


def test_a_score_from_before_the_contact_narrows_the_interval_without_bias():
    (adjusted,) = campaign_effect(scored_contacts(0)[0])
    (plain,) = campaign_effect(scored_contacts(0)[0].drop(columns=COVARIATE))
    assert adjusted.adjusted_by == COVARIATE and plain.adjusted_by is None and plain.interval_vs_unadjusted is None
    assert adjusted.interval_vs_unadjusted < 1 and adjusted.mrr_interval_vs_unadjusted < 1
    assert adjusted.churn_treated == plain.churn_treated  # the arms' rates stay as observed
    # Over many campaigns the adjusted estimates centre on the truth and spread less.
    errors = {"adjusted": [], "plain": []}
    for seed in range(150):
        frame, effect, mrr_effect = scored_contacts(seed)
        for kind, rows in (("adjusted", frame), ("plain", frame.drop(columns=COVARIATE))):
            (e,) = campaign_effect(rows, resamples=20)
            errors[kind].append((e.effect - effect, e.saved_mrr / e.treated - mrr_effect))
    adjusted_errors, plain_errors = np.array(errors["adjusted"]), np.array(errors["plain"])
    assert abs(adjusted_errors[:, 0].mean()) < 0.006 and abs(adjusted_errors[:, 1].mean()) < 2.5
    assert (adjusted_errors.std(axis=0) < plain_errors.std(axis=0)).all()
    # One contact without a score: the campaign is measured unadjusted.
    frame = scored_contacts(1)[0]
    frame.loc[3, COVARIATE] = np.nan
    assert campaign_effect(frame)[0].adjusted_by is None


def test_the_score_at_a_contact_is_the_latest_from_before_it_as_first_scored():
    contacts = pd.DataFrame(
        {"customer_id": [1, 2, 3, 4], "contact_date": pd.to_datetime(["2025-08-01"] * 3 + ["2025-10-15"])}
    )
    history = pd.DataFrame(
        {
            "customer_id": ["1", "1", "1", "1", "2", "3"],
            "snapshot_date": pd.to_datetime(
                ["2025-07-01", "2025-08-01", "2025-08-01", "2025-09-01", "2025-05-01", "2025-07-01"]
            ),
            "churn_probability": [0.1, 0.2, 0.9, 0.5, 0.3, 0.4],
            "scored_at": pd.to_datetime(
                ["2025-07-02", "2025-08-02", "2025-10-02", "2025-09-02", "2025-05-02", "2025-07-02"]
            ),
        }
    )
    got = scores_at_contact(contacts, history)[COVARIATE].tolist()
    # 1: the 1 August snapshot, as first scored (not the later version's 0.9, nor September's);
    # 2: May is too old; 3: July; 4: nothing scored.
    assert got[0] == 0.2 and np.isnan(got[1]) and got[2] == 0.4 and np.isnan(got[3])
    assert scores_at_contact(contacts, history.iloc[:0])[COVARIATE].isna().all()


def test_a_campaigns_power_is_what_its_controls_detect():
    # 2,000 contacted and 500 held out at a 20% churn rate: 1.645 + 0.842 standard errors.
    power = campaign_power(np.full(2_500, 0.2), np.full(2_000, 0.05), 2_000, 500)
    se = np.sqrt(0.2 * 0.8 * (1 / 2_000 + 1 / 500))
    assert power.detectable_effect == pytest.approx(2.4865 * se, rel=1e-3)
    assert power.expected_effect == pytest.approx(0.05) and power.detectable_effect < 0.05
    # The controls the expected effect needs detect it exactly, and fewer do not.
    small = campaign_power(np.full(1_000, 0.2), np.full(900, 0.05), 900, 100)
    assert small.detectable_effect > 0.05 and small.controls_for_expected is not None
    needed = small.controls_for_expected
    assert campaign_power([0.2], [0.05], 900, needed).detectable_effect <= 0.05
    assert campaign_power([0.2], [0.05], 900, needed - 1).detectable_effect > 0.05
    # With a handful contacted no number of controls is enough; without controls nothing is.
    assert campaign_power([0.2], [0.01], 50, 100).controls_for_expected is None
    assert campaign_power([0.2], [0.05], 50, 0).detectable_effect == float("inf")
    # Simulated: at the detectable effect about 80% of campaigns are told from zero.
    told = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        arm = np.array(["treated"] * 2_000 + ["control"] * 500)
        churned = rng.random(arm.size) < np.where(arm == "treated", 0.2 - power.detectable_effect, 0.2)
        frame = pd.DataFrame({"campaign": "c", "arm": arm, "churned": churned, "mrr": 1.0, "cost": 1.0})
        told += campaign_effect(frame, resamples=200)[0].verdict == "kept customers"
    assert 0.7 <= told / 200 <= 0.9


def scores(n: int = 400, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 6, n)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "snapshot_date": pd.Timestamp("2025-12-01"),
            "churn_probability": p,
            "risk_tier": np.where(p > 0.4, "high", np.where(p > 0.2, "medium", "low")),
            "driver_1": "failed_payments_90d",
            "driver_1_impact": 0.05,
            "driver_2": "seats",
            "driver_2_impact": 0.01,
            "driver_3": None,
            "driver_3_impact": None,
            "mrr": rng.gamma(2, 60, n),
            "revenue_at_risk": 0.0,
            "model_name": "churn_model",
            "model_version": "3",
        }
    )


def test_the_worklist_from_scores_says_why_each_customer_is_on_it():
    policy = TargetingPolicy(contact_cost=20, value_months=12, save_rate=0.3, max_contacts=50)
    worklist = worklist_from_scores(scores(), policy, "winter")
    assert list(worklist.columns) == list(WORKLIST_COLUMNS) and len(worklist) == 50
    first = worklist.iloc[0]
    assert first.expected_benefit == pytest.approx(first.churn_probability * 0.3 * first.mrr * 12 - 20)
    assert first.value_at_risk == pytest.approx(first.mrr * 12)
    assert "failed_payments_90d, seats;" in first.reason and f"{first.churn_probability:.0%}" in first.reason
    held_out = worklist[worklist.arm == "control"]
    assert held_out.reason.str.endswith("held out as a control").all() and (held_out.cost == 0).all()


def test_by_uplift_the_worklist_leaves_out_whom_a_contact_would_drive_away():
    frame = scores(n=400)
    frame["mrr"] = 500.0
    # Half the customers are sleeping dogs (a contact raises their risk), whatever their risk.
    uplift = np.where(np.arange(400) % 2 == 0, 0.08, -0.05)
    policy = TargetingPolicy(contact_cost=20, value_months=12, max_contacts=None)
    worklist = worklist_from_scores(frame, policy, "by-uplift", uplift=uplift, uplift_model="churn_uplift v2")
    assert len(worklist) == 200 and (worklist.uplift > 0).all()
    assert set(worklist.customer_id) == set(frame.customer_id[uplift > 0])
    assert worklist.expected_benefit.iloc[0] == pytest.approx(0.08 * 500 * 12 - 20)
    assert set(worklist.targeted_by) == {"uplift (churn_uplift v2)"}
    assert "a contact lowers the risk by 8.0 points" in worklist.reason.iloc[0]
    by_risk = worklist_from_scores(frame, policy, "by-risk")
    assert set(by_risk.targeted_by) == {"risk"} and by_risk.uplift.isna().all()
    assert (uplift[by_risk.customer_id.to_numpy() - 1] < 0).any()  # by risk, sleeping dogs are contacted too
