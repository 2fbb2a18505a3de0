"""Training benchmark: wall time and peak memory of training on the training set of N customers.

For each size it builds the training set as the platform does (generate, load with the
data contracts, dbt up to training_set), then trains in a fresh process what the
`churn_model` asset trains: the three candidates, selection and calibration (and, from the
generator's ground truth, the oracle ROC-AUC on the same holdout rows). The report
gives each candidate's fit time and its ratio to the logistic regression's, measured in
the same process (the baseline), and the training process's own peak memory.

    python benchmarks/training.py                      # 100k customers
    python benchmarks/training.py --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_layer import DBT, GENERATE_SNIPPET, LOAD_SNIPPET, PYTHON, REPO, business_vars, dbt_environment, run_stage

TRAIN_SNIPPET = """
import json, sys, time
import duckdb
from churn_platform.business.catalogue import LABEL_COLUMN, build_catalogue
from churn_platform.business.declaration import load_declaration
from churn_platform.ml import training
from churn_platform.simulation.businesses import declaration_path
CATALOGUE = build_catalogue(load_declaration(declaration_path("saas_b2b")))
started = time.perf_counter()
with duckdb.connect(sys.argv[1], read_only=True) as con:
    df = con.execute("select * from marts.training_set").df()
read = time.perf_counter() - started
split = training.time_split(df, CATALOGUE)
x_train, y_train = training.features_frame(split.train, CATALOGUE), split.train[LABEL_COLUMN].astype(int)
x_val, y_val = training.features_frame(split.validation, CATALOGUE), split.validation[LABEL_COLUMN].astype(int)
x_test, y_test = training.features_frame(split.test, CATALOGUE), split.test[LABEL_COLUMN].astype(int)
fits, results = {}, []
for name, build in training.CANDIDATES.items():
    t = time.perf_counter()
    pipe = build(7, CATALOGUE.numeric, CATALOGUE.categorical, CATALOGUE.monotone)
    training._fit(name, pipe, x_train, y_train, x_val, y_val, len(CATALOGUE.categorical))
    fits[name] = time.perf_counter() - t
    results.append(training.CandidateResult(name, pipe, {}, training.evaluate(y_val, pipe.predict_proba(x_val)[:, 1]),
                                            training.evaluate(y_test, pipe.predict_proba(x_test)[:, 1])))
t = time.perf_counter()
best = training.select_best(results)
selected = training.calibrate_best(split, best, CATALOGUE)
calibrate = time.perf_counter() - t
from pathlib import Path
from churn_platform.simulation.oracle import load_truth, oracle_metrics
oracle = oracle_metrics(load_truth(Path(sys.argv[3]) / "_ground_truth"), split.test, selected.model.predict_proba(x_test)[:, 1])
candidates = {r.name: {"validation_roc_auc": r.validation_metrics["roc_auc"], "test_roc_auc": r.test_metrics["roc_auc"],
                       "test_over_oracle": r.test_metrics["roc_auc"] / oracle["oracle_roc_auc"] if oracle else None} for r in results}
open(sys.argv[2], "w").write(json.dumps({"rows": len(df), "train_rows": len(split.train), "read_seconds": read, "fit_seconds": fits,
                  "calibrate_seconds": calibrate, "selected": best.name, "candidates": candidates,
                  "test_roc_auc": selected.test_metrics["roc_auc"], **oracle}))
"""


def bench(customers: int, work: Path, memory_limit: str) -> dict:
    src, wh, target = work / "sources", work / "warehouse.duckdb", work / "dbt_target"
    env = dbt_environment(wh, target, memory_limit)
    work.mkdir(parents=True, exist_ok=True)
    run_stage("generate", [PYTHON, "-c", GENERATE_SNIPPET, str(customers), str(src)])
    run_stage("load_sources", [PYTHON, "-c", LOAD_SNIPPET, str(src), str(wh), memory_limit])
    run_stage(
        "dbt_training_set",
        [DBT, "run", "--select", "+training_set", "--target-path", str(target), "--quiet", *business_vars()],
        env=env,
        cwd=REPO / "dbt_project",
    )
    out = work / "train.json"
    stage = run_stage("train", [PYTHON, "-c", TRAIN_SNIPPET, str(wh), str(out), str(src)])
    measured = json.loads(out.read_text())
    baseline = measured["fit_seconds"]["logistic_regression"]
    measured["fit_over_logistic_regression"] = {k: round(v / baseline, 2) for k, v in measured["fit_seconds"].items()}
    result = {
        "customers": customers,
        "train_wall_seconds": stage["seconds"],
        "train_peak_rss_mib": stage["peak_rss_mib"],
        **measured,
    }
    print(
        f"  {measured['rows']:,} training-set rows ({measured['train_rows']:,} train): "
        + ", ".join(
            f"{k} {v:.1f} s ({measured['fit_over_logistic_regression'][k]:.1f}x)"
            for k, v in measured["fit_seconds"].items()
        )
        + f"; calibration {measured['calibrate_seconds']:.1f} s; whole training process {stage['seconds']:.1f} s, "
        f"peak {stage['peak_rss_mib'] / 1024:.1f} GiB; selected {measured['selected']}, test ROC-AUC {measured['test_roc_auc']:.3f}"
        + (
            f", oracle {measured['oracle_roc_auc']:.3f}, model / oracle {measured['model_over_oracle']:.3f}"
            if "oracle_roc_auc" in measured
            else ""
        ),
        flush=True,
    )
    for name, m in measured["candidates"].items():
        ratio = f", / oracle {m['test_over_oracle']:.3f}" if m["test_over_oracle"] else ""
        print(
            f"    {name:<20} validation ROC-AUC {m['validation_roc_auc']:.4f}, test ROC-AUC {m['test_roc_auc']:.4f}{ratio}",
            flush=True,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--memory-limit", default=os.environ.get("CHURN_PLATFORM_DUCKDB_MEMORY_LIMIT", "8GB"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "training.json")
    args = parser.parse_args()
    work_root = Path(tempfile.mkdtemp(prefix="churn-train-bench-"))
    results = []
    try:
        for n in sorted(args.sizes):
            print(f"== training set of {n:,} customers x 365 days", flush=True)
            results.append(bench(n, work_root / f"n{n}", args.memory_limit))
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
