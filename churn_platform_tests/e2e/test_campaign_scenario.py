"""`churn-platform demo --scenario campaign`, end to end on a small simulated business: two campaign
cycles through real Dagster runs, dbt and the MLflow registry, by risk then by uplift, each measured
against its controls and put beside the ground truth and the oracle's best targeting."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from churn_platform.apps.cli import main

pytestmark = [pytest.mark.slow]

VERDICTS = {"kept customers", "lost customers", "no effect distinguishable from zero"}


def test_two_campaign_cycles_are_measured_and_compared_with_the_oracle(tmp_path, capsys):
    home = tmp_path / "campaign"
    code = main(["demo", "--scenario", "campaign", "--home", str(home), "--customers", "6000", "--seed", "7"])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    report = json.loads((home / "campaign_report.json").read_text())
    campaigns = {c["campaign"]: c for c in report["campaigns"]}
    assert list(campaigns) == ["cycle-1-risk", "cycle-2-risk", "cycle-2-uplift"]
    first = campaigns["cycle-1-risk"]
    # The learning campaign holds out half; the second ones a quarter (the scenario's defaults).
    assert first["control"] / (first["treated"] + first["control"]) == pytest.approx(0.5, abs=0.06)
    for c in campaigns.values():
        assert c["treated"] > 0 and c["control"] > 0 and c["verdict"] in VERDICTS, c
        assert c["saved_customers_low"] <= c["saved_customers"] <= c["saved_customers_high"], c
        assert c["oracle_saved_mrr"] > 0 and c["cost"] == pytest.approx(c["treated"] * 120.0)
        # Every contact was drawn up from a score made before it: the effects are adjusted by it.
        assert c["adjusted_by"] == "churn_probability_at_contact" and 0 < c["mrr_interval_vs_unadjusted"] <= 1.05, c
    for name in ("cycle-2-risk", "cycle-2-uplift"):
        c = campaigns[name]
        assert c["control"] / (c["treated"] + c["control"]) == pytest.approx(0.25, abs=0.06)
    # The uplift worklist, from the uplift champion, holds nobody it expects a contact to drive away.
    uplift_list = pd.read_parquet(home / "reports" / "worklists" / "cycle-2-uplift.parquet")
    assert uplift_list.targeted_by.str.startswith("uplift").all() and (uplift_list.uplift > 0).all()
    risk_list = pd.read_parquet(home / "reports" / "worklists" / "cycle-2-risk.parquet")
    assert (risk_list.targeted_by == "risk").all()
    u = report["uplift"]
    assert u["model_version"] == "1" and "oracle_qini" in u, u
    # The gate compared the model with ranking cycle 1's contacts by risk; its choice follows the comparison.
    assert "ranking by churn risk's" in u["gate"] and u["risk_qini"] is not None, u
    assert (u["alias"] == "champion") == (u["qini_cycle_1"] > max(u["risk_qini_cycle_1"], 0)), u
    suffix = "" if u["alias"] == "champion" else " @challenger"
    assert set(uplift_list.targeted_by) == {f"uplift (churn_uplift v1{suffix})"}
    for line in (
        "Cycle 2, uplift against risk with the same budget",
        "measured saved MRR: uplift / risk",
        "the oracle's best",
        "adjusted by the churn score before the contact",
        "ranking them by risk",
    ):
        assert line in out
