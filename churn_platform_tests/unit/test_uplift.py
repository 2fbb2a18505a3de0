"""The uplift model: a T-learner finds who a contact keeps and whom it drives away, and the Qini
coefficient tells a good ranking from a random one, against the true uplift's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_platform.business.catalogue import Catalogue, Feature
from churn_platform.ml.uplift import fit_t_learner, qini_coefficient, qini_curve, uplift_at, uplift_gate

CATALOGUE = Catalogue(
    (
        Feature("usage", "numeric", "Usage.", "events", "measure_sum", minimum=None),
        Feature("price", "numeric", "Price.", "accounts", "attribute", minimum=None),
        Feature("contract", "categorical", "Contract.", "accounts", "attribute", categories=("monthly", "annual")),
    )
)


def campaign(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Contacts with a random half held out; monthly customers with a high price are kept by a contact,
    annual ones who barely use the product leave because of it. Returns the rows and the true uplift."""
    rng = np.random.default_rng(seed)
    usage, price = rng.normal(0, 1, n), rng.normal(0, 1, n)
    contract = np.where(rng.random(n) < 0.6, "monthly", "annual")
    base = 1 / (1 + np.exp(-(-1.6 - 0.8 * usage + 0.5 * price)))
    ratio = np.where(
        (contract == "monthly") & (price > 0), 0.35, np.where((contract == "annual") & (usage < -0.5), 1.9, 0.9)
    )
    treated_p = np.minimum(base * ratio, 0.99)
    arm = np.where(rng.random(n) < 0.5, "control", "treated")
    churned = rng.random(n) < np.where(arm == "treated", treated_p, base)
    frame = pd.DataFrame({"usage": usage, "price": price, "contract": contract, "arm": arm, "churned": churned})
    return frame, base - treated_p


def test_a_t_learner_ranks_customers_by_their_uplift_close_to_the_oracle():
    train, _ = campaign(8_000, seed=1)
    test, true_uplift = campaign(8_000, seed=2)
    learner = fit_t_learner(train, CATALOGUE, candidate="lightgbm")
    estimate = learner.uplift(test)
    treated, churned = (test.arm == "treated").to_numpy(), test.churned.to_numpy()
    model, oracle = qini_coefficient(estimate, treated, churned), qini_coefficient(true_uplift, treated, churned)
    shuffled = qini_coefficient(np.random.default_rng(3).permutation(estimate), treated, churned)
    assert oracle > 0 and model / oracle > 0.7, (model, oracle)
    assert abs(shuffled) < 0.3 * oracle
    assert np.corrcoef(estimate, true_uplift)[0, 1] > 0.6
    # The top tenth by estimate is kept by a contact; the bottom tenth is driven away.
    assert uplift_at(estimate, treated, churned, 0.1) > 0.1
    assert uplift_at(-estimate, treated, churned, 0.1) < 0


def test_the_qini_curve_of_a_known_ranking():
    # Four treated (two kept), four controls (all churned), interleaved: the right order keeps two first.
    uplift = np.array([0.9, 0.85, 0.8, 0.75, 0.1, 0.05, 0.0, -0.1])
    treated = np.array([True, False, True, False, True, False, True, False])
    churned = np.array([False, True, False, True, True, True, True, True])
    x, curve = qini_curve(uplift, treated, churned)
    assert x[-1] == 1 and curve[0] == 0 and curve[-1] == pytest.approx(2 / 8)
    assert qini_coefficient(uplift, treated, churned) > 0
    assert qini_coefficient(-uplift, treated, churned) < 0


def test_an_arm_too_small_or_without_churners_is_refused():
    frame, _ = campaign(400, seed=4)
    with pytest.raises(ValueError, match="control arm has"):
        fit_t_learner(frame[frame.arm == "treated"].assign(arm="treated"), CATALOGUE)
    with pytest.raises(ValueError, match="candidate must be one of"):
        fit_t_learner(frame, CATALOGUE, candidate="svm")


def test_the_risk_scaled_learner_follows_risk_on_a_small_campaign_and_learns_who_differs_on_a_large_one():
    """Over a churn model fitted on the controls' kind of data, the contact's log-odds shift: on a
    small campaign the penalty keeps the ranking close to risk × the average effect (a positive
    correlation with the true uplift, sleeping dogs not found); on a large one the features move it,
    and its Qini comes close to the oracle's."""
    from churn_platform.ml.training import CANDIDATES, features_frame
    from churn_platform.ml.uplift import RiskScaledUplift, fit_risk_scaled

    history, _ = campaign(20_000, seed=5)
    untreated = history[history.arm == "control"]
    churn_model = CANDIDATES["logistic_regression"](7, CATALOGUE.numeric, CATALOGUE.categorical)
    churn_model.fit(features_frame(untreated, CATALOGUE), untreated.churned.astype(int))
    test, true_uplift = campaign(8_000, seed=6)
    treated, churned = (test.arm == "treated").to_numpy(), test.churned.to_numpy()
    oracle = qini_coefficient(true_uplift, treated, churned)

    small, _ = campaign(600, seed=7)
    learner = fit_risk_scaled(small, CATALOGUE, churn_model)
    assert isinstance(learner, RiskScaledUplift) and learner.intercept < 0  # contacts keep customers on average
    estimate = learner.predict(test)
    assert np.corrcoef(estimate, true_uplift)[0, 1] > 0.2

    large, _ = campaign(12_000, seed=8)
    learner = fit_risk_scaled(large, CATALOGUE, churn_model)
    estimate = learner.uplift(test)
    assert qini_coefficient(estimate, treated, churned) / oracle > 0.7
    assert np.corrcoef(estimate, true_uplift)[0, 1] > 0.6
    assert uplift_at(-estimate, treated, churned, 0.1) < 0  # those it ranks last are driven away
    with pytest.raises(ValueError, match="control arm has"):
        fit_risk_scaled(small[small.arm == "treated"], CATALOGUE, churn_model)


def test_an_uplift_model_is_promoted_only_above_zero_risk_and_the_champion():
    promote, reason = uplift_gate(0.012, risk_qini=0.010, champion_qini=None)
    assert promote and "above ranking by churn risk's 0.01000" in reason and "first uplift model" in reason
    # No better than ranking by risk: the worklist keeps targeting by risk.
    promote, reason = uplift_gate(0.0031, risk_qini=0.0046, champion_qini=None)
    assert not promote and "not above ranking by churn risk's 0.00460" in reason
    promote, reason = uplift_gate(0.012, risk_qini=0.010, champion_qini=0.013, champion_version="2")
    assert not promote and "is below the champion's (v2) 0.01300" in reason
    assert not uplift_gate(-0.001, risk_qini=None, champion_qini=None)[0]
    # Without a churn champion to compare with, risk is not required.
    promote, reason = uplift_gate(0.002, risk_qini=None, champion_qini=0.002, champion_version="1")
    assert promote and "churn risk" not in reason
