"""Whom to contact: expected profit under a budget, with a random control arm.

A customer's expected benefit from a contact is the revenue the contact is expected to keep less
what it costs: ``P(churn) × value × save rate − cost`` when targeting by risk, where the value is
the revenue at stake (monthly revenue × the months a kept customer is worth) and the save rate the
share of would-be leavers an offer keeps; or ``uplift × value − cost`` once an uplift model gives
each customer's own expected change in churn. Customers are taken by expected benefit, best first,
while it is positive and the budget (contacts, money or both) lasts. A share of them (10% by
default) is held out as a control, chosen by a hash of the campaign and the customer's key: the
same campaign holds out the same customers on every run, and nobody can pick them by hand.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd

from churn_platform.business.declaration import CONTROL, TREATED, Retention

_DECLARED = Retention()


@dataclasses.dataclass(frozen=True)
class TargetingPolicy:
    """How the worklist is chosen: the declaration's ``retention`` section (its defaults, meanings and
    bounds are ``business.declaration.Retention``'s), with a run's overrides."""

    contact_cost: float = _DECLARED.contact_cost
    value_months: float = _DECLARED.value_months
    save_rate: float = _DECLARED.save_rate
    max_contacts: int | None = _DECLARED.max_contacts
    max_spend: float | None = _DECLARED.max_spend
    control_share: float = _DECLARED.control_share

    def __post_init__(self) -> None:
        # The declaration's bounds, checked once more for a run's overrides (a ValueError naming the field).
        Retention.model_validate(dataclasses.asdict(self))

    @classmethod
    def of(cls, retention: Retention, **overrides) -> TargetingPolicy:
        return cls(**{**retention.model_dump(), **overrides})


def control_draw(campaign: str, customer_ids) -> np.ndarray:
    """A number in [0, 1) per customer, from a hash of the campaign and the customer's key: the same
    for the same pair on every run and machine, independent between campaigns."""
    out = np.empty(len(customer_ids), dtype=np.float64)
    for i, key in enumerate(customer_ids):
        digest = hashlib.sha256(f"{campaign}\x1f{key}".encode()).digest()
        out[i] = int.from_bytes(digest[:8], "big") / 2**64
    return out


def expected_benefit(
    mrr: np.ndarray,
    policy: TargetingPolicy,
    churn_probability: np.ndarray | None = None,
    uplift: np.ndarray | None = None,
) -> np.ndarray:
    """Each customer's expected benefit of a contact, in money: by uplift when given, else by risk."""
    value = np.asarray(mrr, dtype=np.float64) * policy.value_months
    if uplift is not None:
        kept = np.asarray(uplift, dtype=np.float64)
    elif churn_probability is not None:
        kept = np.asarray(churn_probability, dtype=np.float64) * policy.save_rate
    else:
        raise ValueError("expected_benefit needs churn probabilities or uplift estimates")
    return kept * value - policy.contact_cost


def select(
    candidates: pd.DataFrame,
    policy: TargetingPolicy,
    campaign: str,
    id_column: str = "customer_id",
    benefit_column: str = "expected_benefit",
) -> pd.DataFrame:
    """The worklist: the candidates with a positive expected benefit, best first, within the budget,
    each with its rank and arm. The control arm's share is held out from the selection (so the
    treated spend stays within ``max_spend``; the control costs nothing)."""
    if not campaign:
        raise ValueError("a campaign needs a name: its control arm is drawn from it")
    missing = {id_column, benefit_column} - set(candidates.columns)
    if missing:
        raise ValueError(f"the candidates lack columns {sorted(missing)}")
    chosen = candidates[candidates[benefit_column] > 0].sort_values(
        [benefit_column, id_column], ascending=[False, True], kind="stable"
    )
    if policy.max_contacts is not None:
        chosen = chosen.head(policy.max_contacts)
    chosen = chosen.copy()
    draw = control_draw(campaign, chosen[id_column].tolist())
    chosen["arm"] = np.where(draw < policy.control_share, CONTROL, TREATED)
    if policy.max_spend is not None:
        spend = np.cumsum(np.where(chosen["arm"] == TREATED, policy.contact_cost, 0.0))
        chosen = chosen[spend <= policy.max_spend]
    chosen["cost"] = np.where(chosen["arm"] == TREATED, policy.contact_cost, 0.0)
    chosen["rank"] = np.arange(1, len(chosen) + 1)
    chosen["campaign"] = campaign
    return chosen.reset_index(drop=True)


