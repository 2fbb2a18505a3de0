"""Declarative automation on a real instance: the assets' conditions, evaluated by Dagster's own
evaluation API over the instance the pipeline ran on, and the requested runs executed for real.

A new day of usage lands: its dbt partition follows (one run), then everything downstream of it
(one run), each asset exactly once; with nothing new, evaluations request nothing; the
prediction log is reloaded on its hourly cadence, and what reads it follows only when something
new was served. (The production suite checks the same sensor ticking in the real daemon.)
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import dagster as dg
import pandas as pd
import pytest

from churn_platform.apps.location import platform_definitions
from churn_platform.defs.automation import AUTOMATION_SENSOR
from churn_platform.serving.prediction_log import PredictionLogWriter
from churn_platform.settings import Settings
from churn_platform.simulation.generator import DEFAULT_START, GeneratorConfig, generate, write_sources
from churn_platform_tests.business import CATALOGUE
from churn_platform_tests.conftest import PREDICTION_LOG_READERS
from churn_platform_tests.integration.test_prediction_log_asset import log_rows

pytestmark = pytest.mark.slow

DAYS = 200
NEW_DAY = (DEFAULT_START + dt.timedelta(days=DAYS)).isoformat()
PARTITIONS_END = DEFAULT_START + dt.timedelta(days=DAYS + 1)
USAGE_MODELS = {"stg_events", "int_daily_usage"}


class Clock:
    """Evaluation times that only move forward, and never behind the real time."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime.now(dt.UTC)

    def tick(self, **delta) -> dt.datetime:
        self.now = max(self.now + dt.timedelta(seconds=1, **delta), dt.datetime.now(dt.UTC))
        return self.now


class Automation:
    """Dagster's evaluation of the automation conditions over a real instance, tick after tick."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance, clock: Clock | None = None) -> None:
        self.defs = platform_definitions(settings)
        self.instance = instance
        self.cursor = None
        self.clock = clock or Clock()
        self.job = self.defs.resolve_job_def("daily_pipeline")

    def evaluate(self, **delta) -> dict[str, set[str | None]]:
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor, evaluation_time=self.clock.tick(**delta)
        )
        self.cursor = result.cursor
        graph = self.defs.resolve_asset_graph()
        requested = {
            key.to_user_string(): set(result.get_requested_partitions(key))
            for key in graph.get_all_asset_keys()
            if result.get_num_requested(key)
        }
        assert result.total_requested == sum(len(p) for p in requested.values())
        return requested

    def run(self, assets, partition_key: str | None = None) -> dg.ExecuteInProcessResult:
        result = self.job.execute_in_process(
            instance=self.instance,
            asset_selection=[dg.AssetKey(a) for a in assets],
            partition_key=partition_key,
            tags={"churn_platform/trigger": "automation"},
        )
        assert result.success
        return result


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A home built by `churn-platform run` while automation was already being evaluated (as the
    daemon does), on DAYS days of usage; the source folder then gains the next day, as a daily
    export would. The partitions reach that day from the start (CHURN_PLATFORM_PARTITIONS_END,
    or `open` for a live feed; without it they would end with the data), so the run loaded it empty."""
    root = tmp_path_factory.mktemp("automation")
    data = generate(GeneratorConfig(customers=600, days=DAYS + 1, seed=17))
    usage = data.usage_events
    data.usage_events = usage[pd.to_datetime(usage["event_date"]) < pd.Timestamp(NEW_DAY)]
    write_sources(data, root / "src")
    settings = Settings(
        home=root / "home", sources=str(root / "src"), days=DAYS + 1, partitions_end_setting=PARTITIONS_END
    )
    saved = dict(os.environ)
    settings.ensure_dirs()
    settings.export()
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        # Dagster's run-tag conditions (``all_new_updates_have_run_tags``, which tells the run's own
        # updates apart) see only updates made after an evaluation that saw at least one event in
        # the instance; after evaluations of an instance without any, the first partitions the run
        # loaded between two evaluations looked like another run's. That can happen once, on a
        # brand-new instance (then automation rebuilds those first partitions once more); this test
        # is about every later run, so its instance gets an event first.
        instance.report_runless_asset_event(
            dg.AssetObservation(dg.AssetKey("automation_test_instance"), metadata={"created": True})
        )
        watching = Automation(settings, instance)
        assert watching.evaluate() == {}, "a new instance: nothing to follow"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_PLATFORM_")}
        env.update(
            {
                "CHURN_PLATFORM_DAYS": str(DAYS + 1),
                "CHURN_PLATFORM_SEED": "17",
                "CHURN_PLATFORM_PARTITIONS_END": PARTITIONS_END.isoformat(),
                "RAY_USAGE_STATS_ENABLED": "0",
            }
        )
        log = root / "run.log"
        began = dt.datetime.now(dt.UTC)
        with log.open("w") as out:
            run = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "churn_platform.apps.cli",
                    "run",
                    "--sources",
                    str(root / "src"),
                    "--home",
                    str(root / "home"),
                    "--log-level",
                    "WARNING",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # Evaluated while the run goes on, as the daemon does every 30 s: the run's own updates
        # (every usage partition, then each model) must never look like changes to follow.
        during = []
        while run.poll() is None:
            during.append(_besides_the_hourly_reload(watching.evaluate(), began))
            time.sleep(1)
        assert run.returncode == 0, log.read_text()[-3000:]
        after = _besides_the_hourly_reload(watching.evaluate(), began)
    assert len(during) >= 5, "the evaluations ran while the pipeline ran"
    assert not any(during), f"automation followed the run's own updates while it ran: {[d for d in during if d]}"
    assert after == {}, f"the run built every asset with its parents: automation must not build them again, got {after}"
    data.usage_events = usage
    write_sources(data, root / "src")
    yield settings
    os.environ.clear()
    os.environ.update(saved)


