"""What a campaign did: its treated customers' outcomes against its randomly held-out controls.

The control arm is what the treated arm would have done without the contact, so the difference of
their churn rates is the campaign's effect, free of whom the targeting chose. Saved customers and
saved monthly revenue scale the per-customer effect to the treated arm; a percentile bootstrap
(resampling each arm, seeded) gives their intervals. A campaign whose interval for the effect holds
zero is not distinguishable from no effect.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from churn_platform.business.declaration import CONTROL, TREATED

REQUIRED = ("campaign", "arm", "churned", "mrr", "cost")


@dataclasses.dataclass(frozen=True)
class CampaignEffect:
    campaign: str
    treated: int
    control: int
    matured: int
    """Contacts whose horizon has passed (the effect is measured on these)."""
    churn_treated: float | None
    churn_control: float | None
    effect: float | None
    """Control churn rate minus treated churn rate: above 0, the contact kept customers."""
    effect_low: float | None
    effect_high: float | None
    saved_customers: float | None
    saved_customers_low: float | None
    saved_customers_high: float | None
    saved_mrr: float | None
    saved_mrr_low: float | None
    saved_mrr_high: float | None
    cost: float
    roi: float | None
    """(saved monthly revenue × the months it is worth − cost) / cost."""
    verdict: str
    """``kept customers``, ``lost customers``, ``no effect distinguishable from zero`` or ``not matured``."""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_ALWAYS_KNOWN = ("campaign", "treated", "control", "matured", "cost", "verdict")


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def campaign_effect(
    contacts: pd.DataFrame,
    value_months: float = 12.0,
    level: float = 0.9,
    resamples: int = 2_000,
    seed: int = 0,
    min_per_arm: int = 20,
) -> list[CampaignEffect]:
    """The effect of each campaign in ``contacts`` (one row per contact: campaign, arm, churned — True,
    False, or empty while its horizon has not passed — the customer's monthly revenue at contact, and
    the contact's cost). A campaign with fewer than ``min_per_arm`` matured contacts in an arm is
    ``not matured``."""
    missing = sorted(set(REQUIRED) - set(contacts.columns))
    if missing:
        raise ValueError(f"the contacts lack columns {missing}")
    out = []
    for campaign, rows in contacts.groupby("campaign", sort=True):
        out.append(_one(str(campaign), rows, value_months, level, resamples, seed, min_per_arm))
    return out


def _one(campaign, rows, value_months, level, resamples, seed, min_per_arm) -> CampaignEffect:
    arm = rows["arm"].astype(str)
    cost = float(rows.loc[arm == TREATED, "cost"].fillna(0).sum())
    n_treated, n_control = int((arm == TREATED).sum()), int((arm == CONTROL).sum())
    matured = rows[rows["churned"].notna()]
    m_arm = matured["arm"].astype(str)
    churned = matured["churned"].astype(bool).to_numpy()
    lost = churned * matured["mrr"].fillna(0).to_numpy(dtype=np.float64)
    t, c = (m_arm == TREATED).to_numpy(), (m_arm == CONTROL).to_numpy()
    # Before it matures a campaign has counts and a cost, and every measure empty.
    empty = {f.name: None for f in dataclasses.fields(CampaignEffect) if f.name not in _ALWAYS_KNOWN}
    if t.sum() < min_per_arm or c.sum() < min_per_arm:
        return CampaignEffect(campaign, n_treated, n_control, len(matured), cost=cost, verdict="not matured", **empty)
    rng = np.random.default_rng([seed, *campaign.encode()])
    churn_t, churn_c, lost_t, lost_c = churned[t], churned[c], lost[t], lost[c]
    effects, mrr_effects = np.empty(resamples), np.empty(resamples)
    step = max(1, 2_000_000 // max(churn_t.size, churn_c.size))  # resamples at a time, in bounded memory
    for first in range(0, resamples, step):
        k = min(step, resamples - first)
        it = rng.integers(0, churn_t.size, size=(k, churn_t.size))
        ic = rng.integers(0, churn_c.size, size=(k, churn_c.size))
        effects[first : first + k] = churn_c[ic].mean(axis=1) - churn_t[it].mean(axis=1)
        mrr_effects[first : first + k] = lost_c[ic].mean(axis=1) - lost_t[it].mean(axis=1)
    effect = float(churn_c.mean() - churn_t.mean())
    low, high = _interval(effects, level)
    mrr_effect = float(lost_c.mean() - lost_t.mean())
    mrr_low, mrr_high = _interval(mrr_effects, level)
    saved_mrr = mrr_effect * n_treated
    if low > 0:
        verdict = "kept customers"
    elif high < 0:
        verdict = "lost customers"
    else:
        verdict = "no effect distinguishable from zero"
    return CampaignEffect(
        campaign=campaign,
        treated=n_treated,
        control=n_control,
        matured=len(matured),
        churn_treated=float(churn_t.mean()),
        churn_control=float(churn_c.mean()),
        effect=effect,
        effect_low=low,
        effect_high=high,
        saved_customers=effect * n_treated,
        saved_customers_low=low * n_treated,
        saved_customers_high=high * n_treated,
        saved_mrr=saved_mrr,
        saved_mrr_low=mrr_low * n_treated,
        saved_mrr_high=mrr_high * n_treated,
        cost=cost,
        roi=(saved_mrr * value_months - cost) / cost if cost > 0 else None,
        verdict=verdict,
    )


def effects_frame(effects: list[CampaignEffect]) -> pd.DataFrame:
    """The effects as a table, one row per campaign (no rows, the same columns, when there are none)."""
    columns = [f.name for f in dataclasses.fields(CampaignEffect)]
    return pd.DataFrame([e.as_dict() for e in effects], columns=columns)


def effect_chart(effects: list[CampaignEffect], path) -> bytes:
    """Saved customers per measured campaign with their interval, and each campaign's ROI; a PNG
    written to ``path`` and returned."""
    import io
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [e for e in effects if e.effect is not None]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    if measured:
        names = [e.campaign for e in measured]
        saved = np.array([e.saved_customers for e in measured])
        low = saved - np.array([e.saved_customers_low for e in measured])
        high = np.array([e.saved_customers_high for e in measured]) - saved
        colours = [
            "tab:green" if e.verdict == "kept customers" else "tab:red" if e.verdict == "lost customers" else "tab:grey"
            for e in measured
        ]
        ax.bar(names, saved, yerr=[low, high], capsize=6, color=colours)
        for i, e in enumerate(measured):
            roi = "n/a" if e.roi is None else f"{e.roi:+.0%}"
            ax.annotate(f"ROI {roi}", (i, saved[i]), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel("customers kept (treated arm), with interval")
    else:
        ax.text(0.5, 0.5, "no campaign has matured yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title("Campaign effect against the control arm (green: kept, red: lost, grey: not distinguishable)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    png = buffer.getvalue()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(png)
    return png
