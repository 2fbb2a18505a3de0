"""Start and stop a local Ray cluster with the Serve application on it."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import httpx

from churn_platform.settings import CHAMPION_ALIAS, REGISTERED_MODEL_NAME, Settings

APP_NAME = "churn_platform"


def _quiet_ray_env() -> None:
    # No telemetry and no dashboard downloads on an offline machine.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")


def start(settings: Settings, host: str = "127.0.0.1", port: int = 8000, num_cpus: int | None = None) -> str:
    """Start local Ray and Serve, deploy the app, wait until it answers. Returns the base URL."""
    import ray
    from ray import serve

    from churn_platform.serving.app import build_app

    _quiet_ray_env()
    if not ray.is_initialized():
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 2,
            include_dashboard=False,
            object_store_memory=256 * 1024 * 1024,
            namespace=APP_NAME,
            log_to_driver=False,
            configure_logging=False,
        )
    serve.start(http_options={"host": host, "port": port}, detached=False)
    serve.run(
        build_app(settings.mlflow_tracking_uri, REGISTERED_MODEL_NAME, CHAMPION_ALIAS),
        name=APP_NAME,
        route_prefix="/",
        blocking=False,
    )
    url = f"http://{host}:{port}"
    wait_until_up(url)
    return url


def wait_until_up(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/health", timeout=5)
            if r.status_code in (200, 503):
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"Ray Serve did not answer at {url}/health within {timeout_s:.0f}s ({last})")


def stop() -> None:
    import ray
    from ray import serve

    with contextlib.suppress(Exception):
        serve.shutdown()
    if ray.is_initialized():
        ray.shutdown()


@contextlib.contextmanager
def serving(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> Iterator[str]:
    try:
        yield start(settings, host, port)
    finally:
        stop()
