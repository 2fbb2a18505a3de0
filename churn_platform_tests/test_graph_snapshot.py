"""The asset graph compared with a committed snapshot, so that every graph change is a visible diff.

After an intended change: UPDATE_SNAPSHOTS=1 pytest churn_platform_tests/test_graph_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from churn_platform.defs import build_definitions
from churn_platform.settings import Settings

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def describe_graph(tmp_path) -> dict:
    defs = build_definitions(Settings(home=tmp_path))
    graph = defs.resolve_asset_graph()
    checks_by_asset: dict[str, list[str]] = {}
    for check in graph.asset_check_keys:
        checks_by_asset.setdefault(check.asset_key.to_user_string(), []).append(check.name)
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        name = key.to_user_string()
        assets[name] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "freshness": repr(node.freshness_policy),
            "partitions": str(node.partitions_def) if node.partitions_def is not None else None,
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
            "checks": sorted(checks_by_asset.get(name, [])),
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in defs.jobs or []),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }


def test_asset_graph_matches_the_snapshot(tmp_path):
    current = describe_graph(tmp_path)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "the asset graph changed; if intended, rerun with UPDATE_SNAPSHOTS=1 and commit the snapshot"
    )
