"""Retention decisions as plain functions: the worklist within its budget with a hashed control
arm, and a campaign's effect against its controls with bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_platform.decisions.effect import campaign_effect
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