WORKLIST_COLUMNS = (
    "campaign",
    "rank",
    "customer_id",
    "arm",
    "snapshot_date",
    "churn_probability",
    "risk_tier",
    "mrr",
    "value_at_risk",
    "uplift",
    "expected_benefit",
    "cost",
    "driver_1",
    "driver_2",
    "driver_3",
    "reason",
    "model_name",
    "model_version",
    "targeted_by",
)
"""The worklist's columns, in the order a CRM import shows them."""


def candidates_from_scores(
    scores: pd.DataFrame, policy: TargetingPolicy, uplift: np.ndarray | None = None, uplift_model: str = ""
) -> pd.DataFrame:
    """Every scored customer (``scores.churn_scores``: probability, tier, drivers, MRR) with their
    value at risk and expected benefit of a contact: by risk, or by ``uplift`` (each customer's
    estimated uplift, from ``uplift_model``) when given; ``targeted_by`` says which."""
    frame = scores.copy()
    mrr = pd.to_numeric(frame["mrr"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
    frame["value_at_risk"] = mrr * policy.value_months
    frame["uplift"] = np.nan if uplift is None else np.asarray(uplift, dtype=np.float64)
    frame["expected_benefit"] = expected_benefit(
        mrr, policy, churn_probability=frame["churn_probability"].to_numpy(), uplift=uplift
    )
    frame["targeted_by"] = "risk" if uplift is None else f"uplift ({uplift_model})"
    return frame


def worklist_from_candidates(candidates: pd.DataFrame, policy: TargetingPolicy, campaign: str) -> pd.DataFrame:
    """The campaign's worklist (``select``), each customer with the reason for their place on it, in
    ``WORKLIST_COLUMNS`` order. Targeted by uplift, a customer a contact would drive away is never on it."""
    chosen = select(candidates, policy, campaign)

    def why(p, tier, drivers, value, m, up, benefit, arm) -> str:
        named = ", ".join(d for d in drivers if isinstance(d, str) and d) or "none"
        effect = "" if pd.isna(up) else f"; a contact lowers the risk by {up * 100:.1f} points"
        return (
            f"churn risk {p:.0%} ({tier}); drivers: {named}{effect}; value at risk {value:,.0f} "
            f"({policy.value_months:g} months of {m:,.2f}); expected benefit {benefit:,.0f} after a contact "
            f"costing {policy.contact_cost:,.0f}" + ("; held out as a control" if arm == CONTROL else "")
        )

    chosen["reason"] = [
        why(*row)
        for row in zip(
            chosen["churn_probability"],
            chosen["risk_tier"],
            chosen[["driver_1", "driver_2", "driver_3"]].itertuples(index=False),
            chosen["value_at_risk"],
            chosen["mrr"],
            chosen["uplift"],
            chosen["expected_benefit"],
            chosen["arm"],
        )
    ]
    return chosen[[c for c in WORKLIST_COLUMNS if c in chosen.columns]]


def worklist_from_scores(
    scores: pd.DataFrame,
    policy: TargetingPolicy,
    campaign: str,
    uplift: np.ndarray | None = None,
    uplift_model: str = "",
) -> pd.DataFrame:
    """The campaign's worklist from batch scores: ``candidates_from_scores``, then ``worklist_from_candidates``."""
    return worklist_from_candidates(candidates_from_scores(scores, policy, uplift, uplift_model), policy, campaign)
