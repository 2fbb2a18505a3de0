"""Which customers a canary answers and which requests a shadow scores: by hashes, stable and fair."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from churn_platform.serving.rollout import Rollout, in_canary, in_shadow


def test_a_canary_takes_its_share_of_customers_the_same_ones_every_time():
    ids = [f"c{i}" for i in range(20_000)]
    ten = in_canary(ids, 0.1)
    assert ten.mean() == pytest.approx(0.1, abs=0.01)
    assert (in_canary(ids, 0.1) == ten).all()
    # A larger share keeps the first ones; none and all are none and all.
    twenty = in_canary(ids, 0.2)
    assert twenty[ten].all() and twenty.mean() == pytest.approx(0.2, abs=0.01)
    assert not in_canary(ids, 0.0).any() and in_canary(ids, 1.0).all()
    # A record without an id is the champion's.
    assert not in_canary([None, None], 1.0).any()


def test_a_shadow_scores_its_share_of_requests():
    picked = np.array([in_shadow(f"req-{i}", 0.25) for i in range(20_000)])
    assert picked.mean() == pytest.approx(0.25, abs=0.01)
    assert in_shadow("req-1", 1.0) and not in_shadow("req-1", 0.0)


def test_a_rollout_is_checked():
    assert Rollout(version="3").mode == "shadow"
    for bad in ({"version": "3", "share": 1.5}, {"version": "3", "mode": "blue"}, {"version": ""}):
        with pytest.raises(ValidationError):
            Rollout.model_validate(bad)


def test_the_rollout_scenario_needs_months_its_scores_can_mature_in():
    from churn_platform.apps.rollout import RolloutPlan

    plan = RolloutPlan()
    assert [d.isoformat() for d in plan.month_starts(30)] == ["2025-09-01", "2025-10-01", "2025-11-01", "2025-12-01"]
    # With 60 days to mature, a month is too short to decide a rollout by the next one.
    with pytest.raises(ValueError, match="shorter than the label horizon"):
        plan.month_starts(60)
    # Ending on 1 March 2026: the February scores would not have matured by then.
    with pytest.raises(ValueError, match="2026-02-01 is 28 days"):
        RolloutPlan(days=425).month_starts(30)
    with pytest.raises(ValueError, match="at least 240 days"):
        RolloutPlan(days=300).month_starts(30)
    with pytest.raises(ValueError, match="share in"):
        RolloutPlan(canary_share=0)
    with pytest.raises(ValueError, match="at least 1,000 customers"):
        RolloutPlan(customers=500)
