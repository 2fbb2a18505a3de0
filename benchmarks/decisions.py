"""The retention decisions against their targets: the campaign scenario's figures and the survival model's.

For each seed it runs `churn-platform demo --scenario campaign` (two campaign cycles on the
simulated B2B business, through real Dagster runs, dbt and MLflow) in a child process on a fresh
home, then reads what the issue's targets name:

  Qini / oracle        the uplift model that chose cycle 2's contacts, judged on them once they
                       matured, against the true uplift's Qini on the same contacts   (target ≥ 0.7)
  uplift / risk        saved MRR of cycle 2 by uplift over cycle 2 by risk with the same budget,
                       measured against the controls, and truly (the ground truth)     (target ≥ 1.3)
  uplift / oracle      the same over the oracle's best targeting with as many contacts (target ≥ 0.7)
  survival             the churn_survival model of the last cycle: concordance less the true
                       probabilities' (target ≤ 0.03) and the calibration error at 30, 60 and
                       90 days (target ≤ 0.02)

The baseline measured in the same run is targeting by risk: every uplift figure is a ratio over
it, or over the oracle's best. Results are added to benchmarks/results/decisions.json.

    python benchmarks/decisions.py                         # 20,000 customers, seed 7
    python benchmarks/decisions.py --customers 50000 --seeds 7 11
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_results import add_runs, code_version

from churn_platform.policy import SURVIVAL_CALIBRATION_TOLERANCE

REPO = Path(__file__).resolve().parents[1]


def survival_metrics(home: Path) -> dict[str, float]:
    """The latest churn_survival run's holdout metrics, from the home's MLflow store."""
    with sqlite3.connect(home / "mlflow" / "mlflow.db") as con:
        run = con.execute(
            "select run_uuid from runs where name like 'survival-%' order by start_time desc limit 1"
        ).fetchone()
        if run is None:
            return {}
        rows = con.execute("select key, value from latest_metrics where run_uuid = ?", run).fetchall()
    return dict(rows)


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def run_one(customers: int, seed: int, contacts: int | None) -> dict:
    home = Path(tempfile.mkdtemp(prefix="decisions-bench-")) / "home"
    command = [
        str(REPO / ".venv" / "bin" / "churn-platform"),
        "demo",
        "--scenario",
        "campaign",
        "--home",
        str(home),
        "--customers",
        str(customers),
        "--seed",
        str(seed),
        *(["--contacts", str(contacts)] if contacts else []),
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        return {"customers": customers, "seed": seed, "failed": tail, "seconds": round(seconds, 1)}
    report = json.loads((home / "campaign_report.json").read_text())
    by = {c["campaign"]: c for c in report["campaigns"]}
    risk, uplift = by["cycle-2-risk"], by["cycle-2-uplift"]
    surv = survival_metrics(home)
    return {
        "customers": customers,
        "seed": seed,
        "seconds": round(seconds, 1),
        "contacts_budget": report["plan"]["contacts"],
        "campaigns": report["campaigns"],
        "uplift_model": report["uplift"],
        "qini_over_oracle": report["uplift"].get("qini_over_oracle"),
        "risk_qini_over_oracle": ratio(report["uplift"].get("risk_qini"), report["uplift"].get("oracle_qini")),
        "uplift_alias": report["uplift"].get("alias"),
        "measured_uplift_over_risk": ratio(uplift["saved_mrr"], risk["saved_mrr"]),
        "measured_uplift_over_oracle": ratio(uplift["saved_mrr"], uplift["oracle_saved_mrr"]),
        "true_uplift_over_risk": ratio(uplift["true_saved_mrr"], risk["true_saved_mrr"]),
        "true_uplift_over_oracle": ratio(uplift["true_saved_mrr"], uplift["oracle_saved_mrr"]),
        "true_risk_over_oracle": ratio(risk["true_saved_mrr"], risk["oracle_saved_mrr"]),
        "survival": {
            k: surv.get(k)
            for k in (
                "concordance",
                "oracle_concordance",
                "concordance_gap_to_oracle",
                "calibration_error_30d",
                "calibration_error_60d",
                "calibration_error_90d",
                "oracle_calibration_error_30d",
                "oracle_calibration_error_60d",
                "oracle_calibration_error_90d",
            )
        },
    }


def show(value, fmt=".2f") -> str:
    return "n/a" if value is None else f"{value:{fmt}}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument("--contacts", type=int, default=None, help="budget per campaign (default: the scenario's)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "decisions.json"))
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        print(f"campaign scenario: {args.customers:,} customers, seed {seed} ...", flush=True)
        r = run_one(args.customers, seed, args.contacts)
        results.append({**r, "code": code_version()})
        if "failed" in r:
            print(f"  failed after {r['seconds']}s:\n{r['failed']}")
            continue
        s = r["survival"]
        print(
            f"  {r['seconds']:.0f}s; the uplift model that chose cycle 2 was @{r['uplift_alias']}: "
            f"{r['uplift_model'].get('gate')}\n"
            f"  {'target':<44}{'measured':>10}{'target':>10}\n"
            f"  {'uplift Qini / oracle (cycle 2 contacts)':<44}{show(r['qini_over_oracle']):>10}{'≥ 0.70':>10}\n"
            f"  {'risk Qini / oracle (the same contacts)':<44}{show(r['risk_qini_over_oracle']):>10}{'':>10}\n"
            f"  {'saved MRR, uplift / risk (against controls)':<44}{show(r['measured_uplift_over_risk']):>10}{'≥ 1.30':>10}\n"
            f"  {'saved MRR, uplift / risk (ground truth)':<44}{show(r['true_uplift_over_risk']):>10}{'≥ 1.30':>10}\n"
            f"  {'saved MRR, uplift / oracle (against controls)':<44}{show(r['measured_uplift_over_oracle']):>10}{'≥ 0.70':>10}\n"
            f"  {'saved MRR, uplift / oracle (ground truth)':<44}{show(r['true_uplift_over_oracle']):>10}{'≥ 0.70':>10}\n"
            f"  {'saved MRR, risk / oracle (ground truth)':<44}{show(r['true_risk_over_oracle']):>10}{'':>10}\n"
            f"  {'survival concordance gap to the oracle':<44}{show(s.get('concordance_gap_to_oracle'), '.3f'):>10}{'≤ 0.030':>10}\n"
            + "".join(
                f"  {f'survival calibration error {d}d':<44}{show(s.get(f'calibration_error_{d}d'), '.3f'):>10}{f'≤ {SURVIVAL_CALIBRATION_TOLERANCE:.3f}':>10}\n"
                for d in (30, 60, 90)
            ),
            flush=True,
        )
    add_runs(
        Path(args.out),
        results,
        "Retention decisions against the targets of their issue: the campaign scenario (two cycles, by risk "
        "then by uplift, each measured against its controls and beside the ground truth) and the survival "
        "model of its last cycle.",
    )
    print(f"results added to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
