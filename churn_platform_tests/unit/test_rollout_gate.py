"""The gate's rollout stage: a version that passes is staged beside the champion, then promoted,
rolled back or kept waiting by its live comparison."""

from __future__ import annotations

import pytest

from churn_platform.ml import gate


def passed(champion: str | None = "3") -> gate.GateDecision:
    return gate.decide("4", 0.86, champion, 0.85 if champion else None, floor=0.7, tolerance=0.01)


def test_a_version_that_passes_is_staged_for_a_rollout_with_its_mode_in_the_tags():
    staged = gate.stage(passed(), "canary", 0.2)
    assert staged.promoted and staged.alias == gate.ROLLOUT
    assert "served in canary (20%) beside champion version 3" in staged.reason
    assert staged.tags()["rollout_mode"] == "canary" and staged.tags()["rollout_share"] == "0.2"
    # Without a rollout policy, for a first version, or for a refused one, nothing changes.
    assert gate.stage(passed(), "none", 0.5) == passed()
    assert gate.stage(passed(champion=None), "shadow", 0.5).alias == gate.CHAMPION
    refused = gate.decide("4", 0.60, "3", 0.85, floor=0.7)
    assert gate.stage(refused, "shadow", 0.5).alias == gate.CHALLENGER
    assert "rollout_mode" not in passed().tags()
    with pytest.raises(ValueError, match="shadow or canary"):
        gate.stage(passed(), "blue-green", 0.5)


def test_a_rollout_waits_for_matured_outcomes_then_is_promoted_or_rolled_back():
    wait = gate.rollout_verdict("4", "3", 120, 0.86, 0.85, min_matured=200)
    assert wait.action == "wait" and "120 of 200" in wait.reason
    assert gate.rollout_verdict("4", "3", 500, None, None, min_matured=200).action == "wait"
    promote = gate.rollout_verdict("4", "3", 500, 0.845, 0.85, min_matured=200, tolerance=0.01)
    assert promote.action == "promote" and "not worse by more than 0.01" in promote.reason
    back = gate.rollout_verdict("4", "3", 500, 0.82, 0.85, min_matured=200, tolerance=0.01)
    assert back.action == "roll back" and "worse by more than 0.01" in back.reason
