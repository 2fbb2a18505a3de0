"""The campaign scenario's calendar and its checks of a plan; its figures against the oracle's."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from churn_platform.apps.campaign import CampaignPlan, _oracle
from churn_platform.decisions.targeting import TargetingPolicy


def test_the_campaigns_fall_on_month_starts_two_months_apart_before_the_window_ends():
    plan = CampaignPlan(days=365)
    assert plan.month_starts() == (dt.date(2025, 8, 1), dt.date(2025, 10, 1), dt.date(2025, 12, 1))
    # The generator lands the business as known on the eve of a campaign: its last day is the 31st.
    assert plan.until_day(dt.date(2025, 8, 1)) == 212
    assert plan.start + dt.timedelta(days=plan.until_day(dt.date(2025, 8, 1)) - 1) == dt.date(2025, 7, 31)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"days": 200}, "at least 240 days"),
        ({"contacts": 50}, "at least 100 contacts"),
        ({"control_share": 0.8}, "control_share must lie"),
    ],
)
def test_a_plan_that_cannot_be_measured_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        CampaignPlan(**change)


def test_the_oracle_contacts_the_best_true_benefit_while_it_pays():
    truth = pd.DataFrame(
        {"uplift_30d": [0.2, 0.1, -0.1, 0.05, 0.01], "mrr": [100.0, 100.0, 500.0, 1_000.0, 10.0]},
        index=["a", "b", "c", "d", "e"],
    )
    # Benefit with 12 months and a cost of 100: a 140, b 20, c −700, d 500, e −98.8.
    customers, mrr = _oracle(truth, 2, TargetingPolicy(contact_cost=100.0, value_months=12.0))
    assert customers == pytest.approx(0.25) and mrr == pytest.approx(70.0)  # d and a
    customers, mrr = _oracle(truth, 5, TargetingPolicy(contact_cost=100.0, value_months=12.0))
    assert customers == pytest.approx(0.35)  # d, a, b: the rest would lose money
