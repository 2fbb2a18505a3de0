"""The `churn-platform` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from churn_platform.settings import CHAMPION_ALIAS, REGISTERED_MODEL_NAME, Settings, normalise_sources, read_environment
from churn_platform.simulation.businesses import BUSINESSES
from churn_platform.simulation.generator import DRIFT_SCENARIOS


def _progress_printer(label: str):
    state = {"last": -1}

    def report(done: int, total: int) -> None:
        pct = int(100 * done / total)
        if pct // 10 != state["last"] // 10 or done == total:
            state["last"] = pct
            print(f"  {label}: {pct:3d}% ({done}/{total} days)", flush=True)

    return report


def cmd_prepare(args: argparse.Namespace) -> int:
    from churn_platform.business.declaration import load_declaration
    from churn_platform.defs.dbt import dbt_project, prepare_manifest
    from churn_platform.simulation.businesses import declaration_path

    paths = [Path(args.config)] if args.config else [declaration_path(b) for b in BUSINESSES]
    for path in paths:
        declaration = load_declaration(path)
        manifest = prepare_manifest(dbt_project(declaration, args.target), declaration)
        print(f"dbt manifest of {declaration.business} written to {manifest}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Inspect the sources and write a commented declaration for the user to check."""
    from churn_platform.apps.onboard import init_declaration
    from churn_platform.business.declaration import DeclarationError, parse_declaration
    from churn_platform.defs.resources import SourceResource

    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists; pass --force to replace it", file=sys.stderr)
        return 2
    sources = normalise_sources(args.sources)
    source = SourceResource(sources=sources, s3_endpoint_url=os.environ.get("CHURN_PLATFORM_S3_ENDPOINT_URL") or None)
    text, guess = init_declaration(source, args.sources, business=args.business_name)
    out.write_text(text)
    print(f"Wrote {out}: {', '.join(guess.declaration['sources'])} from {args.sources}")
    for problem in guess.problems:
        print(f"  TODO: {problem}")
    try:
        parse_declaration(text, str(out))
    except DeclarationError as exc:
        print(
            f"It does not validate yet; fix these, then run `churn-platform check --config {out} --sources {args.sources}`:"
        )
        print(str(exc))
        return 1
    print(f"Check each guess in {out}, then: churn-platform check --config {out} --sources {args.sources}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the declaration and its sources, without running the pipeline."""
    from churn_platform.apps.location import find_declaration, simulation_resources
    from churn_platform.apps.onboard import check_business, format_check
    from churn_platform.business.declaration import DeclarationError
    from churn_platform.defs.resources import SourceResource

    settings = _settings(args)
    try:
        declaration = find_declaration(settings)
    except DeclarationError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    simulated, _ = simulation_resources(settings)
    source = simulated or SourceResource(sources=settings.effective_sources, s3_endpoint_url=settings.s3_endpoint_url)
    started = time.monotonic()
    report = check_business(declaration, source, rows=args.rows)
    print(format_check(report))
    print(f"(checked in {time.monotonic() - started:.1f} s)")
    return 0 if report.ok else 1


def cmd_dbt_vars(args: argparse.Namespace) -> int:
    """Print the declared business as dbt variables, for a dbt run by hand."""
    from churn_platform.apps.location import find_declaration
    from churn_platform.business.catalogue import build_catalogue, dbt_vars

    settings = _settings(args)
    declaration = find_declaration(settings)
    print(json.dumps(dbt_vars(declaration, build_catalogue(declaration))))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from churn_platform.simulation.generator import GeneratorConfig, generate_to_dir

    config = GeneratorConfig(
        customers=args.customers,
        days=args.days,
        seed=args.seed,
        drift_scenario=args.drift_scenario,
        drift_start_day=args.drift_start_day,
        fault_rate=args.fault_rate,
        business=args.business,
    )
    print(
        f"Generating {config.business}: {config.customers:,} customers over {config.days} days "
        f"({config.start_date} .. {config.end_date}), seed {config.seed}",
        flush=True,
    )
    started = time.monotonic()
    if args.out.startswith("s3://"):
        return _generate_to_s3(args, config, started)
    data, counts = generate_to_dir(config, Path(args.out), fmt=args.format, progress=_progress_printer("simulating"))
    for name, rows in counts.items():
        print(f"  {name:<17} {rows:>12,} rows")
    if config.fault_rate:
        print(f"  faults injected: {len(data.faults):,} ({data.faults.fault.value_counts().to_dict()})")
    if config.drift_scenario != "none":
        print(f"  drift scenario {config.drift_scenario} from day {config.drift_start}")
    print(f"Wrote {args.out} in {time.monotonic() - started:.1f}s (ground truth in {Path(args.out) / '_ground_truth'})")
    return 0


def _generate_to_s3(args: argparse.Namespace, config, started: float) -> int:
    """Generate into a temporary folder, then upload it to the S3 landing zone."""
    import tempfile

    from dagster_aws.s3 import S3Resource

    from churn_platform.simulation.generator import generate_to_dir
    from churn_platform.sources.readers import SourceError, upload_dir_to_s3

    endpoint = os.environ.get("CHURN_PLATFORM_S3_ENDPOINT_URL") or None
    with tempfile.TemporaryDirectory(prefix="churn_landing_") as tmp:
        _, counts = generate_to_dir(config, Path(tmp), fmt=args.format, progress=_progress_printer("simulating"))
        try:
            keys = upload_dir_to_s3(S3Resource(endpoint_url=endpoint).get_client(), Path(tmp), args.out)
        except SourceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    for name, rows in counts.items():
        print(f"  {name:<17} {rows:>12,} rows")
    print(f"Uploaded {len(keys)} files to {args.out} in {time.monotonic() - started:.1f}s")
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    """The environment's settings, with what the command line gives (home, sources, declaration,
    policy) over them."""
    env = Settings.from_env()
    overrides: dict = {"home": Path(args.home).resolve(), "sources": normalise_sources(getattr(args, "sources", None))}
    if getattr(args, "config", None):
        overrides["config"] = Path(args.config).resolve()
    for name in ("business", "roc_auc_floor", "gate_tolerance", "max_quarantine_share"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    return dataclasses.replace(env, **overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from churn_platform.apps.pipeline import PipelineFailed, run_pipeline, write_report

    settings = _settings(args)
    if settings.sources is not None and "://" not in settings.sources and not Path(settings.sources).is_dir():
        print(
            f"error: --sources {settings.sources} is not a folder (nor an s3:// or postgresql:// URI)", file=sys.stderr
        )
        return 2
    print(f"Materializing the asset graph into {settings.home}", flush=True)
    report_path = Path(args.report_json) if args.report_json else settings.home / "run_report.json"
    try:
        report = run_pipeline(settings, log_level=args.log_level)
    except PipelineFailed as exc:
        if exc.report is not None:
            write_report(exc.report, report_path)
            print(_summary(exc.report))
            print(f"Run report (what was done up to the failure): {report_path}")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_report(report, report_path)
    print(_summary(report))
    print(f"Run report: {report_path}")
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from churn_platform.apps.launch import LaunchError, launch_daily_pipeline, wait_for_run

    settings = Settings.from_env()
    try:
        run_id = launch_daily_pipeline(settings, args.webserver, assets=args.asset or None)
        print(f"Queued daily_pipeline run {run_id} on {args.webserver} ({args.webserver}/runs/{run_id})", flush=True)
        if not args.wait:
            return 0
        result = wait_for_run(
            args.webserver,
            run_id,
            timeout_s=args.timeout,
            on_status=lambda status, s: print(f"  {s:6.0f}s  {status}", flush=True),
        )
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Run {run_id}: {result.status} after {result.seconds:.0f}s")
    return 0 if result.status == "SUCCESS" else 1


def cmd_exporter(args: argparse.Namespace) -> int:
    from churn_platform.apps.exporter import ExporterConfigError, instance_home, serve

    try:
        home = instance_home()
    except ExporterConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    policies, champion_version = _exporter_sources(settings)
    serve(
        args.port,
        args.host,
        drift_threshold=settings.drift_threshold,
        policies=policies,
        champion_version=champion_version,
    )
    print(f"Prometheus metrics of the Dagster instance at {home} on http://{args.host}:{args.port}/metrics", flush=True)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    return 0


def _exporter_sources(settings: Settings):
    """The assets' freshness policies and a reader of the champion alias, for the exporter."""
    from churn_platform.apps.location import platform_definitions
    from churn_platform.ml.registry import alias_version
    from churn_platform.settings import CHAMPION_ALIAS, REGISTERED_MODEL_NAME

    graph = platform_definitions(settings).resolve_asset_graph()
    policies = {
        key: graph.get(key).freshness_policy for key in graph.get_all_asset_keys() if graph.get(key).freshness_policy
    }

    def champion_version() -> str | None:
        return alias_version(settings.mlflow_tracking_uri, REGISTERED_MODEL_NAME, CHAMPION_ALIAS)

    return policies, champion_version


def cmd_dev(args: argparse.Namespace) -> int:
    from churn_platform.apps import dev
    from churn_platform.settings import REPO_DIR

    return dev.run(Path(args.home), REPO_DIR / "workspace.yaml", args.dagster_port, args.mlflow_port, args.host)


def cmd_docs(args: argparse.Namespace) -> int:
    from churn_platform.apps.docs_site import DocsError, generate_docs, serve_docs

    settings = _settings(args)
    if not settings.warehouse_path.exists():
        from churn_platform.apps.pipeline import WAREHOUSE_SELECTION, PipelineFailed, build_warehouse
        from churn_platform.simulation.landing import config_from_env

        simulated = config_from_env(days=settings.days)
        origin = (
            settings.sources
            or f"the built-in simulation ({simulated.customers:,} customers, {simulated.days} days, seed {simulated.seed})"
        )
        print(
            f"No warehouse in {settings.home} yet. The docs' catalog needs one: loading the sources from {origin} "
            f"and building the dbt models ({WAREHOUSE_SELECTION}; no training, scoring or reports) ...",
            flush=True,
        )
        started = time.monotonic()
        try:
            run_id = build_warehouse(settings, log_level="WARNING")
        except PipelineFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"Warehouse built in {time.monotonic() - started:.0f} s (Dagster run {run_id})", flush=True)
    from churn_platform.apps.location import find_declaration
    from churn_platform.defs import warehouse_for
    from churn_platform.defs.dbt import business_vars

    declaration = find_declaration(settings)
    warehouse = warehouse_for(settings).process_config_and_initialize()
    target = settings.home / "dbt_docs"
    try:
        generate_docs(settings.warehouse_path, target, business_vars(warehouse, declaration, "2000-01-01"), declaration)
    except DocsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"dbt docs generated in {target} from {settings.warehouse_path}", flush=True)
    return serve_docs(target, args.host, args.port) if args.serve else 0


def cmd_train(args: argparse.Namespace) -> int:
    from churn_platform.ml.byo import FeatureTableError, train_table
    from churn_platform.ml.registry import MLflowLocation
    from churn_platform.ml.training import TrainingDataError

    home = Path(args.home).resolve()
    settings = dataclasses.replace(Settings.from_env(), home=home)
    settings.ensure_dirs()
    location = MLflowLocation(settings.mlflow_tracking_uri, args.experiment, settings.mlflow_artifact_location)
    print(f"Training on {args.features} (label {args.label!r}, id {args.id_column!r})", flush=True)
    try:
        report = train_table(
            Path(args.features),
            args.label,
            args.id_column,
            location,
            time_column=args.time_column,
            positive_label=args.positive_label,
            seed=args.seed,
        )
    except (FeatureTableError, TrainingDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    f = report["features"]
    print(f"  {report['rows']:,} rows, {report['positive_rate']:.1%} positive; split {report['split']}")
    print(
        f"  features: {len(f['numeric'])} numeric, {len(f['categorical'])} categorical, {len(f['dropped'])} left out {f['dropped'] or ''}"
    )
    for name, metrics in report["candidates"].items():
        print(
            f"  {name:<20} validation ROC-AUC {metrics['validation']['roc_auc']:.4f}   test ROC-AUC {metrics['test']['roc_auc']:.4f}"
        )
    print(
        f"  selected {report['selected']} (calibrated): test ROC-AUC {report['roc_auc']:.4f}, Brier {report['test_metrics']['brier']:.4f}"
    )
    print(f"MLflow run {report['mlflow_run_id']} in {report['mlflow_tracking_uri']}; metrics written to {out}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    """Show, stage, change or end a rollout in the registry; the API follows within its poll interval."""
    from churn_platform.ml import gate
    from churn_platform.ml.registry import (
        MLflowLocation,
        alias_version,
        alias_with_tags,
        change_rollout,
        settle_rollout,
        stage_rollout,
    )

    settings = dataclasses.replace(Settings.from_env(), home=Path(args.home).resolve())
    location = MLflowLocation(settings.mlflow_tracking_uri, "")
    name = REGISTERED_MODEL_NAME
    if alias_version(settings.mlflow_tracking_uri, name, gate.CHAMPION) is None:
        print(
            f"error: {name} has no champion in {settings.mlflow_tracking_uri}: run the pipeline first", file=sys.stderr
        )
        return 2
    if args.end and (args.version or args.mode or args.share is not None):
        print("error: --end takes no --version, --mode or --share", file=sys.stderr)
        return 2
    try:
        if args.end:
            found = alias_with_tags(location, name, gate.ROLLOUT)
            if found is None:
                print(f"error: {name} has no @{gate.ROLLOUT} version to end", file=sys.stderr)
                return 2
            promote = args.end == "promote"
            settle_rollout(location, name, found[0], promote, f"ended by an operator: {args.end}")
        elif args.version:
            stage_rollout(
                location,
                name,
                args.version,
                args.mode or "shadow",
                0.5 if args.share is None else args.share,
                args.reason,
            )
        elif args.mode or args.share is not None:
            found = alias_with_tags(location, name, gate.ROLLOUT)
            if found is None:
                print(f"error: {name} has no @{gate.ROLLOUT} version: stage one with --version", file=sys.stderr)
                return 2
            tags = found[1]
            change_rollout(
                location,
                name,
                args.mode or tags.get(gate.ROLLOUT_MODE_TAG, "shadow"),
                float(tags.get(gate.ROLLOUT_SHARE_TAG, 0.5)) if args.share is None else args.share,
            )
    except (ValueError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the registry's own errors (an unknown version) name what is wrong
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    champion = alias_version(settings.mlflow_tracking_uri, name, gate.CHAMPION)
    found = alias_with_tags(location, name, gate.ROLLOUT)
    rollout = (
        f"version {found[0]} in {found[1].get(gate.ROLLOUT_MODE_TAG, '?')} ({found[1].get(gate.ROLLOUT_SHARE_TAG, '?')})"
        if found
        else "none"
    )
    print(f"{name}@{gate.CHAMPION}: version {champion}; @{gate.ROLLOUT}: {rollout}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from churn_platform.apps import serve_local as runner
    from churn_platform.ml.registry import alias_version
    from churn_platform.settings import CHAMPION_ALIAS, REGISTERED_MODEL_NAME

    settings = _settings(args)
    version = alias_version(settings.mlflow_tracking_uri, REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    if version is None:
        print(
            f"error: the home {settings.home} has no champion model ({REGISTERED_MODEL_NAME}@{CHAMPION_ALIAS} in "
            f"{settings.mlflow_tracking_uri}): `churn-platform run --home {args.home}` trains and promotes one",
            file=sys.stderr,
        )
        return 1
    settings.export()
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    # A stop asked for while Serve starts is kept and honoured once it has started.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        url = runner.start(settings, args.host, args.port)
    except BaseException:
        runner.stop()
        raise
    if stop["now"]:
        print("A stop was asked for while Serve was starting.", flush=True)
    else:
        print(
            f"Serving {REGISTERED_MODEL_NAME}@{CHAMPION_ALIAS} (version {version}, followed as the alias moves) at {url}: "
            f"POST /v1/predict, POST /v1/predict/customers, GET /v1/model, GET /health; docs at {url}/docs. "
            f"Predictions are logged to {settings.prediction_log_dir}. Ctrl-C stops.",
            flush=True,
        )
    try:
        while not stop["now"]:
            time.sleep(0.5)
    finally:
        print("Stopping Ray Serve ...", flush=True)
        runner.stop()
        print("Stopped.", flush=True)
    return 0


def cmd_campaign_demo(args: argparse.Namespace) -> int:
    from churn_platform.apps.campaign import CampaignPlan, run_campaign_scenario, summary
    from churn_platform.apps.pipeline import PipelineFailed

    home = Path(args.home).resolve()
    if home.exists() and not args.keep_home:
        print(f"Resetting the demo home {home}")
        shutil.rmtree(home)
    customers = args.customers or 20_000
    plan = CampaignPlan(
        business=args.business,
        customers=customers,
        days=args.days,
        seed=args.seed,
        contacts=args.contacts or customers // 20,
        control_share=args.control_share,
    )
    try:
        report = run_campaign_scenario(plan, home)
    except (PipelineFailed, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n[4/4] " + summary(report))
    print(f"\nCampaign demo finished in {report.seconds:.0f}s. Figures in {home / 'campaign_report.json'}")
    return 0


def cmd_rollout_demo(args: argparse.Namespace) -> int:
    from churn_platform.apps.pipeline import PipelineFailed
    from churn_platform.apps.rollout import RolloutPlan, run_rollout_scenario, summary

    home = Path(args.home).resolve()
    if home.exists() and not args.keep_home:
        print(f"Resetting the demo home {home}")
        shutil.rmtree(home)
    plan = RolloutPlan(business=args.business, customers=args.customers or 4_000, days=args.days, seed=args.seed)
    try:
        report = run_rollout_scenario(plan, home, port=args.port)
    except (PipelineFailed, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n[6/6] " + summary(report))
    print(f"\nRollout demo finished in {report.seconds:.0f}s. Figures in {home / 'rollout_report.json'}")
    if report.failed_requests:
        print(f"error: {report.failed_requests} requests failed under load: {report.failures[:3]}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import httpx

    if args.scenario == "campaign":
        return cmd_campaign_demo(args)
    if args.scenario == "rollout":
        return cmd_rollout_demo(args)
    args.customers = args.customers or 2_000

    from churn_platform.apps import serve_local as runner
    from churn_platform.apps.pipeline import PipelineFailed, run_pipeline, write_report
    from churn_platform.simulation.generator import GeneratorConfig, generate, write_sources

    home = Path(args.home).resolve()
    if home.exists() and not args.keep_home:
        print(f"Resetting the demo home {home}")
        shutil.rmtree(home)
    sources = home / "sources"
    started = time.monotonic()

    drift = args.scenario == "drift"
    scenario = " with the usage_shift drift in the last 45 days" if drift else ""
    print(
        f"\n[1/4] Generating the {args.business} business: {args.customers:,} customers over {args.days} days, "
        f"seed {args.seed}{scenario}",
        flush=True,
    )
    data = generate(
        GeneratorConfig(
            customers=args.customers,
            days=args.days,
            seed=args.seed,
            fault_rate=args.fault_rate,
            drift_scenario="usage_shift" if drift else "none",
            business=args.business,
        ),
        progress=_progress_printer("simulating"),
    )
    write_sources(data, sources)
    if args.fault_rate:
        print(f"  {len(data.faults):,} rows given faults for the data contracts to catch", flush=True)

    print("\n[2/4] Materializing the asset graph with Dagster (sources → dbt → model → drift)", flush=True)
    settings = Settings(
        home=home,
        sources=str(sources),
        days=args.days,
        alert_webhook_url=read_environment().alert_webhook_url,
        **({"drift_threshold": args.drift_threshold} if drift else {}),
    )
    try:
        report = run_pipeline(settings, log_level="WARNING")
    except PipelineFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_report(report, home / "run_report.json")

    print("\n[3/4] Serving models:/churn_model@champion with Ray Serve", flush=True)
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        row = con.execute("select * from marts.scoring_features order by customer_id limit 1").df()
    customer_id = str(row["customer_id"].iloc[0])
    with runner.serving(settings, port=args.port) as url:
        # The features the served model asks for (its catalogue), from this customer's row.
        features = httpx.get(f"{url}/v1/model", timeout=30).json()["features"]
        record = json.loads(row[features].to_json(orient="records"))[0]
        print(
            f"\n[4/4] POST {url}/v1/predict for customer {customer_id}, and by id through /v1/predict/customers",
            flush=True,
        )
        response = httpx.post(
            f"{url}/v1/predict",
            params={"explain": "true"},
            json={**record, "customer_id": customer_id},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        by_id = httpx.post(f"{url}/v1/predict/customers", json={"customer_ids": [customer_id]}, timeout=30)
        by_id.raise_for_status()
        prediction = {
            "model_version": body["model_version"],
            "request_id": body["request_id"],
            **body["predictions"][0],
        }
        if abs(by_id.json()["results"][0]["churn_probability"] - prediction["churn_probability"]) > 1e-9:
            print("error: scoring by id and by features disagree", file=sys.stderr)
            return 1
        if drift:
            from churn_platform.apps.loop import run_closed_loop

            print("\n[drift] The closed loop: sensor → retraining → promotion gate → hot swap", flush=True)
            loop = run_closed_loop(settings, url)
            (home / "closed_loop.json").write_text(json.dumps(loop.as_dict(), indent=2, default=str))
            run_report = json.loads((home / "run_report.json").read_text())
            run_report["closed_loop"] = loop.as_dict()
            (home / "run_report.json").write_text(json.dumps(run_report, indent=2, sort_keys=True, default=str))
            print(f"  outcome: {loop.outcome}; steps and timings in {home / 'closed_loop.json'}", flush=True)
            prediction["model_version"] = httpx.get(f"{url}/health", timeout=10).json()["model_version"]
    print("\nStopped Ray Serve.")
    m = report.model
    champion = str(m["model_version"]) if m["alias"] == "champion" else str(m["champion_version"])
    if drift:
        from churn_platform.ml.registry import MLflowLocation, resolve_alias

        champion = resolve_alias(
            MLflowLocation(settings.mlflow_tracking_uri, ""), REGISTERED_MODEL_NAME, CHAMPION_ALIAS
        )
    if prediction["model_version"] != champion:
        print(
            f"error: served version {prediction['model_version']} is not the champion ({champion})",
            file=sys.stderr,
        )
        return 1
    print("\n" + _summary(report))
    print(f"  live prediction (customer {customer_id}): {json.dumps(prediction)}")
    print(f"\nDemo finished in {time.monotonic() - started:.0f}s. State and reports are in {home}")
    return 0


def _summary(report) -> str:
    lines = [
        "Summary",
        f"  Dagster run {report.dagster_run_id} ({report.business_name}): {report.status} in {report.seconds:.0f}s",
    ]
    for failure in report.failures:
        lines.append(f"  failed step {failure['step']}: {failure['error']}")
    lines.append("  rows per source: " + ", ".join(f"{k} {v:,}" for k, v in report.sources.items()))
    quarantined = {k: c for k, c in report.contracts.items() if c["quarantined"]}
    lines.append(
        "  quarantined by the data contracts: "
        + (", ".join(f"{k} {c['quarantined']:,}" for k, c in quarantined.items()) if quarantined else "none")
    )
    for k, c in quarantined.items():
        rules = c.get("rules") or c.get("reasons") or {}
        shown = ", ".join(f"{rule} ({n:,})" for rule, n in list(rules.items())[:4])
        more = f", and {len(rules) - 4} more rules" if len(rules) > 4 else ""
        lines.append(f"    {k}: {shown}{more}")
    m = report.model
    if m.get("model_version") is not None:
        lines.append(
            f"  model: {m['registered_model']} version {m['model_version']} (@{m['alias']}, {m['candidate']}), "
            f"holdout ROC-AUC {m['roc_auc']:.3f} on snapshot {str(m['test_snapshot']).split(' ')[0]}"
        )
        if m.get("oracle_roc_auc") is not None:
            lines.append(
                f"  oracle ROC-AUC on the same rows (true churn probabilities): {m['oracle_roc_auc']:.3f}; "
                f"model / oracle {m['model_over_oracle']:.3f}"
            )
        lines.append(f"  promotion gate: {m['gate_decision']} ({m['gate_reason']})")
    b = report.business
    if b.get("churn_rate") is not None:
        lines.append(
            f"  business ({b['latest_complete_month']}): customer churn {b['churn_rate']:.1%}, MRR churn {b['mrr_churn_rate']:.1%}, "
            f"net revenue retention {b['net_revenue_retention']:.1%}; chart {b['chart_path']}"
        )
    if "churn_scores" in report.tables:
        lines.append(f"  batch scores: {report.tables['churn_scores']:,} customers in scores.churn_scores")
    w = report.worklist
    if w.get("campaign") is not None:
        lines.append(
            f"  retention worklist {w['campaign']} (by {w['targeted_by'] or 'risk'}): {w['treated']:,} to contact, "
            f"{w['control']:,} held out as a control; "
            f"spend {w['spend']:,.0f}, expected benefit {w['expected_benefit_treated']:,.0f}; export {w['export_csv']}"
        )
    c = report.campaigns
    if c.get("campaigns") is not None:
        lines.append(
            f"  campaigns: {c['campaigns']:,} in the contacts ({c['contacts']:,} contacts), "
            f"{c['measured_campaigns']:,} measured against their controls (decisions.campaign_effects)"
        )
    u = report.uplift
    if u.get("status") == "trained":
        oracle = f"; the true uplift's {u['oracle_qini']:.5f}" if u.get("oracle_qini") is not None else ""
        lines.append(
            f"  uplift model: churn_uplift version {u['model_version']} (@{u['alias']}, {u['candidate']}), "
            f"holdout Qini {u['qini']:.5f}{oracle}"
        )
    elif u.get("status") is not None:
        lines.append(f"  uplift model: {u['reason']}")
    d = report.drift
    if d.get("drift_share") is not None:
        skipped = d.get("skipped_columns") or {}
        lines.append(
            f"  feature drift share: {d['drift_share']:.2f} ({d['drifted_columns']}/{d['total_columns']} features"
            + (f"; {len(skipped)} empty or constant, not compared" if skipped else "")
            + f"), report {d['report_path']}"
        )
    lines.append(
        f"  asset checks (dbt tests, contracts): {report.checks['passed']} passed, "
        f"{report.checks['warned']} warned, {report.checks['failed']} failed"
    )
    for name in report.warned_checks:
        lines.append(f"    warning: {name}")
    return "\n".join(lines)


def _business_options(p: argparse.ArgumentParser) -> None:
    """The options that say which business runs and the run's policy."""
    p.add_argument(
        "--config",
        help="the business's declaration file (default: churn_platform.yaml beside the sources, or in the working "
        "directory; the built-in business's without --sources)",
    )
    p.add_argument(
        "--business",
        choices=list(BUSINESSES),
        help="the built-in simulated business to run when no --sources are given (default saas_b2b)",
    )
    p.add_argument(
        "--roc-auc-floor",
        type=float,
        help="the lowest holdout ROC-AUC a model may be promoted with (default: the declaration's policy, 0.70). "
        "A first model below it is registered but not promoted; the run then fails at the promotion gate and "
        "scores nothing",
    )
    p.add_argument(
        "--gate-tolerance", type=float, help="how much below the champion's ROC-AUC a new version may be (0.01)"
    )
    p.add_argument(
        "--max-quarantine-share",
        type=float,
        help="the share of a source's rows that may be quarantined before the run stops (default 0.05)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="churn-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="parse the dbt project into its manifest, for each built-in business")
    p.add_argument("--target", default="duckdb")
    p.add_argument("--config", help="parse it for this declaration instead")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("init", help="inspect your exports and write a commented declaration of the business to check")
    p.add_argument(
        "--sources", required=True, help="a folder of .parquet/.csv files, s3://bucket/prefix or postgresql://..."
    )
    p.add_argument("--out", default="churn_platform.yaml", help="where to write it (default churn_platform.yaml)")
    p.add_argument("--business-name", default="my_business", help="the business's short name (lower_snake_case)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "check",
        help="validate the declaration against its sources in seconds: quarantine, features, labels, readiness",
    )
    p.add_argument("--sources", help="the sources (as for run; default: the built-in simulation)")
    p.add_argument("--home", default=".churn_home/check", help="only used for the built-in simulation's files")
    p.add_argument("--rows", type=int, default=2_000_000, help="rows per source put through its contract")
    _business_options(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "dbt-vars",
        help='print the declared business as dbt variables: dbt build --vars "$(churn-platform dbt-vars)"',
    )
    p.add_argument("--home", default=".churn_home/demo")
    p.add_argument("--sources", help="the sources whose declaration to use (as for run)")
    _business_options(p)
    p.set_defaults(func=cmd_dbt_vars)

    p = sub.add_parser("generate", help="write a built-in business's sources (and its declaration) as files")
    p.add_argument("--business", choices=list(BUSINESSES), default=BUSINESSES[0], help="which simulated business")
    p.add_argument("--customers", type=int, default=2_000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", required=True, help="folder, or s3://bucket/prefix landing zone, to write the sources to")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    p.add_argument(
        "--drift-scenario",
        choices=list(DRIFT_SCENARIOS),
        default="none",
        help="a change in the business: prices rise 25%% (price_increase) or usage shifts (usage_shift)",
    )
    p.add_argument(
        "--drift-start-day", type=int, help="day of the window the drift starts (default: 45 days before the end)"
    )
    p.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of rows given faults (recorded in _ground_truth/faults.parquet)",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help="materialize the whole asset graph on source files")
    p.add_argument(
        "--sources",
        help="a folder of source files, s3://bucket/prefix or postgresql://user@host:port/db?schema=S "
        "(default: the built-in generator)",
    )
    p.add_argument("--home", required=True, help="folder for all state: warehouse, Dagster, MLflow, reports")
    _business_options(p)
    p.add_argument(
        "--report-json",
        help="where to write the run report, also when the run fails (default HOME/run_report.json)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("launch", help="queue the daily pipeline on a running Dagster deployment (production profile)")
    p.add_argument("--webserver", default=os.environ.get("DAGSTER_WEBSERVER_URL", "http://127.0.0.1:3000"))
    p.add_argument(
        "--asset", action="append", help="materialize only this asset (repeatable); default: the whole pipeline"
    )
    p.add_argument("--wait", action="store_true", help="follow the run until it ends; exit 1 unless it succeeded")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser(
        "exporter", help="serve the pipeline's drift, model and freshness metrics to Prometheus (reads DAGSTER_HOME)"
    )
    p.add_argument("--host", default="127.0.0.1", help="the interface to listen on (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=9188)
    p.set_defaults(func=cmd_exporter)

    p = sub.add_parser(
        "dev", help="the Dagster UI and daemon and the MLflow UI over a home, until interrupted (make dev)"
    )
    p.add_argument("--home", default=".churn_home/demo")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dagster-port", type=int, default=3000)
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("docs", help="generate the dbt docs (catalog from the home's warehouse) and serve them")
    p.add_argument("--home", default=".churn_home/demo")
    p.add_argument("--serve", action="store_true", help="serve them on http://HOST:PORT until interrupted")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("train", help="train the candidates on your own customer feature table (Parquet or CSV)")
    p.add_argument("--features", required=True, help="a .parquet or .csv file, one row per customer (and time)")
    p.add_argument("--label", required=True, help="the label column: two values, such as 1/0, yes/no, true/false")
    p.add_argument("--id-column", required=True, help="the customer key column")
    p.add_argument("--time-column", help="a date column: the holdout is then the latest times, not a stratified sample")
    p.add_argument(
        "--positive-label", help="the label value that means churn, when it is not a usual one (1, yes, true)"
    )
    p.add_argument(
        "--output-json", required=True, help="where to write the metrics (includes roc_auc of the selected model)"
    )
    p.add_argument(
        "--home", default=".churn_home/train", help="folder for the MLflow store (default .churn_home/train)"
    )
    p.add_argument("--experiment", default="churn_platform_byo", help="MLflow experiment name")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "rollout",
        help="show, stage, change or end the rollout of a version beside the champion (the API follows the registry)",
        description=(
            "Without options: the champion and the version rolled out (@rollout) with its mode and share. "
            "--version N [--mode] [--share]: serve version N beside the champion (default shadow, 0.5), without the gate. "
            "--mode/--share alone: change the rollout in progress. --end promote|roll-back: decide it now "
            "(online_comparison decides it otherwise, from its matured live scores)."
        ),
    )
    p.add_argument("--home", required=True)
    p.add_argument("--version", help="the registered version to roll out")
    p.add_argument("--mode", choices=["shadow", "canary"])
    p.add_argument("--share", type=float, help="shadow: share of requests; canary: share of customers (0 to 1]")
    p.add_argument("--end", choices=["promote", "roll-back"])
    p.add_argument("--reason", default="staged by an operator", help="kept in the version's tags")
    p.set_defaults(func=cmd_rollout)

    p = sub.add_parser("serve", help="serve the home's champion model with Ray Serve until interrupted")
    p.add_argument("--home", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="generate, run, serve and query: the whole loop end to end")
    p.add_argument("--home", default=".churn_home/demo")
    p.add_argument(
        "--business",
        choices=list(BUSINESSES),
        default=BUSINESSES[0],
        help="which built-in business: saas_b2b (B2B software, daily usage) or consumer_app (an app's event log)",
    )
    p.add_argument(
        "--customers",
        type=int,
        default=None,
        help="customers simulated (default 2,000; 20,000 in the campaign scenario, 4,000 in the rollout scenario)",
    )
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--fault-rate", type=float, default=0.005, help="share of source rows given faults (default 0.005)")
    p.add_argument("--keep-home", action="store_true", help="reuse the demo home instead of starting afresh")
    p.add_argument(
        "--scenario",
        choices=["default", "drift", "campaign", "rollout"],
        default="default",
        help=(
            "drift: generate usage drift at the end of the window, then show the closed loop (sensor, retraining, "
            "gate, hot swap); campaign: two retention campaigns on simulated time, by risk then by uplift, each "
            "measured against its controls and compared with the oracle's best targeting; rollout: a retrained version "
            "in shadow, then canary, promoted on its live comparison, then a broken version rolled back, under load"
        ),
    )
    p.add_argument(
        "--contacts",
        type=int,
        default=None,
        help="the campaign scenario's budget per campaign, in contacts (default a twentieth of the customers)",
    )
    p.add_argument(
        "--control-share",
        type=float,
        default=0.25,
        help="the campaign scenario's control share in its second cycle (default 0.25; the first holds out half)",
    )
    p.add_argument(
        "--drift-threshold",
        type=float,
        default=0.35,
        help="drift share over which the sensor retrains, in the drift scenario (default 0.35; without drift the latest snapshot's share is about 0.25, with it about 0.47)",
    )
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Progress should appear as it happens, also when the output goes to a pipe or a file.
    sys.stdout.reconfigure(line_buffering=True)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
