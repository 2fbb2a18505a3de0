"""A real browser on the real UIs: Debian's Chromium driven by Selenium through chromedriver.

Used by the browser test and by `make screenshots`, which writes the README's pictures:

    .venv/bin/python -m churn_platform_tests.browser --home .churn_home/demo --out deploy/screenshots
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from churn_platform_tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


class BrowserMissing(RuntimeError):
    pass


def chrome(width: int = 1600, height: int = 1000):
    """Headless Chromium (``CHURN_PLATFORM_CHROMIUM`` or the first on PATH) with its chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = os.environ.get("CHURN_PLATFORM_CHROMIUM") or next(
        (shutil.which(c) for c in CHROMIUM_CANDIDATES if shutil.which(c)), None
    )
    driver = os.environ.get("CHURN_PLATFORM_CHROMEDRIVER") or shutil.which("chromedriver")
    if not binary or not driver:
        raise BrowserMissing(
            "Chromium and chromedriver are needed for the browser test: `make test` installs Debian's "
            "chromium and chromium-driver; elsewhere set CHURN_PLATFORM_CHROMIUM and CHURN_PLATFORM_CHROMEDRIVER"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    # The chromedriver given explicitly: Selenium Manager never downloads one.
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@contextlib.contextmanager
def dagster_webserver(env: dict[str, str], log: Path) -> Iterator[str]:
    """dagster-webserver over the repository's workspace with ``env``; yields its URL."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dagster-webserver exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/server_info", timeout=3).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"dagster-webserver did not answer:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def wait_for_text(driver, texts: list[str], timeout_s: float = 90) -> str:
    """Wait until the rendered page shows every one of ``texts``; returns the page's text."""
    deadline = time.monotonic() + timeout_s
    body = ""
    while time.monotonic() < deadline:
        body = driver.find_element("tag name", "body").text
        if all(t in body for t in texts):
            return body
        time.sleep(0.5)
    missing = [t for t in texts if t not in body]
    raise AssertionError(f"{driver.current_url} never showed {missing}; it showed:\n{body[:2000]}")


def dismiss_dialogs(driver) -> None:
    """Close the Dagster UI's first-visit dialog (the community sign-up) if it is shown."""
    for button in driver.find_elements("xpath", "//div[@role='dialog']//button[normalize-space()='Skip']"):
        with contextlib.suppress(Exception):
            button.click()
            time.sleep(0.5)


def home_environment(home: Path, sources: str | None = None) -> dict[str, str]:
    from churn_platform.settings import Settings

    settings = Settings(home=home.resolve(), sources=sources)
    return {
        "CHURN_PLATFORM_HOME": str(settings.home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "CHURN_PLATFORM_PROFILE": "local",
        **({"CHURN_PLATFORM_SOURCES": sources} if sources else {}),
    }


def screenshots(home: Path, out: Path) -> list[Path]:
    """The README's pictures of a built home: the asset graph, the model's MLflow run, the drift report."""
    import dagster as dg

    out.mkdir(parents=True, exist_ok=True)
    written = []
    driver = chrome()
    try:
        with dagster_webserver(home_environment(home), home / "logs" / "screenshots-webserver.log") as url:
            driver.get(f"{url}/asset-groups")
            wait_for_text(driver, ["sources", "features", "ml", "monitoring"])
            time.sleep(3)
            dismiss_dialogs(driver)
            time.sleep(1)
            driver.save_screenshot(str(out / "asset_graph.png"))
            written.append(out / "asset_graph.png")
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            event = instance.get_latest_materialization_event(dg.AssetKey("churn_model"))
            metadata = event.asset_materialization.metadata  # type: ignore[union-attr]
            run_id = metadata["mlflow_parent_run_id"].value
            drift_report = Path(
                str(
                    instance.get_latest_materialization_event(dg.AssetKey("feature_drift_report"))
                    .asset_materialization.metadata["report_path"]
                    .value
                )
            )  # type: ignore[union-attr]
        port = free_port()
        mlflow = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "ui",
                "--backend-store-uri",
                f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=3).status_code == 200:
                        break
                time.sleep(0.5)
            from mlflow import MlflowClient

            run = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}").get_run(run_id)
            driver.get(f"http://127.0.0.1:{port}/#/experiments/{run.info.experiment_id}/runs/{run_id}")
            wait_for_text(driver, ["best_test_roc_auc"])
            time.sleep(2)
            driver.save_screenshot(str(out / "mlflow_run.png"))
            written.append(out / "mlflow_run.png")
        finally:
            os.killpg(mlflow.pid, signal.SIGTERM)
            mlflow.wait(timeout=30)
        driver.get(drift_report.as_uri())
        time.sleep(5)
        driver.save_screenshot(str(out / "drift_report.png"))
        written.append(out / "drift_report.png")
    finally:
        driver.quit()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".churn_home/demo"))
    parser.add_argument("--out", type=Path, default=REPO / "deploy" / "screenshots")
    args = parser.parse_args()
    for path in screenshots(args.home.resolve(), args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
