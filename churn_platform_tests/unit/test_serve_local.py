"""The environment a local Ray Serve starts with: the chosen ingress, and HAProxy's side ports."""

from __future__ import annotations

import pytest

from churn_platform.apps.serve_local import HAPROXY_PORT_ENVS, ray_environment


def test_haproxy_gets_free_side_ports_unless_they_are_set(monkeypatch):
    for name in HAPROXY_PORT_ENVS:
        monkeypatch.delenv(name, raising=False)
    first, second = ray_environment("haproxy"), ray_environment("haproxy")
    assert first["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    ports = [int(env[name]) for env in (first, second) for name in HAPROXY_PORT_ENVS]
    assert all(1024 < p < 65536 for p in ports)
    # Serve's defaults (9101, 8404) are fixed: two local instances would collide on them.
    assert not {9101, 8404} & set(ports)
    assert len({first[n] for n in HAPROXY_PORT_ENVS}) == 2, "metrics and stats on one port"
    monkeypatch.setenv("RAY_SERVE_HAPROXY_STATS_PORT", "18404")
    assert ray_environment("haproxy")["RAY_SERVE_HAPROXY_STATS_PORT"] == "18404"


def test_the_python_proxy_needs_no_haproxy_settings():
    env = ray_environment("python")
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in env and not set(HAPROXY_PORT_ENVS) & set(env)
    with pytest.raises(ValueError, match="choose one of"):
        ray_environment("nginx")
