"""Where a run's wall time goes: `churn-platform run`, split into its parts.

For each size it generates the built-in business's sources (seeded), then runs
`churn-platform run` on them twice in child processes, each on a fresh home:

  unprofiled   the wall time a user sees, process start included;
  profiled     the same run in-process under pyinstrument's sampling profiler, whose samples
               are attributed to the innermost part of the platform they were taken in:

  imports                      Python imports (the platform, Dagster, dbt's adapter, MLflow, ...)
  definitions                  building the Dagster Definitions (the dbt manifest included)
  dbt: start-up and parse      dbt's processes, less their build below (process start,
                               project parse, adapter start-up)
  dbt: build                   running the models (every microbatch) and tests: the elapsed
                               time dbt's run_results.json reports
  Dagster event writes         the instance's event log and run storage
  MLflow                       tracking, artifacts and the registry
  Evidently                    the drift reports
  model fitting                scikit-learn and LightGBM
  steps' own work              the platform's code in the steps (loading, contracts, DuckDB, scoring)
  the rest                     Dagster's orchestration and everything else

It also counts what a run does, from its Dagster instance and dbt's artifacts: dbt invocations
and full project parses, and the events written per type. The floor is the sum of the parts
that are the work itself (dbt's build, the steps' own work, model fitting); the report gives the
unprofiled wall time as a multiple of it. dbt's build includes its own per-model and
per-microbatch overhead, so the floor is an upper bound of the work.

    python benchmarks/overhead.py                            # 2,000 and 100,000 customers
    python benchmarks/overhead.py --sizes 2000 --business consumer_app
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_results import add_runs, code_version

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

PARTS = (
    "imports",
    "definitions",
    "dbt: start-up and parse",
    "dbt: build",
    "Dagster event writes",
    "MLflow",
    "Evidently",
    "model fitting",
    "steps' own work",
    "the rest",
)
WORK_PARTS = ("dbt: build", "model fitting", "steps' own work")
"""The parts that are the run's work itself; their sum is the floor."""

# (part, file paths, functions): a frame's part is the first rule it matches. Below a frame of a
# "sticky" part every frame keeps that part (imports excepted: they count as imports wherever
# they happen); below the others, the innermost matching frame decides.
RULES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("imports", ("<frozen importlib._bootstrap>",), ("_find_and_load",)),
    ("definitions", ("churn_platform/apps/location.py",), ("platform_definitions",)),
    ("dbt", ("dagster_dbt/", "site-packages/dbt/"), ()),
    ("Dagster event writes", ("dagster/_core/storage/",), ()),
    ("MLflow", ("mlflow/",), ()),
    ("Evidently", ("evidently/",), ()),
    ("model fitting", ("sklearn/", "lightgbm/"), ()),
    ("the rest", ("dagster/", "churn_platform/apps/"), ()),
    ("steps' own work", ("churn_platform/",), ()),
)
STICKY = {"imports", "definitions", "dbt", "Dagster event writes", "MLflow", "Evidently", "model fitting"}


def profile_run(out: Path, argv: list[str]) -> None:
    """The child process: ``churn-platform`` with ``argv`` in-process under the profiler; writes the
    seconds per part to ``out``."""
    started = time.perf_counter()
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.002)
    profiler.start()
    from churn_platform.apps import cli

    code = cli.main(argv)
    profiler.stop()
    parts = attribute(profiler.last_session.root_frame(trim_stem=False))
    out.write_text(json.dumps({"code": code, "seconds": time.perf_counter() - started, "parts": parts}))


def part_of(frame, inherited: str) -> str:
    path = (frame.file_path or "").replace("\\", "/")
    for part, paths, functions in RULES:
        if any(p in path for p in paths) and (not functions or frame.function in functions):
            if inherited in STICKY and part != "imports":
                return inherited
            return part
    return inherited


def attribute(root) -> dict[str, float]:
    """Seconds of samples per part: each frame's own time goes to its part (see RULES)."""
    seconds: dict[str, float] = collections.defaultdict(float)
    stack = [(root, "the rest")]
    while stack:
        frame, inherited = stack.pop()
        part = part_of(frame, inherited)
        own = frame.time - sum(child.time for child in frame.children)
        seconds[part] += max(own, 0.0)
        stack.extend((child, part) for child in frame.children)
    return dict(seconds)


def generate(business: str, customers: int, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            PYTHON,
            "-c",
            "import sys; from pathlib import Path; "
            "from churn_platform.simulation.generator import GeneratorConfig, generate_to_dir; "
            "generate_to_dir(GeneratorConfig(customers=int(sys.argv[1]), days=365, seed=7, business=sys.argv[2]), "
            "Path(sys.argv[3]))",
            str(customers),
            business,
            str(target),
        ],
        check=True,
    )
    return time.perf_counter() - started


def run_arguments(sources: Path, home: Path) -> list[str]:
    return ["run", "--sources", str(sources), "--home", str(home), "--log-level", "WARNING"]


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
    }


