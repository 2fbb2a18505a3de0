"""Shadow and canary rollouts: which requests a challenger version scores, and whose answer is returned.

A challenger is a second registered version served beside the champion:

- **shadow**: a share of the requests (chosen by a hash of the request id) is also scored by the
  challenger after the champion has answered; its scores are logged, never returned, and add no
  latency to the request.
- **canary**: a share of the customers (chosen by a hash of the customer id, so a customer gets
  the same version on every request) is answered by the challenger. Records without a
  ``customer_id`` are always answered by the champion. The champion still scores the canary's
  records, so the two versions can be compared on the same customers; those scores are logged as
  not served.

The hash of a customer does not depend on the challenger or the share: raising the share from 10%
to 20% keeps the first 10% in the canary, and a customer moved back by a lower share returns to
the champion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

CHAMPION, CANARY, SHADOW = "champion", "canary", "shadow"
"""The arm of every logged score: answered by the champion, by a canary challenger, or scored in shadow."""


class Rollout(BaseModel):
    """A challenger version and how it shares the traffic."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(..., min_length=1, description="The registered version of the challenger.")
    mode: Literal["shadow", "canary"] = Field(
        "shadow", description="shadow: scored and logged, never returned; canary: answers its share of customers."
    )
    share: float = Field(
        0.1, ge=0, le=1, description="shadow: the share of requests; canary: the share of customers (by id)."
    )


def _unit(key: str) -> float:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_canary(customer_ids: Iterable[str | None], share: float) -> np.ndarray:
    """Which customers a canary of ``share`` answers: a hash of each id below the share (never a
    record without an id)."""
    return np.array([cid is not None and _unit(f"canary\x1f{cid}") < share for cid in customer_ids], dtype=bool)


def in_shadow(request_id: str, share: float) -> bool:
    """Whether a shadow of ``share`` also scores the request ``request_id``."""
    return _unit(f"shadow\x1f{request_id}") < share
