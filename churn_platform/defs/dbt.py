"""The dbt project as Dagster assets: one asset per model, dbt tests as asset checks."""

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from churn_platform.business.catalogue import EVENT_TYPES_SQL, build_catalogue, dbt_vars, event_types_from
from churn_platform.business.declaration import Declaration
from churn_platform.defs.automation import PREDICTION_LOG, follow_parents
from churn_platform.defs.partitions import PARTITIONED_DBT_TAG
from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import ReportStore, Warehouse
from churn_platform.settings import DBT_PROJECT_DIR


class ManifestMissingError(RuntimeError):
    pass


def graph_vars(declaration: Declaration) -> dict[str, Any]:
    """The business as dbt sees it when parsing: what decides which models and tests exist (the
    event types found in the data only change customer_features' columns, not the graph)."""
    return dbt_vars(declaration, build_catalogue(declaration))


def project_files_digest() -> str:
    """A digest of the dbt project's own files (models, macros, tests, dbt_project.yml): a changed
    model gets a manifest of its own instead of reusing the one parsed before the change."""
    digest = hashlib.sha256()
    root = Path(DBT_PROJECT_DIR)
    files = [root / "dbt_project.yml"] + [
        path for folder in ("models", "macros", "tests") for path in (root / folder).rglob("*") if path.is_file()
    ]
    for path in sorted(f for f in files if f.exists()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def dbt_project(declaration: Declaration, target: str = "duckdb") -> DbtProject:
    """The dbt project parsed for ``declaration``: each declared shape of business, and each state
    of the project's files, has its own manifest (``target/<business>-<digest>/``), since absent
    sources disable models."""
    key = json.dumps(graph_vars(declaration), sort_keys=True) + project_files_digest()
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target=target,
        target_path=Path("target") / f"{declaration.business}-{digest}",
    )


