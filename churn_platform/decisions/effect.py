"""What a campaign did: its treated customers' outcomes against its randomly held-out controls.

The control arm is what the treated arm would have done without the contact, so the difference of
their churn rates is the campaign's effect, free of whom the targeting chose. Saved customers and
saved monthly revenue scale the per-customer effect to the treated arm; a percentile bootstrap
(resampling each arm, seeded) gives their intervals. A campaign whose interval for the effect holds
zero is not distinguishable from no effect.

When every matured contact carries the churn probability the platform scored before the contact
(``churn_probability_at_contact``), the effects are regression-adjusted (Lin's estimator: each arm's
mean is corrected by its own slope on the covariate toward the pooled covariate mean; the covariate
for saved revenue is that probability times the revenue). A covariate fixed before the contact
cannot be moved by it, so the estimate stays unbiased, and the part of the outcome's spread the
covariate explains leaves the interval: the same controls measure a campaign more precisely.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from churn_platform.business.declaration import CONTROL, TREATED

REQUIRED = ("campaign", "arm", "churned", "mrr", "cost")
COVARIATE = "churn_probability_at_contact"
"""The optional pre-contact churn probability the effects are adjusted by."""


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
    adjusted_by: str | None = None
    """The pre-contact covariate the effects were adjusted by, or None (a plain difference of means)."""
    interval_vs_unadjusted: float | None = None
    """The adjusted effect interval's width over the unadjusted one's (below 1: adjustment narrowed it)."""
    mrr_interval_vs_unadjusted: float | None = None
    """The same for saved revenue."""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_ALWAYS_KNOWN = ("campaign", "treated", "control", "matured", "cost", "verdict", "adjusted_by")


SCORE_WINDOW_DAYS = 62
"""How old a snapshot's score may be at a contact and still count as the score it was chosen by."""