def unprofiled_run(sources: Path, home: Path) -> float:
    started = time.perf_counter()
    cli = Path(PYTHON).with_name("churn-platform")
    result = subprocess.run(
        [str(cli), *run_arguments(sources, home)], env=environment(), capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit("the unprofiled run failed")
    return seconds


def profiled_run(sources: Path, home: Path, out: Path) -> dict:
    started = time.perf_counter()
    result = subprocess.run(
        [PYTHON, __file__, "--profile-child", str(out), *run_arguments(sources, home)],
        env=environment(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not out.exists() or json.loads(out.read_text())["code"] != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit("the profiled run failed")
    profile = json.loads(out.read_text())
    profile["process_seconds"] = time.perf_counter() - started
    return profile


def dbt_counts(home: Path, run_id: str) -> dict:
    """dbt invocations of the run, their full project parses, and their build seconds (run_results)."""
    artifacts = home / "reports" / "dbt" / run_id
    invocations = sorted(artifacts.rglob("run_results.json"))
    sql = sum(json.loads(p.read_text()).get("elapsed_time", 0.0) for p in invocations)
    parses = 0
    for log in artifacts.rglob("dbt.log*"):
        text = log.read_text(errors="replace")
        parses += sum("Starting full parse" in line for line in text.splitlines())
    return {"invocations": len(invocations), "full_parses": parses, "build_seconds": sql}


def run_record(home: Path) -> dict:
    """From the home's Dagster instance: the run's id, its events per type and its steps' durations."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        run = instance.get_runs(limit=1)[0]
        events: collections.Counter[str] = collections.Counter()
        started: dict[str, float] = {}
        steps: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id):
            if entry.dagster_event is None:
                events["log message"] += 1
                continue
            kind = entry.dagster_event.event_type_value
            events[kind] += 1
            key = entry.step_key
            if kind == "STEP_START":
                started[key] = entry.timestamp
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and key in started:
                steps[key] = entry.timestamp - started[key]
    return {"run_id": run.run_id, "events": dict(events), "steps": steps}


def bench(business: str, customers: int, work: Path) -> dict:
    sys.path.insert(0, str(REPO))
    work.mkdir(parents=True, exist_ok=True)
    sources = work / "sources"
    generation = generate(business, customers, sources)
    wall = unprofiled_run(sources, work / "home-plain")
    profile = profiled_run(sources, work / "home-profiled", work / "profile.json")
    home = work / "home-profiled"
    record = run_record(home)
    dbt = dbt_counts(home, record["run_id"])
    parts = dict.fromkeys(PARTS, 0.0)
    for part, seconds in profile["parts"].items():
        parts[part if part != "dbt" else "dbt: start-up and parse"] += seconds
    # dbt's own processes: their build time from the artifacts, the rest is start-up and parse.
    sql = min(dbt["build_seconds"], parts["dbt: start-up and parse"])
    parts["dbt: build"] = sql
    parts["dbt: start-up and parse"] -= sql
    floor = sum(parts[p] for p in WORK_PARTS)
    return {
        "business": business,
        "customers": customers,
        "generate_seconds": round(generation, 1),
        "run_seconds": round(wall, 1),
        "profiled_seconds": round(profile["process_seconds"], 1),
        "parts": {p: round(s, 2) for p, s in parts.items()},
        "floor_seconds": round(floor, 1),
        "run_over_floor": round(wall / floor, 2) if floor else None,
        "dbt": {k: round(v, 2) if isinstance(v, float) else v for k, v in dbt.items()},
        "events": record["events"],
        "events_written": sum(record["events"].values()),
        "steps": {k: round(v, 2) for k, v in sorted(record["steps"].items(), key=lambda kv: -kv[1])},
    }


def markdown(results: list[dict]) -> str:
    head = ["part"] + [f"{r['business']}, {r['customers']:,} customers" for r in results]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for part in PARTS:
        cells = []
        for r in results:
            total = sum(r["parts"].values()) or 1.0
            cells.append(f"{r['parts'][part]:.1f} s ({r['parts'][part] / total:.0%})")
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    rows = (
        ("**run, as a user sees it**", lambda r: f"**{r['run_seconds']:.1f} s**"),
        ("floor (dbt build + steps' work + fitting)", lambda r: f"{r['floor_seconds']:.1f} s"),
        ("run / floor", lambda r: f"{r['run_over_floor']:.2f}×"),
        ("generation (before the run)", lambda r: f"{r['generate_seconds']:.1f} s"),
        ("dbt invocations, full parses", lambda r: f"{r['dbt']['invocations']}, {r['dbt']['full_parses']}"),
        ("Dagster events written", lambda r: f"{r['events_written']:,}"),
    )
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--profile-child":
        profile_run(Path(sys.argv[2]), sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 100_000])
    parser.add_argument("--business", default="saas_b2b", choices=["saas_b2b", "consumer_app"])
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed afterwards)")
    parser.add_argument(
        "--code",
        help="what the results are recorded as measuring (default: this checkout's commit); the platform "
        "measured is the one this Python runs, so another commit's environment measures that commit",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results" / "overhead.json",
        help="results file; the runs are added to the earlier ones it holds",
    )
    args = parser.parse_args()
    work_root = args.work or Path(tempfile.mkdtemp(prefix="churn-overhead-"))
    code = args.code or code_version()
    results = []
    try:
        for n in sorted(args.sizes):
            print(f"== {args.business}: {n:,} customers", flush=True)
            result = bench(args.business, n, work_root / f"{args.business}-{n}")
            result["code"] = code
            for part, seconds in result["parts"].items():
                print(f"  {part:<26} {seconds:>8.1f} s", flush=True)
            print(f"  run {result['run_seconds']:.1f} s, floor {result['floor_seconds']:.1f} s", flush=True)
            results.append(result)
            if args.work is None:
                shutil.rmtree(work_root / f"{args.business}-{n}", ignore_errors=True)
    finally:
        if args.work is None:
            shutil.rmtree(work_root, ignore_errors=True)
    add_runs(
        args.out,
        results,
        "each row one run of benchmarks/overhead.py; 'code' says which version of the platform was measured",
    )
    print("\n" + markdown(results))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
