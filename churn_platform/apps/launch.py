"""Submit the daily pipeline to a running Dagster deployment and follow it to the end.

`churn-platform run` executes the graph in its own process (the local profile). In the
production profile runs belong to the deployment: this submits one through the webserver's
GraphQL API, the QueuedRunCoordinator holds it until the daemon launches it, and the run
worker executes it wherever the run launcher puts it (a subprocess, a Kubernetes job).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from churn_platform.settings import Settings

LOCATION_NAME = "churn_platform"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


class LaunchError(RuntimeError):
    pass


@dataclass(frozen=True)
class LaunchedRun:
    run_id: str
    status: str
    seconds: float


def _key_path(asset: str) -> list[str]:
    """An asset key as the GraphQL client takes it (``a/b`` → ``["a", "b"]``)."""
    return asset.split("/")


def _client(webserver_url: str):
    from dagster_graphql import DagsterGraphQLClient

    parts = urlsplit(webserver_url)
    if not parts.hostname:
        raise LaunchError(f"not a URL: {webserver_url!r} (expected http://host:port)")
    return DagsterGraphQLClient(parts.hostname, port_number=parts.port, use_https=parts.scheme == "https", timeout=60)


def launch_daily_pipeline(
    settings: Settings, webserver_url: str, tags: dict[str, str] | None = None, assets: list[str] | None = None
) -> str:
    """Queue a run of ``daily_pipeline`` over every usage partition (only ``assets``, when given,
    e.g. ``["prediction_log"]`` to load what the API served); returns its run id. The run names
    the assets it builds, every one by default, so that declarative automation does not build
    them again after it."""
    from churn_platform.apps.location import platform_definitions
    from churn_platform.defs.automation import BUILDS_DOWNSTREAM
    from churn_platform.defs.partitions import all_partitions_range

    defs = platform_definitions(settings)
    first_day, last_day = all_partitions_range(defs.resolve_job_def("daily_pipeline").partitions_def)
    whole = not assets
    if whole:
        assets = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
    client = _client(webserver_url)
    try:
        return client.submit_job_execution(
            "daily_pipeline",
            repository_location_name=LOCATION_NAME,
            tags={
                "churn_platform/trigger": "launch",
                **(BUILDS_DOWNSTREAM if whole else {}),
                "dagster/asset_partition_range_start": first_day,
                "dagster/asset_partition_range_end": last_day,
                **(tags or {}),
            },
            asset_selection=[_key_path(a) for a in assets],
        )
    except Exception as exc:
        raise LaunchError(f"cannot submit daily_pipeline to {webserver_url}: {exc}") from exc


def wait_for_run(
    webserver_url: str,
    run_id: str,
    timeout_s: float = 1800.0,
    poll_s: float = 2.0,
    on_status: Callable[[str, float], None] | None = None,
) -> LaunchedRun:
    """Poll the run's status until it ends (QUEUED → STARTING → STARTED → SUCCESS or FAILURE)."""
    client = _client(webserver_url)
    started = time.monotonic()
    last = None
    while True:
        status = client.get_run_status(run_id).value
        elapsed = time.monotonic() - started
        if status != last and on_status is not None:
            on_status(status, elapsed)
        last = status
        if status in TERMINAL:
            return LaunchedRun(run_id, status, elapsed)
        if elapsed > timeout_s:
            raise LaunchError(f"run {run_id} still {status} after {timeout_s:.0f}s")
        time.sleep(poll_s)