def _besides_the_hourly_reload(requested: dict, began: dt.datetime) -> dict:
    """What an evaluation requested, less the prediction log's reload when an hour started since
    ``began``: that request is its cadence, not a reaction to the run's updates."""
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    if hour > began and requested.get("prediction_log") == {None}:
        return {k: v for k, v in requested.items() if k != "prediction_log"}
    return requested


def test_the_automation_sensor_runs_by_default(home):
    sensor = platform_definitions(home).resolve_sensor_def(AUTOMATION_SENSOR)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds <= 60


def test_a_new_day_of_usage_is_followed_once_and_nothing_else_starts(home):
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        # Evaluated from just after the next hour's start: the prediction log's hourly reload is
        # not due again while this test runs (a real hour boundary in between would ask for it).
        start = dt.datetime.now(dt.UTC).replace(minute=5, second=0, microsecond=0) + dt.timedelta(hours=1)
        auto = Automation(home, instance, Clock(start))
        graph = auto.defs.resolve_asset_graph()
        assert auto.evaluate() == {}, "the first evaluation of a built home requests nothing"
        assert auto.evaluate() == {}, "nor does a second one, with no new data"

        # The day lands: its usage partition is loaded (as the schedule, a person or a sensor would).
        auto.run(["events"], partition_key=NEW_DAY)
        first = auto.evaluate()
        assert first == {m: {NEW_DAY} for m in USAGE_MODELS}, first
        assert auto.evaluate() == {}, "requested once, not again while it waits to run"
        auto.run(sorted(first), partition_key=NEW_DAY)

        second = auto.evaluate()
        expected = {
            k.to_user_string()
            for k in graph.get_all_asset_keys()
            if dg.AssetKey("int_daily_usage") in _ancestors(graph, k)
            and k.to_user_string() not in USAGE_MODELS | {"prediction_log"}
        }
        assert set(second) == expected, (sorted(second), sorted(expected))
        assert {
            "customer_features",
            "scoring_features",
            "training_set",
            "churn_model",
            "churn_scores",
            "feature_drift_report",
        } <= expected
        assert all(parts == {None} for parts in second.values())
        assert auto.evaluate() == {}, "requested once"
        executed = auto.run(sorted(second))
        built = {e.asset_key.to_user_string() for e in executed.get_asset_materialization_events()}
        assert built == expected

        for _ in range(3):
            assert auto.evaluate() == {}, "everything followed once: nothing more starts"


def test_the_prediction_log_is_reloaded_hourly_and_its_readers_follow_new_predictions(home):
    readers = set(PREDICTION_LOG_READERS)
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        start = dt.datetime.now(dt.UTC).replace(minute=10, second=0, microsecond=0) + dt.timedelta(hours=1)
        auto = Automation(home, instance, Clock(start))
        assert auto.evaluate() == {}
        assert auto.evaluate(minutes=5) == {}, "no hour boundary passed"
        assert auto.evaluate(hours=1) == {"prediction_log": {None}}
        assert auto.evaluate(minutes=1) == {}, "once per hour"
        auto.run(["prediction_log"])
        assert auto.evaluate(minutes=1) == {}, "the same (empty) log again: its readers do not rerun"

        writer = PredictionLogWriter(home.prediction_log_dir, catalogue=CATALOGUE)
        writer.append(log_rows(20, dt.datetime.now(dt.UTC)))
        writer.flush()
        assert auto.evaluate(minutes=1) == {}, "a new prediction waits for the next hourly reload"
        assert auto.evaluate(hours=1) == {"prediction_log": {None}}
        auto.run(["prediction_log"])
        followed = auto.evaluate(minutes=1)
        assert followed == {name: {None} for name in readers}, followed
        auto.run(sorted(followed))
        assert auto.evaluate(minutes=1) == {}


def _ancestors(graph, key: dg.AssetKey) -> set[dg.AssetKey]:
    seen: set[dg.AssetKey] = set()
    todo = list(graph.get(key).parent_keys)
    while todo:
        parent = todo.pop()
        if parent not in seen:
            seen.add(parent)
            todo.extend(graph.get(parent).parent_keys)
    return seen


def test_the_schedule_names_every_asset_of_its_run(home):
    """The 02:00 run builds every asset and says so, so that automation does not build them again."""
    defs = platform_definitions(home)
    schedule = defs.resolve_schedule_def("daily_pipeline_schedule")
    at = dt.datetime.fromisoformat(NEW_DAY).replace(tzinfo=dt.UTC) + dt.timedelta(days=1, hours=2)
    with dg.build_schedule_context(scheduled_execution_time=at, repository_def=defs.get_repository_def()) as context:
        (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == NEW_DAY
    assert set(request.asset_selection) == set(defs.resolve_asset_graph().get_all_asset_keys())
    with dg.build_schedule_context(
        scheduled_execution_time=at + dt.timedelta(days=30), repository_def=defs.get_repository_def()
    ) as context:
        tick = schedule.evaluate_tick(context)
    assert not tick.run_requests and "is not a usage partition" in tick.skip_message
