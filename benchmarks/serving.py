"""Serving benchmark: the same champion behind Ray Serve and behind a plain FastAPI/uvicorn app, in one run.

Measures, with wrk over HTTP on this machine:
- single-row requests per second, p50 and p99, at 16 concurrent connections;
- rows per second with 1,000 rows a request (4 connections);
- for Ray Serve, single-row requests with ``explain=true`` (each prediction's top three drivers);
for Ray Serve (the platform's deployment: HAProxy ingress, dynamic batching, prediction log
on) and for the baseline (`benchmarks/baseline_server.py`: one uvicorn process, the same
validation and scorer, nothing else), and in the same process the scorer's own rows per
second on 1,000-row calls, which bounds what HTTP can reach, and the cost of an explanation per
request through the compiled scorer (the model's own contributions, or occlusion) against the
sklearn pipeline's occlusion.

    python benchmarks/serving.py                          # trains a champion on 30k customers first (~3 min)
    python benchmarks/serving.py --home .churn_home/demo  # the champion of an existing home (built there if empty)
    python benchmarks/serving.py --proxy python           # Ray Serve's Python proxy instead of HAProxy

Needs `wrk` (Debian/Ubuntu: `apt-get install wrk`). Ray Serve and the baseline run one after
the other, each alone on the machine with wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent

TARGETS = {"single_rps": 1000.0, "single_p99_ms": 50.0, "batch_rows_per_s": 50_000.0}


def free_port() -> int:
    from churn_platform.apps.serve_local import free_ports

    return free_ports()[0]


def wait_http(url: str, timeout_s: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer 200 within {timeout_s:.0f} s")


def lua_script(path: Path, body: bytes) -> Path:
    path.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body.decode()}]==]\n'
    )
    return path


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {p: _ms(v) for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M)}
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": rps,
        "p50_ms": lat.get("50"),
        "p90_ms": lat.get("90"),
        "p99_ms": lat.get("99"),
        "requests": total,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else None,
    }


def measure(url: str, single: Path, batch: Path, seconds: int, explain: bool = False) -> dict:
    wrk(f"{url}/v1/predict", single, 16, 3)  # warm-up
    one = wrk(f"{url}/v1/predict", single, 16, seconds)
    wrk(f"{url}/v1/predict", batch, 4, 3)
    many = wrk(f"{url}/v1/predict", batch, 4, seconds)
    many["rows_per_s"] = many["requests_per_s"] * 1000
    result = {"single": one, "batch_1000": many}
    if explain:
        wrk(f"{url}/v1/predict?explain=true", single, 16, 3)
        result["single_explain"] = wrk(f"{url}/v1/predict?explain=true", single, 16, seconds)
    return result


def build_champion(home: Path, customers: int) -> None:
    env = {
        **os.environ,
        "CHURN_PLATFORM_CUSTOMERS": str(customers),
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
    }
    print(f"== building a champion: churn-platform run on {customers:,} generated customers into {home}", flush=True)
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "churn-platform"), "run", "--home", str(home), "--report-json", str(home / "run_report.json")],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"   done in {time.perf_counter() - started:.0f} s", flush=True)


def champion_catalogue(home: Path):
    """The feature catalogue the home's champion was trained on."""
    from churn_platform.ml.registry import MLflowLocation, load_by_alias
    from churn_platform.settings import CHAMPION_ALIAS, REGISTERED_MODEL_NAME, Settings

    uri = Settings(home=home).mlflow_tracking_uri
    return load_by_alias(MLflowLocation(uri, ""), REGISTERED_MODEL_NAME, CHAMPION_ALIAS).features


def scoring_records(home: Path, n: int) -> list[dict]:
    import duckdb

    from churn_platform.ml.training import features_frame

    catalogue = champion_catalogue(home)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        frame = con.execute(f"select * from marts.scoring_features order by customer_id limit {n}").df()
    records = json.loads(features_frame(frame, catalogue)[list(catalogue.names)].to_json(orient="records"))
    while len(records) < n:
        records += records[: n - len(records)]
    return records