def dbt_executable() -> str:
    """The dbt installed beside this Python (a virtual environment need not be on PATH)."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def dbt_resource(project: DbtProject) -> DbtCliResource:
    return DbtCliResource(project_dir=project, dbt_executable=dbt_executable())


def prepare_manifest(project: DbtProject, declaration: Declaration) -> Path:
    """Parse the dbt project for ``declaration`` into its manifest (``make prepare`` does it for the
    built-in businesses; a new declaration's is parsed when the code location first loads)."""
    args = ["parse", "--quiet", "--vars", json.dumps(graph_vars(declaration))]
    dbt_resource(project).cli(args, target_path=project.target_path).wait()
    return project.manifest_path


class ChurnDbtTranslator(DagsterDbtTranslator):
    """Keys models by name, groups them by folder (staging → staging, business → business,
    monitoring → monitoring, decisions → decisions, the rest → features),
    and gives them freshness policies and automation (see ``follow_parents``)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props.get("resource_type") == "model":
            return dg.AssetKey([dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id) or manifest["sources"].get(unique_id) or {}
        if node.get("resource_type") != "model":
            return spec
        fqn = node.get("fqn", [])
        group = next((g for g in ("staging", "business", "monitoring", "decisions") if g in fqn), "features")
        # A model's tests may read other sources (a relationships test against the raw CRM):
        # those sources are loaded before the model is built and tested, but an update of one
        # is no reason to rebuild the model.
        tested_against = {
            dep
            for test in manifest["nodes"].values()
            if test.get("resource_type") == "test" and test.get("attached_node") == unique_id
            for dep in test.get("depends_on", {}).get("nodes", [])
            if dep.startswith("source.")
        }
        extra = [self.get_asset_key(manifest["sources"][dep]) for dep in sorted(tested_against)]
        known = {dep.asset_key for dep in spec.deps}
        extra = [key for key in extra if key not in known]
        spec = spec.replace_attributes(
            group_name=group,
            freshness_policy=freshness_for(group),
            automation_condition=follow_parents(
                every_partition=PARTITIONED_DBT_TAG in node.get("tags", []),
                not_on_updates_of=extra,
                # The prediction log is reloaded hourly: it counts as updated only when what was served changed.
                on_data_changes_of=[PREDICTION_LOG] if PREDICTION_LOG in known else [],
            ),
        )
        return spec.merge_attributes(deps=extra) if extra else spec


def _check_manifest(project: DbtProject, declaration: Declaration) -> None:
    if not project.manifest_path.exists():
        try:
            prepare_manifest(project, declaration)
        except Exception as exc:
            raise ManifestMissingError(
                f"the dbt project could not be parsed for business {declaration.business!r} into "
                f"{project.manifest_path}: {exc}"
            ) from exc


def event_types_in(warehouse: Warehouse, declaration: Declaration) -> tuple[list[str], list[str] | None]:
    """The event types of the loaded usage that get features of their own (the declared ones, else
    the most frequent in ``raw.events``, ties by name, up to ``features.max_event_types``), and those
    whose events carry a value (None: not known, all of them)."""
    events = declaration.sources.events
    if events.shape != "events" or not events.columns.type:
        return event_types_from(declaration, [])
    found = warehouse.query(EVENT_TYPES_SQL)
    return event_types_from(declaration, list(zip(found["event_type"], found["valued"])))


def business_vars(warehouse: Warehouse, declaration: Declaration, usage_begin: str) -> dict[str, Any]:
    """The business as a dbt build needs it: the declaration, and the catalogue with the event types
    found in the loaded usage."""
    catalogue = build_catalogue(declaration, *event_types_in(warehouse, declaration))
    return dbt_vars(declaration, catalogue, usage_begin)


USAGE_BATCH_SIZE_ENV = "CHURN_PLATFORM_USAGE_BATCH_SIZE"
"""Read by ``int_daily_usage``'s config: the length of its microbatches (``day`` unless set)."""
MONTH_BATCHES_FROM_DAYS = 32
"""A run of at least this many daily partitions builds the usage in month batches: dbt's cost per
batch (about 50 ms of compiling, logging and a statement) outweighs a small day's SQL, and a year
built day by day is 365 batches. Shorter runs (the daily one) build day by day."""


USAGE_BATCH_SIZES = ("day", "month")


def usage_batch_size(days: int, setting: str | None = None) -> str:
    """The microbatch of a run over ``days`` daily partitions: ``setting`` (the environment's
    ``CHURN_PLATFORM_USAGE_BATCH_SIZE``, to force one) or else by the run's length."""
    if setting:
        if setting not in USAGE_BATCH_SIZES:
            raise ValueError(f"{USAGE_BATCH_SIZE_ENV}={setting!r}: choose one of {', '.join(USAGE_BATCH_SIZES)}")
        return setting
    return "month" if days >= MONTH_BATCHES_FROM_DAYS else "day"


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in the process environment while the block runs (dagster-dbt gives dbt a copy of
    it); what was there before is restored."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


PARSE_STATE = "partial_parse.msgpack"
"""dbt's saved parse of the project, which a later invocation reuses when nothing it depends on changed."""


def _dbt_build(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    reports: ReportStore,
    business: dict[str, Any],
    *extra: str,
    env: Mapping[str, str] | None = None,
):
    """``dbt build`` (plus ``extra`` arguments) with the warehouse's location as the profile's
    variables (the warehouse resource is the one place that decides it) and the declared business;
    its artifacts and logs stay with the run's other state. A DuckDB file is held by the dbt
    process while it builds, so row counts are not fetched from a second connection.

    dbt parses the whole project again whenever its variables change or its target folder holds no
    saved parse, and each invocation has a target folder of its own. So the parse is kept per set
    of variables under the home (``reports/dbt/parse/<digest>``), given to every invocation with the
    same variables (the same business, event types and warehouse) and updated after it: only the
    first invocation of a home parses the project; dbt itself re-parses what changed in the files
    (and the files that read an environment variable of ``env`` whose value changed)."""
    variables = json.dumps({**warehouse.dbt_vars(), **business}, sort_keys=True)
    artifacts = reports.path_for(f"dbt/{context.run_id}/{context.op_def.name}")
    saved = reports.path_for(f"dbt/parse/{hashlib.sha256(variables.encode()).hexdigest()[:16]}/{PARSE_STATE}")
    if saved.exists():
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(saved, artifacts / PARSE_STATE)
    with _environment(env or {}):
        invocation = dbt.cli(["build", "--vars", variables, *extra], context=context, target_path=artifacts)
    yield from invocation.stream()
    parsed = artifacts / PARSE_STATE
    if parsed.exists():
        staged = saved.with_suffix(".tmp")
        shutil.copyfile(parsed, staged)
        staged.replace(saved)


MONITORING_DBT_TAG = "monitoring"
"""The dbt tag of the monitoring models: they read what the Python assets write (scores, the
prediction log), so they are built by an asset definition of their own, after those."""


def build_dbt_assets(
    project: DbtProject, partitions: dg.DailyPartitionsDefinition, declaration: Declaration
) -> list[dg.AssetsDefinition]:
    """Three asset definitions over the one dbt project: the daily usage models, partitioned
    by day (a backfill of any range is one ``dbt build``), the monitoring models, and every other model."""
    _check_manifest(project, declaration)
    usage_begin = partitions.start.strftime("%Y-%m-%d")
    translator = ChurnDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
    partitioned = f"tag:{PARTITIONED_DBT_TAG}"
    monitoring = f"tag:{MONITORING_DBT_TAG}"

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=translator,
        name="dbt_models",
        exclude=f"{partitioned} {monitoring}",
    )
    def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse, reports: ReportStore):
        business = business_vars(warehouse, declaration, usage_begin)
        context.log.info(
            f"business {declaration.business}: {len(business['churn']['features'])} features from "
            f"{', '.join(declaration.present)}"
        )
        yield from _dbt_build(context, dbt, warehouse, reports, business)

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=translator,
        name="dbt_daily_usage",
        select=partitioned,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def dbt_daily_usage(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse, reports: ReportStore
    ):
        window = context.partition_time_window
        start, end = window.start.strftime("%Y-%m-%d"), window.end.strftime("%Y-%m-%d")
        batch = usage_batch_size((window.end - window.start).days, os.environ.get(USAGE_BATCH_SIZE_ENV))
        context.log.info(f"building the daily usage models for {start} up to {end} (one microbatch a {batch})")
        business = business_vars(warehouse, declaration, usage_begin)
        yield from _dbt_build(
            context,
            dbt,
            warehouse,
            reports,
            business,
            "--event-time-start",
            start,
            "--event-time-end",
            end,
            env={USAGE_BATCH_SIZE_ENV: batch},
        )

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=translator,
        name="dbt_monitoring",
        select=monitoring,
    )
    def dbt_monitoring(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse, reports: ReportStore
    ):
        yield from _dbt_build(context, dbt, warehouse, reports, business_vars(warehouse, declaration, usage_begin))

    return [dbt_daily_usage, dbt_models, dbt_monitoring]
