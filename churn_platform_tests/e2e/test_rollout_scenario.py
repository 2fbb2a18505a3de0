"""`churn-platform demo --scenario rollout`, end to end: a retrained version staged by the gate in
shadow, widened to a canary, promoted on its live comparison once its outcomes matured; then a broken
version put in canary by hand and rolled back, through real Dagster runs, dbt, the MLflow registry and
Ray Serve over HTTP, under a load generator that must see no failed request. Then `churn-platform
rollout`, the operator's command, on the same registry."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from churn_platform.apps.cli import main
from churn_platform.apps.serve_local import free_ports
from churn_platform.serving.prediction_log import read_prediction_log
from churn_platform.settings import REGISTERED_MODEL_NAME, Settings

pytestmark = [pytest.mark.slow]

STABLE_PHASES = ["champion", "shadow", "canary", "promoted", "bad canary", "rolled back"]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    home = tmp_path_factory.mktemp("rollout") / "home"
    (port,) = free_ports(1)
    code = main(["demo", "--scenario", "rollout", "--home", str(home), "--port", str(port)])
    report = json.loads((home / "rollout_report.json").read_text()) if (home / "rollout_report.json").exists() else {}
    return code, home, report


def _arms(step: dict) -> set[str]:
    return set(step["answers"])


def test_a_good_version_is_promoted_and_a_broken_one_rolled_back_with_no_failed_request(scenario, capsys):
    code, home, report = scenario
    assert code == 0, report
    assert report["failed_requests"] == 0 and report["requests"] > 500, report["failures"]
    steps = {s["phase"]: s for s in report["steps"]}
    assert list(steps) == STABLE_PHASES
    # Within a phase where nothing changes, each customer is always answered by the same version and arm.
    assert all(s["switched"] == 0 for s in steps.values()), {p: s["switched"] for p, s in steps.items()}
    v1, v2, v3 = steps["champion"]["version"], steps["shadow"]["version"], steps["bad canary"]["version"]
    assert len({v1, v2, v3}) == 3
    # Shadow is never returned; a canary answers its share of the customers.
    assert _arms(steps["champion"]) == _arms(steps["shadow"]) == {f"v{v1} champion"}
    assert _arms(steps["canary"]) == {f"v{v1} champion", f"v{v2} canary"}
    canary = steps["canary"]["answers"]
    assert canary[f"v{v2} canary"] / sum(canary.values()) == pytest.approx(0.3, abs=0.05)
    assert _arms(steps["promoted"]) == _arms(steps["rolled back"]) == {f"v{v2} champion"}
    assert _arms(steps["bad canary"]) == {f"v{v2} champion", f"v{v3} canary"}
    # The decisions, in the registry.
    client = MlflowClient(tracking_uri=Settings(home=home).mlflow_tracking_uri)
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL_NAME, "champion").version) == v2
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL_NAME, "challenger").version) == v3
    assert not any(
        "rollout" in (mv.aliases or []) for mv in client.search_model_versions(f"name='{REGISTERED_MODEL_NAME}'")
    )
    assert client.get_model_version(REGISTERED_MODEL_NAME, v2).tags["rollout_decision"] == "promoted"
    assert client.get_model_version(REGISTERED_MODEL_NAME, v3).tags["rollout_decision"] == "rolled back"
    # ... made on the online comparisons of the same customers.
    compared = {(c["challenger_version"], c["mode"]): c for c in report["comparisons"]}
    assert {(v2, "shadow"), (v2, "canary"), (v3, "canary")} <= set(compared)
    good, bad = compared[v2, "canary"], compared[v3, "canary"]
    assert good["roc_auc_challenger"] >= good["roc_auc_champion"] - 0.01 and good["rank_correlation"] > 0.9
    assert bad["roc_auc_challenger"] < bad["roc_auc_champion"] - 0.01 and bad["labelled_pairs"] >= 200
    # The log holds the shadow's scores, never served, and the canaries' answers.
    log = read_prediction_log(home / "prediction_log")
    shadow = log[log["arm"] == "shadow"]
    assert len(shadow) and (shadow["model_version"] == v2).all() and not shadow["served"].any()
    assert set(log.loc[log["arm"] == "canary", "model_version"]) == {v2, v3}


def test_the_operator_stages_changes_and_ends_a_rollout_and_bad_requests_are_refused(scenario, capsys):
    code, home, report = scenario
    assert code == 0
    capsys.readouterr()
    v2 = next(s["version"] for s in report["steps"] if s["phase"] == "promoted")
    v1 = next(s["version"] for s in report["steps"] if s["phase"] == "champion")
    base = ["rollout", "--home", str(home)]
    assert main(base) == 0
    assert capsys.readouterr().out.strip().endswith(f"version {v2}; @rollout: none")
    assert main([*base, "--version", v1, "--mode", "canary", "--share", "0.2"]) == 0
    assert f"@rollout: version {v1} in canary (0.2)" in capsys.readouterr().out
    assert main([*base, "--share", "0.4"]) == 0
    assert f"@rollout: version {v1} in canary (0.4)" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=Settings(home=home).mlflow_tracking_uri)
    assert client.get_model_version(REGISTERED_MODEL_NAME, v1).tags["rollout_staged_by"] == "operator"
    # Refused, each saying why: the champion, an unknown version, a share out of range, --end with a version.
    assert main([*base, "--version", v2]) == 2
    assert "is the champion" in capsys.readouterr().err
    assert main([*base, "--version", "999"]) == 2
    assert "999" in capsys.readouterr().err
    assert main([*base, "--share", "1.5"]) == 2
    assert "share in (0, 1]" in capsys.readouterr().err
    assert main([*base, "--end", "promote", "--version", v1]) == 2
    capsys.readouterr()
    assert main([*base, "--end", "roll-back"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"version {v2}; @rollout: none")
    assert client.get_model_version(REGISTERED_MODEL_NAME, v1).tags["rollout_decision"] == "rolled back"
    assert main([*base, "--end", "promote"]) == 2
    assert "no @rollout version" in capsys.readouterr().err
