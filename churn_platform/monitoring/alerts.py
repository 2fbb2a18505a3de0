"""Alerts: one message format, written to the log and, when configured, posted to a webhook.

The webhook body is Slack's incoming-webhook format (``text`` plus one attachment with the
details as fields), which Slack, Mattermost, Rocket.Chat and Microsoft Teams' Slack-compatible
connectors accept. Delivery never raises: an alert that cannot be posted is logged with the
reason, so a broken webhook cannot fail a run or a sensor.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

log = logging.getLogger("churn_platform.alerts")

KINDS = (
    "check_failed",
    "check_warned",
    "freshness_failed",
    "freshness_warned",
    "run_failed",
    "promotion",
    "challenger",
    "rollout",
    "rollback",
)


@dataclasses.dataclass(frozen=True)
class Alert:
    kind: str
    title: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}; one of {', '.join(KINDS)}")

    def text(self) -> str:
        return f"[churn_platform] {self.title}"

    def webhook_body(self) -> dict[str, Any]:
        color = {
            "check_failed": "danger",
            "freshness_failed": "danger",
            "run_failed": "danger",
            "rollback": "danger",
            "promotion": "good",
        }.get(self.kind, "warning")
        return {
            "text": self.text(),
            "attachments": [
                {
                    "fallback": self.text(),
                    "color": color,
                    "fields": [{"title": "kind", "value": self.kind, "short": True}]
                    + [
                        {"title": str(k), "value": str(v)[:1000], "short": len(str(v)) < 40}
                        for k, v in self.details.items()
                    ],
                }
            ],
        }


def deliver(alert: Alert, webhook_url: str | None, timeout_s: float = 5.0, logger: Any = None) -> bool:
    """Log the alert; post it when a webhook is configured. Returns whether it was posted."""
    logger = logger or log
    logger.warning("%s %s", alert.text(), {k: str(v)[:200] for k, v in alert.details.items()})
    if not webhook_url:
        return False
    import httpx

    try:
        response = httpx.post(webhook_url, json=alert.webhook_body(), timeout=timeout_s)
        response.raise_for_status()
        return True
    except Exception as exc:
        logger.error("alert %r not delivered to the webhook: %s: %s", alert.title, type(exc).__name__, exc)
        return False
