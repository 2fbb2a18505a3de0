"""The Dagster UI in a real browser (headless Chromium): the asset graph shows every group,
and the model asset's page shows the metadata its run recorded."""

from __future__ import annotations

import time

import pytest

from churn_platform_tests.browser import chrome, dagster_webserver, dismiss_dialogs, home_environment, wait_for_text

pytestmark = pytest.mark.slow


def test_dagster_ui_shows_every_group_and_the_model_metadata(e2e, tmp_path):
    from churn_platform.apps.location import platform_definitions

    definitions = platform_definitions(e2e.settings)
    graph = definitions.resolve_asset_graph()
    groups = sorted({graph.get(key).group_name for key in graph.get_all_asset_keys() if graph.get(key).group_name})
    assert {"sources", "staging", "features", "ml", "monitoring", "business"} <= set(groups), groups
    version = str(e2e.report["model"]["model_version"])
    driver = chrome()
    try:
        with dagster_webserver(home_environment(e2e.home, str(e2e.sources)), tmp_path / "webserver.log") as url:
            driver.get(f"{url}/asset-groups")
            wait_for_text(driver, groups)
            dismiss_dialogs(driver)
            # Every group is a node of the graph (an SVG node), not only an entry of the side list.
            nodes = set()
            for _ in range(60):
                nodes = {
                    line.strip()
                    for e in driver.find_elements("css selector", "svg foreignObject")
                    for line in e.text.splitlines()
                }
                if set(groups) <= nodes:
                    break
                time.sleep(0.5)
            assert set(groups) <= nodes, f"graph nodes {sorted(nodes)}, groups {groups}"
            driver.save_screenshot(str(tmp_path / "asset_graph.png"))
            driver.get(f"{url}/assets/churn_model")
            body = wait_for_text(driver, ["churn_model", "roc_auc", "mlflow_run_id", "model_version"])
            assert version in body
            driver.save_screenshot(str(tmp_path / "churn_model.png"))
    finally:
        driver.quit()