def in_process(tracking_uri: str, records: list[dict]) -> dict:
    import pandas as pd

    from churn_platform.ml.registry import MLflowLocation, load_by_alias
    from churn_platform.settings import CHAMPION_ALIAS, REGISTERED_MODEL_NAME

    model = load_by_alias(
        MLflowLocation(tracking_uri, ""), REGISTERED_MODEL_NAME, CHAMPION_ALIAS
    ).with_compiled_scorer()
    frame = pd.DataFrame(records)

    def rate(fn) -> float:
        fn()
        started, calls = time.perf_counter(), 0
        while time.perf_counter() - started < 3:
            fn()
            calls += 1
        return len(records) * calls / (time.perf_counter() - started)

    from churn_platform.ml.scoring import explain_records, occlusion_impact, reference_values
    from churn_platform.ml.training import features_frame

    reference = reference_values(frame, model.features)

    def ms_per_call(fn, rounds: int = 30) -> float:
        fn()
        started = time.perf_counter()
        for _ in range(rounds):
            fn()
        return (time.perf_counter() - started) * 1000 / rounds

    explained = {}
    for rows in (1, 32):
        x = features_frame(frame.head(rows), model.features)
        compiled_ms = ms_per_call(
            lambda r=records[:rows]: explain_records(model.model, r, reference, model.scorer, model.features)
        )
        pipeline_ms = ms_per_call(lambda x=x: occlusion_impact(model.model, x, reference))
        explained[f"{rows}_rows"] = {
            "compiled_ms": compiled_ms,
            "pipeline_occlusion_ms": pipeline_ms,
            "pipeline_over_compiled": pipeline_ms / compiled_ms,
        }
    return {
        "model_version": model.version,
        "scorer": model.scorer_note,
        "explained_by": model.scorer.explanation if model.scorer else "occlusion (pipeline)",
        "compiled_rows_per_s": rate(lambda: model.score_records(records)),
        "pipeline_rows_per_s": rate(lambda: model.predict_proba(frame)),
        "explain_per_request": explained,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="a platform home with a registered champion (default: build one)")
    parser.add_argument(
        "--customers", type=int, default=30_000, help="customers for the champion built when --home is not given"
    )
    parser.add_argument("--seconds", type=int, default=20, help="duration of each wrk run")
    parser.add_argument("--replicas", type=int, default=2, help="Ray Serve replicas (fixed for the run)")
    parser.add_argument("--proxy", choices=["haproxy", "python"], default="haproxy")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serving.json")
    args = parser.parse_args()
    import httpx

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (or brew install wrk)")

    work = Path(tempfile.mkdtemp(prefix="churn-serve-bench-"))
    try:
        home = args.home.resolve() if args.home else work / "home"
        if not (home / "warehouse.duckdb").exists():
            build_champion(home, args.customers)
        from churn_platform.settings import Settings

        settings = Settings(home=home)
        settings.export()
        records = scoring_records(home, 1000)
        single = lua_script(work / "single.lua", json.dumps(records[0]).encode())
        batch = lua_script(work / "batch.lua", json.dumps(records).encode())

        print("== in-process scorer, 1,000-row calls", flush=True)
        local = in_process(settings.mlflow_tracking_uri, records)
        print(
            f"   {local['scorer']}\n   compiled {local['compiled_rows_per_s']:,.0f} rows/s; "
            f"sklearn pipeline {local['pipeline_rows_per_s']:,.0f} rows/s",
            flush=True,
        )
        for rows, e in local["explain_per_request"].items():
            print(
                f"   explain {rows.replace('_', ' ')} ({local['explained_by']}): {e['compiled_ms']:.2f} ms; "
                f"the pipeline's occlusion {e['pipeline_occlusion_ms']:.2f} ms ({e['pipeline_over_compiled']:.1f}x)",
                flush=True,
            )

        print(f"== Ray Serve ({args.proxy} ingress, {args.replicas} replicas, batching, prediction log)", flush=True)
        from churn_platform.apps import serve_local as runner
        from churn_platform.serving.config import Autoscaling, ServingOptions

        port = free_port()
        url = runner.start(
            settings,
            port=port,
            proxy=args.proxy,
            options=ServingOptions(prediction_log_dir=str(work / "prediction_log"), features_uri=None),
            autoscaling=Autoscaling(min_replicas=args.replicas, max_replicas=args.replicas),
            metrics_port=free_port(),
        )
        wait_http(f"{url}/health")
        for _ in range(120):  # every replica up
            if all(httpx.get(f"{url}/health", timeout=5).status_code == 200 for _ in range(8)):
                break
            time.sleep(0.5)
        try:
            serve = measure(url, single, batch, args.seconds, explain=True)
        finally:
            runner.stop()
        print(f"   {json.dumps(serve)}", flush=True)

        print("== baseline: FastAPI on uvicorn, one process", flush=True)
        port = free_port()
        proc = subprocess.Popen(
            [
                str(BIN / "uvicorn"),
                "baseline_server:app",
                "--app-dir",
                str(REPO / "benchmarks"),
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
            ],
            env={**os.environ, "CHURN_PLATFORM_BENCH_TRACKING_URI": settings.mlflow_tracking_uri},
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/health")
            base = measure(f"http://127.0.0.1:{port}", single, batch, args.seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        print(f"   {json.dumps(base)}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    s, b = serve["single"], serve["batch_1000"]
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "setup": {
            "proxy": args.proxy,
            "replicas": args.replicas,
            "seconds": args.seconds,
            "customers": None if args.home else args.customers,
        },
        "in_process": local,
        "ray_serve": serve,
        "baseline_uvicorn": base,
        "ratios": {
            "single_rps_serve_over_baseline": s["requests_per_s"] / base["single"]["requests_per_s"],
            "batch_rows_serve_over_baseline": b["rows_per_s"] / base["batch_1000"]["rows_per_s"],
            "batch_rows_serve_over_in_process": b["rows_per_s"] / local["compiled_rows_per_s"],
            "single_rps_explain_over_plain": serve["single_explain"]["requests_per_s"] / s["requests_per_s"],
        },
        "targets": {
            "single_rps >= 1000": s["requests_per_s"] >= TARGETS["single_rps"],
            "single_p99 <= 50 ms": s["p99_ms"] <= TARGETS["single_p99_ms"],
            "batch_rows_per_s >= 50000": b["rows_per_s"] >= TARGETS["batch_rows_per_s"],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n| server | single-row req/s | p50 | p99 | batch rows/s (1,000 a request) |")
    print("|---|---|---|---|---|")
    for name, m in (("Ray Serve", serve), ("FastAPI/uvicorn baseline", base)):
        print(
            f"| {name} | {m['single']['requests_per_s']:,.0f} | {m['single']['p50_ms']:.1f} ms | {m['single']['p99_ms']:.1f} ms | {m['batch_1000']['rows_per_s']:,.0f} |"
        )
    e = serve["single_explain"]
    print(f"| Ray Serve, explain=true | {e['requests_per_s']:,.0f} | {e['p50_ms']:.1f} ms | {e['p99_ms']:.1f} ms | |")
    print(f"| in-process scorer | | | | {local['compiled_rows_per_s']:,.0f} |")
    print(json.dumps({"ratios": report["ratios"], "targets": report["targets"]}, indent=2))


if __name__ == "__main__":
    main()