def scores_at_contact(contacts: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """``contacts`` with ``churn_probability_at_contact``: each contact's customer's churn probability
    at the latest scored snapshot on or before the contact day (and at most ``SCORE_WINDOW_DAYS``
    before it), as first scored (a version trained later, on what followed the contact, does not
    count). Empty where no such score exists. ``history`` holds customer_id, snapshot_date,
    churn_probability and scored_at (``scores.churn_scores_history``)."""
    out = contacts.drop(columns=[COVARIATE], errors="ignore").reset_index(drop=True)
    out[COVARIATE] = np.nan
    if history.empty or out.empty:
        return out
    keys = pd.DataFrame(
        {
            "row": np.arange(len(out)),
            "customer_id": out["customer_id"].astype(str),
            "contact_date": pd.to_datetime(out["contact_date"]),
        }
    )
    scored = history.assign(
        customer_id=history["customer_id"].astype(str), snapshot_date=pd.to_datetime(history["snapshot_date"])
    )
    pairs = keys.merge(scored, on="customer_id")
    age = pairs["contact_date"] - pairs["snapshot_date"]
    pairs = pairs[(age >= pd.Timedelta(0)) & (age < pd.Timedelta(days=SCORE_WINDOW_DAYS))]
    pairs = pairs.sort_values(["row", "snapshot_date", "scored_at"], ascending=[True, False, True])
    first = pairs.drop_duplicates("row")
    out.loc[first["row"].to_numpy(), COVARIATE] = first["churn_probability"].to_numpy(dtype=np.float64)
    return out


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
    the contact's cost; optionally ``churn_probability_at_contact``, which the effects are then
    adjusted by where every matured contact of a campaign has it). A campaign with fewer than
    ``min_per_arm`` matured contacts in an arm is ``not matured``."""
    missing = sorted(set(REQUIRED) - set(contacts.columns))
    if missing:
        raise ValueError(f"the contacts lack columns {missing}")
    out = []
    for campaign, rows in contacts.groupby("campaign", sort=True):
        out.append(_one(str(campaign), rows, value_months, level, resamples, seed, min_per_arm))
    return out


def _difference(y_t, y_c, it, ic, x_t=None, x_c=None) -> np.ndarray:
    """Control mean minus treated mean of ``y`` over the resamples ``it``/``ic`` (rows of indices);
    with a covariate, each arm's mean is first adjusted by its own least-squares slope on ``x`` to the
    pooled covariate mean (Lin's regression adjustment)."""
    yt, yc = y_t[it], y_c[ic]
    if x_t is None:
        return yc.mean(axis=1) - yt.mean(axis=1)
    xt, xc = x_t[it], x_c[ic]
    pooled = (xt.sum(axis=1) + xc.sum(axis=1)) / (xt.shape[1] + xc.shape[1])

    def adjusted(y, x):
        y_mean, x_mean = y.mean(axis=1), x.mean(axis=1)
        spread = (x * x).mean(axis=1) - x_mean**2
        together = (x * y).mean(axis=1) - x_mean * y_mean
        slope = np.divide(together, spread, out=np.zeros_like(spread), where=spread > 1e-12)
        return y_mean - slope * (x_mean - pooled)

    return adjusted(yc, xc) - adjusted(yt, xt)


def _one(campaign, rows, value_months, level, resamples, seed, min_per_arm) -> CampaignEffect:
    arm = rows["arm"].astype(str)
    cost = float(rows.loc[arm == TREATED, "cost"].fillna(0).sum())
    n_treated, n_control = int((arm == TREATED).sum()), int((arm == CONTROL).sum())
    matured = rows[rows["churned"].notna()]
    m_arm = matured["arm"].astype(str)
    churned = matured["churned"].astype(bool).to_numpy(dtype=np.float64)
    mrr = matured["mrr"].fillna(0).to_numpy(dtype=np.float64)
    lost = churned * mrr
    t, c = (m_arm == TREATED).to_numpy(), (m_arm == CONTROL).to_numpy()
    # Before it matures a campaign has counts and a cost, and every measure empty.
    empty = {f.name: None for f in dataclasses.fields(CampaignEffect) if f.name not in _ALWAYS_KNOWN}
    if t.sum() < min_per_arm or c.sum() < min_per_arm:
        return CampaignEffect(campaign, n_treated, n_control, len(matured), cost=cost, verdict="not matured", **empty)
    adjusted = COVARIATE in matured.columns and bool(matured[COVARIATE].notna().all())
    p = matured[COVARIATE].to_numpy(dtype=np.float64) if adjusted else np.zeros(len(matured))
    # The outcomes, each with its covariate: churn with the probability, lost revenue with the
    # revenue the probability puts at risk.
    outcomes = ((churned, p), (lost, p * mrr))
    rng = np.random.default_rng([seed, *campaign.encode()])
    n_t, n_c = int(t.sum()), int(c.sum())
    whole_t, whole_c = np.arange(n_t)[None, :], np.arange(n_c)[None, :]
    point, samples, plain = [], [], []
    for y, x in outcomes:
        covariate = (x[t], x[c]) if adjusted else (None, None)
        point.append(float(_difference(y[t], y[c], whole_t, whole_c, *covariate)[0]))
        samples.append(np.empty(resamples))
        plain.append(np.empty(resamples))
    step = max(1, 1_000_000 // max(n_t, n_c))  # resamples at a time, in bounded memory
    for first in range(0, resamples, step):
        k = min(step, resamples - first)
        it = rng.integers(0, n_t, size=(k, n_t))
        ic = rng.integers(0, n_c, size=(k, n_c))
        for i, (y, x) in enumerate(outcomes):
            plain[i][first : first + k] = _difference(y[t], y[c], it, ic)
            if adjusted:
                samples[i][first : first + k] = _difference(y[t], y[c], it, ic, x[t], x[c])
    if not adjusted:
        samples = plain
    (low, high), (mrr_low, mrr_high) = (_interval(s, level) for s in samples)

    def width_ratio(i: int, low: float, high: float) -> float | None:
        plain_low, plain_high = _interval(plain[i], level)
        return (high - low) / (plain_high - plain_low) if adjusted and plain_high > plain_low else None

    effect, mrr_effect = point
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
        churn_treated=float(churned[t].mean()),
        churn_control=float(churned[c].mean()),
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
        adjusted_by=COVARIATE if adjusted else None,
        interval_vs_unadjusted=width_ratio(0, low, high),
        mrr_interval_vs_unadjusted=width_ratio(1, mrr_low, mrr_high),
    )


@dataclasses.dataclass(frozen=True)
class CampaignPower:
    """What a worklist's control arm can measure, before the campaign runs."""

    expected_effect: float
    """The mean fall in churn probability the targeting expects among the contacted."""
    detectable_effect: float
    """The smallest true effect the campaign's controls tell from zero with ``power`` at ``level``."""
    controls_for_expected: int | None
    """The controls the expected effect needs, with as many contacted (None: no number of controls is enough)."""


def campaign_power(
    churn_probability, expected_effect, n_treated: int, n_control: int, level: float = 0.9, power: float = 0.8
) -> CampaignPower:
    """A campaign's power from its worklist: ``churn_probability`` without a contact and
    ``expected_effect`` per selected customer, and the sizes of its arms. The normal approximation to
    the difference of two proportions, unadjusted (adjusting by the score, as ``campaign_effect`` does,
    only lowers the detectable effect)."""
    from statistics import NormalDist

    p = float(np.clip(np.mean(churn_probability), 1e-6, 1 - 1e-6)) if len(churn_probability) else 0.0
    expected = float(np.mean(expected_effect)) if len(expected_effect) else 0.0
    z = NormalDist().inv_cdf((1 + level) / 2) + NormalDist().inv_cdf(power)
    spread = p * (1 - p)
    if n_treated == 0 or n_control == 0 or spread == 0:
        return CampaignPower(expected, float("inf"), None)
    detectable = z * np.sqrt(spread * (1 / n_treated + 1 / n_control))
    room = (expected / z) ** 2 / spread - 1 / n_treated if expected > 0 else -1.0
    return CampaignPower(expected, float(detectable), int(np.ceil(1 / room)) if room > 0 else None)


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
