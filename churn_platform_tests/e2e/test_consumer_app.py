"""The second built-in business end to end, as a user runs it: `churn-platform demo --business
consumer_app` generates the app's exports in their own names (text ids, an event log, subscriptions,
payments without statuses, no tickets), runs the platform from its declaration and serves a
prediction for a text customer id."""

from __future__ import annotations

import json
import re

import duckdb
import pandas as pd
import pytest

from churn_platform_tests.business import CONSUMER, CONSUMER_NAME
from churn_platform_tests.conftest import free_port, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("consumer") / "home"
    result = run_cli(
        "demo",
        "--business",
        "consumer_app",
        "--customers",
        "900",
        "--home",
        str(home),
        "--port",
        str(free_port()),
        "--fault-rate",
        "0.01",
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return home, result.stdout, json.loads((home / "run_report.json").read_text())


def test_the_demo_runs_the_app_to_a_served_prediction_for_a_text_id(demo):
    _, stdout, report = demo
    assert report["status"] == "SUCCESS" and report["business_name"] == "consumer_app"
    # No tickets; the offers sent, empty before a first campaign.
    assert set(report["sources"]) == {"accounts", "events", "subscriptions", "invoices", "actions"}
    assert report["sources"]["actions"] == 0
    live = re.search(r"live prediction \(customer (usr_[0-9a-f]{8})\): (\{.*\})", stdout)
    assert live, stdout[-3000:]
    prediction = json.loads(live.group(2))
    assert prediction["customer_id"] == live.group(1) and 0 < prediction["churn_probability"] < 1
    assert prediction["drivers"] and all(d["feature"] for d in prediction["drivers"])


def test_the_quarantine_holds_exactly_the_injected_faults(demo):
    home, _, report = demo
    faults = pd.read_parquet(home / "sources" / "_ground_truth" / "faults.parquet")
    for role in CONSUMER.present:
        c = report["contracts"][role]
        assert c["received"] == c["accepted"] + c["quarantined"]
        injected = int((faults.source == CONSUMER_NAME[role]).sum())
        # The offers sent are empty before a first campaign: nothing to break.
        assert c["quarantined"] == injected and (injected > 0 or (role == "actions" and c["received"] == 0)), role


def test_its_features_come_from_the_event_log_and_the_model_nears_the_oracle(demo):
    home, _, report = demo
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        catalogue = con.execute("select name, source_role from marts.feature_catalogue").df()
        ids = con.execute("select customer_id from marts.scoring_features limit 5").df()
    names = set(catalogue["name"])
    assert {"skip_events_30d", "cancel_flow_view_events_7d", "play_value_30d", "users_30d", "mrr"} <= names
    assert not any(n.startswith(("tickets_", "failed_payments", "late_payments")) for n in names)
    assert ids["customer_id"].str.startswith("usr_").all()
    assert report["model"]["model_over_oracle"] > 0.85, report["model"]
