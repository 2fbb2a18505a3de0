"""The asset graph compared with a committed snapshot, so that every graph change is a visible diff.

After an intended change, write the snapshot anew and commit it:
    python -m churn_platform_tests.unit.test_graph_snapshot
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from churn_platform.apps.location import platform_definitions
from churn_platform.settings import Settings

SNAPSHOT = Path(__file__).parents[1] / "snapshots" / "asset_graph.json"


def describe_graph(tmp_path) -> dict:
    defs = platform_definitions(Settings(home=tmp_path))
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


UPDATE = "python -m churn_platform_tests.unit.test_graph_snapshot"


def test_asset_graph_matches_the_snapshot(tmp_path):
    assert SNAPSHOT.exists(), f"no committed snapshot at {SNAPSHOT}; write it with `{UPDATE}` and commit it"
    current = describe_graph(tmp_path)
    assert current == json.loads(SNAPSHOT.read_text()), (
        f"the asset graph changed; if intended, write the snapshot with `{UPDATE}` and commit it"
    )


def write_snapshot() -> None:
    with tempfile.TemporaryDirectory() as home:
        SNAPSHOT.write_text(json.dumps(describe_graph(Path(home)), indent=2, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")


if __name__ == "__main__":
    write_snapshot()
