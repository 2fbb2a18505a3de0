"""Drift per segment and in the model's attributions, on hand-made populations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_platform.business.catalogue import Catalogue, Feature
from churn_platform.monitoring.segments import (
    attribution_drift,
    categorical_distance,
    numeric_distance,
    risk_tiers,
    segment_drift,
)

CATALOGUE = Catalogue(
    (
        Feature("region", "categorical", "Where.", "accounts", "attribute"),
        Feature("plan", "categorical", "Plan.", "subscriptions", "plan"),
        Feature("sessions", "numeric", "Use.", "events", "measure_sum"),
        Feature("seats", "numeric", "Size.", "subscriptions", "quantity"),
    )
)


def population(n: int, seed: int, eu_sessions: float = 10.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(["eu", "us", "apac"], size=n, p=[0.1, 0.6, 0.3])
    return pd.DataFrame(
        {
            "region": region,
            "plan": rng.choice(["basic", "pro"], size=n),
            "sessions": np.where(region == "eu", rng.normal(eu_sessions, 2, n), rng.normal(10, 2, n)),
            "seats": rng.poisson(5, n).astype(float),
        }
    )


def test_the_distances_are_zero_for_the_same_sample_and_grow_with_the_shift():
    rng = np.random.default_rng(0)
    a = pd.Series(rng.normal(0, 1, 5_000))
    assert numeric_distance(a, a) == 0
    assert numeric_distance(a, a + 0.05) == pytest.approx(0.05, abs=0.01)
    assert numeric_distance(a, a + 0.5) > 0.4
    assert numeric_distance(pd.Series([1.0, 1.0]), pd.Series([1.0])) == 0
    cats = pd.Series(["a"] * 50 + ["b"] * 50)
    assert categorical_distance(cats, cats) == 0
    assert categorical_distance(cats, pd.Series(["a"] * 90 + ["b"] * 10)) > 0.1
    assert numeric_distance(pd.Series([], dtype=float), a) is None


def test_a_segment_that_moved_is_found_though_the_whole_barely_did():
    reference, current = population(20_000, 1), population(20_000, 2, eu_sessions=5.0)
    segments = {"region": (reference["region"], current["region"])}
    results = {r.value: r for r in segment_drift(reference, current, CATALOGUE, segments)}
    assert set(results) == {"eu", "us", "apac"}
    assert results["eu"].drifted == ["sessions"] and results["eu"].drift_share == pytest.approx(1 / 3)
    assert results["us"].drift_share == 0 and results["apac"].drift_share == 0
    # The whole population's sessions moved by far less.
    assert numeric_distance(reference["sessions"], current["sessions"]) < 0.3
    # A value too rare on either side is not a segment.
    few = segment_drift(reference, current, CATALOGUE, segments, min_rows=3_000)
    assert {r.value for r in few} == {"us", "apac"}


def test_risk_tiers_follow_the_cutoffs():
    assert risk_tiers(np.array([0.9, 0.5, 0.1]), (0.8, 0.3)).tolist() == ["high", "medium", "low"]


def test_attribution_drift_is_the_distance_between_attribution_shares():
    rng = np.random.default_rng(3)
    before = rng.normal(0, 1, (1_000, 3)) * np.array([3.0, 1.0, 1.0])
    same = rng.normal(0, 1, (1_000, 3)) * np.array([3.0, 1.0, 1.0])
    moved = rng.normal(0, 1, (1_000, 3)) * np.array([1.0, 1.0, 3.0])
    names = ["sessions", "seats", "tenure"]
    assert attribution_drift(before, same, names).distance < 0.03
    drift = attribution_drift(before, moved, names)
    assert drift.distance == pytest.approx(0.4, abs=0.03)
    (first, *_) = drift.changes(2)
    assert first[0] in {"sessions", "tenure"} and sum(drift.current_shares.values()) == pytest.approx(1)


def test_a_small_segment_drifts_when_its_test_and_its_distance_agree():
    # 300 rows a side of the same population: distances of noise, but no test below 0.05 for most.
    reference, current = population(3_000, 4), population(3_000, 5)
    segments = {"region": (reference["region"], current["region"])}
    eu = next(r for r in segment_drift(reference, current, CATALOGUE, segments) if r.value == "eu")
    assert eu.reference_rows <= 1_000 and eu.drift_share < 0.5
    moved = population(3_000, 5, eu_sessions=6.0)
    eu = next(
        r
        for r in segment_drift(reference, moved, CATALOGUE, {"region": (reference["region"], moved["region"])})
        if r.value == "eu"
    )
    assert "sessions" in eu.drifted


def test_a_small_real_shift_below_the_distance_threshold_is_not_drift():
    """900 rows whose usage is 1% up: the test finds it real, but the distance is below 0.1, as it is
    for the same month's shift of the whole population; not a drifted segment."""
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"region": "eu", "plan": "basic", "sessions": rng.normal(10, 2, 8_000), "seats": 5.0})
    current = pd.DataFrame({"region": "eu", "plan": "basic", "sessions": rng.normal(10.12, 2, 900), "seats": 5.0})
    from scipy.stats import ks_2samp

    assert ks_2samp(reference["sessions"], current["sessions"]).pvalue < 0.05
    assert numeric_distance(reference["sessions"], current["sessions"]) < 0.1
    (eu,) = segment_drift(reference, current, CATALOGUE, {"region": (reference["region"], current["region"])})
    assert eu.drifted == [] and eu.drift_share == 0
