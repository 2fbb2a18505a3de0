"""A seeded simulation of a subscription business.

The simulation runs day by day over a window, vectorised over customers: every
day it updates each active customer's latent satisfaction, draws product usage,
support tickets and (on the billing day) an invoice, and then draws churn from
a hazard. Churned customers stop producing data.

Churn depends on behaviour that the sources reveal:

* latent satisfaction drives usage (declining usage precedes churn) and the
  number and tone of support tickets;
* failed payments and unresolved tickets lower satisfaction and raise the hazard;
* monthly contracts churn more than annual ones, long tenure protects, and a
  higher price per seat raises the hazard.

The true churn date is written to the ground truth (not to the sources), along
with the hazard-implied probability of churning within 30 days at each month
start, so that model quality can be compared with the best achievable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from churn_platform.simulation import retention
from churn_platform.simulation.businesses import BUSINESSES, declaration_path

SOURCE_NAMES = ("crm_customers", "usage_events", "billing_invoices", "support_tickets")
"""The B2B example's source files of its business's state (its retention contacts aside)."""
SOURCES_OF: dict[str, tuple[str, ...]] = {
    "saas_b2b": (*SOURCE_NAMES, "retention_actions"),
    "consumer_app": ("users", "subscriptions", "app_events", "payments", "offer_sends"),
}
"""Each built-in business's source files (``<name>.parquet``), as its declaration locates them."""
USAGE_SOURCE_OF = {"saas_b2b": "usage_events", "consumer_app": "app_events"}
"""Each built-in business's usage file, by far its largest: streamed to Parquet as it is simulated."""

PLANS = np.array(["basic", "pro", "enterprise"])
PLAN_SHARE = np.array([0.55, 0.35, 0.10])
PRICE_PER_SEAT = np.array([15.0, 40.0, 90.0])
CONTRACT_TYPES = np.array(["monthly", "annual"])
REGIONS = np.array(["na", "emea", "apac", "latam"])
REGION_SHARE = np.array([0.45, 0.30, 0.17, 0.08])
CHANNELS = np.array(["organic", "paid_search", "partner", "sales", "referral"])
CHANNEL_SHARE = np.array([0.35, 0.25, 0.12, 0.18, 0.10])
TICKET_CATEGORIES = np.array(["billing", "bug", "how_to", "feature_request", "outage"])
TICKET_PRIORITIES = np.array(["low", "medium", "high", "urgent"])
# Mean hours to resolve, by priority.
RESOLUTION_HOURS = np.array([72.0, 36.0, 12.0, 4.0])

DEFAULT_START = dt.date(2025, 1, 1)
DRIFT_SCENARIOS = ("none", "price_increase", "usage_shift")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    customers: int = 2_000
    days: int = 365
    seed: int = 7
    start_date: dt.date = DEFAULT_START
    # Share of customers who signed up before the window starts.
    existing_share: float = 0.65
    # A change in the business from a given day: "none", "price_increase" (prices
    # per seat rise 25%) or "usage_shift" (a product change: fewer sessions, more
    # feature use). Starts at drift_start_day (default: 45 days before the end).
    drift_scenario: str = "none"
    drift_start_day: int | None = None
    # Share of rows given faults (duplicates, null keys, negative amounts, unknown
    # categories, future timestamps, wrong types); each fault is recorded in the ground truth.
    fault_rate: float = 0.0
    # Which built-in business (see churn_platform/simulation/businesses): its sources' shape.
    business: str = "saas_b2b"
    # Simulate only the window's first until_day days: the business as known at the end of that
    # day (None: the whole window). The population, signups and drift are the whole window's, so
    # the sources up to that day are the same as the whole window's up to it.
    until_day: int | None = None

    def __post_init__(self) -> None:
        if self.business not in BUSINESSES:
            raise ValueError(f"business must be one of {', '.join(BUSINESSES)}, got {self.business!r}")
        if self.drift_scenario not in DRIFT_SCENARIOS:
            raise ValueError(f"drift_scenario must be one of {', '.join(DRIFT_SCENARIOS)}, got {self.drift_scenario!r}")
        if self.drift_start_day is not None and not 0 <= self.drift_start_day < self.days:
            raise ValueError(f"drift_start_day must lie in the window (0..{self.days - 1}), got {self.drift_start_day}")
        if not 0.0 <= self.fault_rate < 0.5:
            raise ValueError(f"fault_rate must be in [0, 0.5), got {self.fault_rate}")
        if self.customers < 1:
            raise ValueError(f"customers must be at least 1, got {self.customers}")
        if self.until_day is not None and not 1 <= self.until_day <= self.days:
            raise ValueError(f"until_day must lie in the window (1..{self.days}), got {self.until_day}")
        if self.days < 60:
            raise ValueError(
                f"days must be at least 60 (features look back 30 days and labels 30 ahead), got {self.days}"
            )

    @property
    def drift_start(self) -> int:
        return self.drift_start_day if self.drift_start_day is not None else max(0, self.days - 45)

    @property
    def end_date(self) -> dt.date:
        """The window's last day (inclusive)."""
        return self.start_date + dt.timedelta(days=self.days - 1)

    @property
    def simulated_days(self) -> int:
        """How many days are simulated: ``until_day``, else the whole window."""
        return self.days if self.until_day is None else self.until_day

    @property
    def known_until(self) -> dt.date:
        """The last simulated day (inclusive): the sources know nothing after it."""
        return self.start_date + dt.timedelta(days=self.simulated_days - 1)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["start_date"] = self.start_date.isoformat()
        return d


@dataclasses.dataclass
class GeneratedData:
    """A simulated business's source tables (by file name; each is also an attribute:
    ``data.crm_customers``) and its ground truth."""

    tables: dict[str, pd.DataFrame]
    churn_truth: pd.DataFrame
    churn_probability_truth: pd.DataFrame
    faults: pd.DataFrame = dataclasses.field(default_factory=lambda: pd.DataFrame(columns=["source", "row", "fault"]))
    business: str = "saas_b2b"
    retention_effect: pd.DataFrame | None = None
    """Each customer's true response to a retention offer (``retention.effect_truth``)."""

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value) -> None:
        if name in self.__dict__.get("tables", {}):
            self.tables[name] = value
        else:
            super().__setattr__(name, value)

    def sources(self) -> dict[str, pd.DataFrame]:
        return dict(self.tables)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _usage_frame(parts: list[tuple[np.ndarray, ...]], start: np.datetime64) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(
            {
                "customer_id": np.array([], dtype=np.int64),
                "event_date": np.array([], dtype="datetime64[us]"),
                "sessions": np.array([], dtype=np.int32),
                "minutes": np.array([], dtype=np.float64),
                "feature_uses": np.array([], dtype=np.int32),
            }
        )
    day = np.concatenate([p[1] for p in parts])
    return pd.DataFrame(
        {
            "customer_id": np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False),
            "event_date": (start + day.astype("timedelta64[D]")).astype("datetime64[us]"),
            "sessions": np.concatenate([p[2] for p in parts]).astype(np.int32, copy=False),
            "minutes": np.concatenate([p[3] for p in parts]).astype(np.float64, copy=False),
            "feature_uses": np.concatenate([p[4] for p in parts]).astype(np.int32, copy=False),
        }
    )


def generate(
    config: GeneratorConfig,
    progress: Callable[[int, int], None] | None = None,
    usage_sink: Callable[[pd.DataFrame], None] | None = None,
    actions: pd.DataFrame | None = None,
) -> GeneratedData:
    """Simulate ``config.business``. Deterministic for a given config and ``actions``: retention
    contacts (the business's contacts source, see ``retention.actions_source``), whose treated
    customers' hazards change from the contact on (see ``retention``)."""
    if config.business == "consumer_app":
        if usage_sink is not None and config.fault_rate > 0:
            raise ValueError("fault injection needs the whole usage table: generate without a usage sink")
        from churn_platform.simulation.consumer import generate_consumer

        made = generate_consumer(config, progress=progress, events_sink=usage_sink, actions=actions)
        truth, probability = made.pop("churn_truth"), made.pop("churn_probability_truth")
        effect = made.pop("retention_effect")
        data = GeneratedData(made, truth, probability, business=config.business, retention_effect=effect)
        return inject_faults(data, config.fault_rate, seed=config.seed) if config.fault_rate > 0 else data
    return _generate_b2b(config, progress, usage_sink, actions)


def _generate_b2b(
    config: GeneratorConfig,
    progress: Callable[[int, int], None] | None = None,
    usage_sink: Callable[[pd.DataFrame], None] | None = None,
    actions: pd.DataFrame | None = None,
) -> GeneratedData:
    """Simulate the B2B business. Deterministic for a given config.

    With ``usage_sink``, usage events (by far the largest source) are handed over in
    chunks of about a month as they are simulated, instead of being kept in memory;
    the returned ``usage_events`` is then empty. Fault injection needs the whole
    table and is not available with a sink.
    """
    if usage_sink is not None and config.fault_rate > 0:
        raise ValueError("fault injection needs the whole usage table: generate without a usage sink")
    rng = np.random.default_rng(config.seed)
    n, days = config.customers, config.days
    start = np.datetime64(config.start_date, "D")

    # ---- static customer attributes -------------------------------------------------
    customer_id = np.arange(1, n + 1, dtype=np.int64)
    plan_idx = rng.choice(3, size=n, p=PLAN_SHARE)
    seat_median = np.array([2.0, 8.0, 60.0])[plan_idx]
    seats = np.maximum(1, np.round(rng.lognormal(np.log(seat_median), 0.6))).astype(np.int64)
    monthly_share = np.array([0.75, 0.5, 0.2])[plan_idx]
    contract_idx = (rng.random(n) >= monthly_share).astype(np.int64)  # 0 monthly, 1 annual
    region_idx = rng.choice(len(REGIONS), size=n, p=REGION_SHARE)
    channel_idx = rng.choice(len(CHANNELS), size=n, p=CHANNEL_SHARE)
    segment = np.where(seats >= 50, "enterprise", np.where(seats >= 10, "mid_market", "smb"))
    # Existing customers signed up up to four years before the window; new ones during it.
    existing = rng.random(n) < config.existing_share
    signup_offset = np.where(
        existing,
        -rng.integers(1, 4 * 365, size=n),
        rng.integers(0, max(1, days - 30), size=n),
    ).astype(np.int64)
    signup_date = start + signup_offset.astype("timedelta64[D]")
    # Invoices fall on the signup day of the month (the 28th at the latest).
    day_of_month_signup = (signup_date - signup_date.astype("datetime64[M]")).astype(np.int64) + 1
    billing_day = np.minimum(day_of_month_signup, 28)
    contract_discount = np.where(contract_idx == 1, 0.85, 1.0)
    price_per_seat = PRICE_PER_SEAT[plan_idx] * contract_discount
    price_index = np.log(price_per_seat / 30.0)
    initial_plan_idx = plan_idx.copy()
    initial_seats = seats.copy()
    change_parts: list[tuple[np.ndarray, ...]] = []
    drift_start = config.drift_start

    # ---- latent state -----------------------------------------------------------------
    base_usage = rng.lognormal(np.log(1.2 + 0.25 * np.log1p(seats)), 0.35)
    mu_satisfaction = rng.normal(0.0, 0.6, size=n)
    # Days left in a disengagement episode: satisfaction slides and usage declines.
    disengaging = np.zeros(n, dtype=np.int64)
    satisfaction = mu_satisfaction + rng.normal(0.0, 0.4, size=n)
    payment_risk = rng.beta(1.2, 30.0, size=n)  # per-invoice failure propensity
    failed_pressure = np.zeros(n)  # decaying count of recent failed payments
    open_ticket_hours = np.zeros(n)  # hours of unresolved tickets outstanding (decays)
    churned = np.zeros(n, dtype=bool)
    churn_day = np.full(n, -1, dtype=np.int64)

    # ---- retention offers: each customer's true response (its own random stream) --------
    # Monthly contracts, a high price per seat and payment trouble make a customer persuadable;
    # annual customers who barely use the product are the sleeping dogs.
    offer_segment, offer_ratio = retention.draw_effects(
        config.seed,
        persuadable_logit=-1.2
        + 0.9 * (contract_idx == 0)
        + 0.7 * retention.standardised(price_index)
        + 0.6 * retention.standardised(np.log(payment_risk)),
        sleeping_dog_logit=-3.0 + 1.4 * (contract_idx == 1) - 1.0 * retention.standardised(np.log(base_usage)),
    )

    def index_of(keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        return np.where((keys >= 1) & (keys <= n), keys - 1, -1)

    treatments = (
        None if actions is None else retention.Treatments(config.business, actions, index_of, start, offer_ratio)
    )

    usage_parts: list[tuple[np.ndarray, ...]] = []
    invoice_parts: list[tuple[np.ndarray, ...]] = []
    ticket_parts: list[tuple[np.ndarray, ...]] = []
    truth_parts: list[tuple[np.ndarray, ...]] = []

    start_day_num = int(start.astype("int64"))
    last = config.simulated_days
    for t in range(last):
        day = start + np.timedelta64(t, "D")
        active = (signup_offset <= t) & ~churned
        idx = np.flatnonzero(active)
        if idx.size == 0:
            if progress:
                progress(t + 1, last)
            continue
        m = idx.size
        s = satisfaction[idx]
        tenure_days = (t - signup_offset[idx]).astype(np.float64)

        # Disengagement episodes start at random and pull satisfaction down for 60 days.
        starting = (disengaging[idx] == 0) & (rng.random(m) < 0.0025)
        disengaging[idx[starting]] = 60
        sliding = disengaging[idx] > 0
        mu_satisfaction[idx[sliding]] -= 0.03
        disengaging[idx[sliding]] -= 1

        # Satisfaction: mean-reverting random walk with shocks.
        s = s + 0.05 * (mu_satisfaction[idx] - s) + rng.normal(0.0, 0.08, size=m)
        s -= 0.004 * np.minimum(open_ticket_hours[idx], 200.0) / 24.0

        # Usage: sessions scale with satisfaction and seats; weekends are quieter.
        weekday = (start_day_num + t + 3) % 7  # 0 = Monday
        weekend_factor = 0.35 if weekday >= 5 else 1.0
        drifting = config.drift_scenario != "none" and t >= drift_start
        usage_factor = 0.75 if drifting and config.drift_scenario == "usage_shift" else 1.0
        feature_factor = 1.3 if drifting and config.drift_scenario == "usage_shift" else 1.0
        price_factor = 1.25 if drifting and config.drift_scenario == "price_increase" else 1.0
        lam = base_usage[idx] * np.exp(1.0 * s) * weekend_factor * usage_factor * (1.0 + 0.15 * np.log1p(seats[idx]))
        sessions = rng.poisson(lam)
        used = sessions > 0
        if used.any():
            u_idx = idx[used]
            u_sessions = sessions[used]
            minutes = np.round(u_sessions * rng.gamma(3.0, 4.0, size=u_sessions.size), 1)
            feature_uses = rng.poisson(u_sessions * 1.6 * feature_factor * np.exp(0.35 * s[used]))
            usage_parts.append(
                (
                    customer_id[u_idx],
                    np.full(u_idx.size, t, dtype=np.int32),
                    u_sessions.astype(np.int32),
                    minutes,
                    feature_uses.astype(np.int32),
                )
            )

        # Support tickets: dissatisfied and larger customers open more.
        ticket_rate = 0.012 * np.power(seats[idx], 0.3) * np.exp(-0.7 * s)
        opened = rng.random(m) < ticket_rate
        open_ticket_hours[idx] *= 0.9
        if opened.any():
            k = int(opened.sum())
            t_idx = idx[opened]
            s_t = s[opened]
            priority = np.minimum(rng.poisson(np.exp(-0.4 * s_t) * 0.9, size=k), 3)
            category = rng.choice(len(TICKET_CATEGORIES), size=k, p=[0.18, 0.32, 0.25, 0.15, 0.10])
            created_seconds = rng.integers(0, 86_400, size=k)
            hours = rng.exponential(RESOLUTION_HOURS[priority] * np.exp(-0.3 * s_t))
            csat = np.clip(np.round(3.4 + 0.9 * s_t - 0.004 * hours + rng.normal(0, 0.7, size=k)), 1, 5)
            # Some tickets are still open when the window closes.
            ticket_parts.append(
                (
                    customer_id[t_idx],
                    np.full(k, t, dtype=np.int32),
                    created_seconds,
                    hours,
                    category,
                    priority,
                    csat,
                )
            )
            open_ticket_hours[t_idx] += hours
            s[opened] -= 0.05 + 0.05 * (csat <= 2)

        # Billing: one invoice a month on the customer's billing day.
        day_of_month = int(str(day)[8:10])
        billed = (billing_day[idx] == day_of_month) & (tenure_days > 0)
        if billed.any():
            b_idx = idx[billed]
            k = b_idx.size
            amount = np.round(price_per_seat[b_idx] * price_factor * seats[b_idx], 2)
            p_fail = _sigmoid(np.log(payment_risk[b_idx] / (1 - payment_risk[b_idx])) - 0.8 * s[billed])
            u = rng.random(k)
            status = np.where(u < p_fail, 2, np.where(u < p_fail + 0.08, 1, 0))  # 0 paid, 1 late, 2 failed
            pay_delay = np.where(status == 0, rng.integers(0, 4, size=k), rng.integers(8, 35, size=k))
            invoice_parts.append((b_idx, np.full(k, t, dtype=np.int32), amount, status, pay_delay))
            failed = status == 2
            failed_pressure[b_idx[failed]] += 1.0
            s[billed] -= 0.12 * failed
        failed_pressure[idx] *= 0.985

        satisfaction[idx] = s

        # CRM changes: satisfied customers add seats or upgrade, unhappy ones cut back.
        changing = (rng.random(m) < 0.0015) & (tenure_days > 30) & (np.abs(s) > 0.4)
        if changing.any():
            c_idx = idx[changing]
            up = s[changing] > 0
            k = c_idx.size
            new_seats = np.where(up, np.ceil(seats[c_idx] * 1.3), np.maximum(1, np.floor(seats[c_idx] * 0.75))).astype(
                np.int64
            )
            plan_move = rng.random(k) < 0.3
            new_plan = np.clip(plan_idx[c_idx] + np.where(plan_move, np.where(up, 1, -1), 0), 0, 2)
            seats[c_idx] = new_seats
            plan_idx[c_idx] = new_plan
            price_per_seat[c_idx] = PRICE_PER_SEAT[new_plan] * contract_discount[c_idx]
            price_index[c_idx] = np.log(price_per_seat[c_idx] / 30.0)
            change_parts.append(
                (c_idx, np.full(k, t, dtype=np.int64), rng.integers(0, 86_400, size=k), new_plan, new_seats)
            )

        # Churn hazard.
        tenure_months = tenure_days / 30.4
        logit = (
            -7.9
            - 1.5 * s
            + 0.75 * failed_pressure[idx]
            + 0.12 * np.minimum(open_ticket_hours[idx], 240.0) / 24.0
            + 1.1 * (contract_idx[idx] == 0)
            - 0.3 * np.log1p(tenure_months)
            + 0.35 * (price_index[idx] + np.log(price_factor))
        )
        hazard = _sigmoid(logit)
        actual = hazard if treatments is None else np.minimum(hazard * treatments.multiplier(idx, t), 0.999)
        if str(day)[8:10] == "01":
            truth_parts.append(
                (
                    customer_id[idx],
                    np.full(m, t, dtype=np.int32),
                    1.0 - np.power(1.0 - actual, 30),
                    retention.thirty_day(hazard).astype(np.float32),
                    retention.thirty_day(hazard * offer_ratio[idx]).astype(np.float32),
                    (price_per_seat[idx] * price_factor * seats[idx]).astype(np.float32),
                )
            )
        leaving = rng.random(m) < actual
        if leaving.any():
            l_idx = idx[leaving]
            churned[l_idx] = True
            churn_day[l_idx] = t
        if usage_sink is not None and (t % 30 == 29 or t == last - 1) and usage_parts:
            usage_sink(_usage_frame(usage_parts, start))
            usage_parts.clear()
        if progress:
            progress(t + 1, last)

    # ---- assemble tables --------------------------------------------------------------
    def cat(parts: list[tuple[np.ndarray, ...]], i: int, dtype) -> np.ndarray:
        if not parts:
            return np.array([], dtype=dtype)
        return np.concatenate([p[i] for p in parts]).astype(dtype, copy=False)

    churn_date = np.where(churn_day >= 0, start + churn_day.astype("timedelta64[D]"), np.datetime64("NaT"))
    window_end = np.datetime64(config.known_until, "D")
    # Customers who signed up after the window are never seen.
    seen = signup_offset < last
    # CRM versions: the state at signup (or at the window start), every change, and the cancellation.
    first_seen = np.maximum(signup_date, start).astype("datetime64[us]")
    static = {
        "signup_date": signup_date.astype("datetime64[us]"),
        "contract_type": CONTRACT_TYPES[contract_idx],
        "region": REGIONS[region_idx],
        "segment": segment,
        "acquisition_channel": CHANNELS[channel_idx],
    }

    def crm_versions(rows: np.ndarray, plan: np.ndarray, n_seats: np.ndarray, cancelled, updated) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": customer_id[rows],
                "signup_date": static["signup_date"][rows],
                "plan": PLANS[plan],
                "contract_type": static["contract_type"][rows],
                "region": static["region"][rows],
                "segment": static["segment"][rows],
                "seats": n_seats.astype(np.int64),
                "acquisition_channel": static["acquisition_channel"][rows],
                "cancelled_at": pd.to_datetime(cancelled).astype("datetime64[us]"),
                "updated_at": pd.to_datetime(updated).astype("datetime64[us]"),
            }
        )

    seen_rows = np.flatnonzero(signup_offset < last)
    versions = [
        crm_versions(
            seen_rows,
            initial_plan_idx[seen_rows],
            initial_seats[seen_rows],
            np.full(seen_rows.size, np.datetime64("NaT"), dtype="datetime64[us]"),
            first_seen[seen_rows],
        )
    ]
    if change_parts:
        c_rows = np.concatenate([p[0] for p in change_parts])
        c_when = (start + np.concatenate([p[1] for p in change_parts]).astype("timedelta64[D]")).astype(
            "datetime64[us]"
        ) + np.concatenate([p[2] for p in change_parts]).astype("timedelta64[s]")
        versions.append(
            crm_versions(
                c_rows,
                np.concatenate([p[3] for p in change_parts]),
                np.concatenate([p[4] for p in change_parts]),
                np.full(c_rows.size, np.datetime64("NaT"), dtype="datetime64[us]"),
                c_when,
            )
        )
    # A cancellation is the last CRM write of its day (after any change made that day).
    gone = np.flatnonzero(churn_day >= 0)
    if gone.size:
        cancelled = churn_date[gone].astype("datetime64[us]")
        versions.append(
            crm_versions(gone, plan_idx[gone], seats[gone], cancelled, cancelled + np.timedelta64(86_399_999_999, "us"))
        )
    crm = (
        pd.concat(versions, ignore_index=True)
        .sort_values(["customer_id", "updated_at"], kind="stable")
        .reset_index(drop=True)
    )

    usage = _usage_frame(usage_parts, start)

    i_cust = cat(invoice_parts, 0, np.int64)
    i_day = cat(invoice_parts, 1, np.int32)
    i_status = cat(invoice_parts, 3, np.int64)
    i_delay = cat(invoice_parts, 4, np.int64)
    invoice_date = start + i_day.astype("timedelta64[D]")
    paid_at = np.where(i_status == 2, np.datetime64("NaT"), invoice_date + i_delay.astype("timedelta64[D]"))
    # A payment that lands after the window closes is not known yet.
    paid_at = np.where(paid_at > window_end, np.datetime64("NaT"), paid_at)
    status_names = np.array(["paid", "late", "failed"])[i_status]
    status_names = np.where((i_status != 2) & np.isnat(paid_at), "open", status_names)
    invoices = pd.DataFrame(
        {
            "invoice_id": np.arange(1, i_cust.size + 1, dtype=np.int64),
            "customer_id": customer_id[i_cust] if i_cust.size else np.array([], dtype=np.int64),
            "invoice_date": invoice_date.astype("datetime64[us]"),
            "amount": cat(invoice_parts, 2, np.float64),
            "status": status_names,
            "paid_at": pd.to_datetime(paid_at).astype("datetime64[us]"),
        }
    )

    t_day = cat(ticket_parts, 1, np.int64)
    created = (start + t_day.astype("timedelta64[D]")).astype("datetime64[us]") + cat(ticket_parts, 2, np.int64).astype(
        "timedelta64[s]"
    )
    resolved = created + (cat(ticket_parts, 3, np.float64) * 3600).astype(np.int64).astype("timedelta64[s]")
    window_close = (window_end + np.timedelta64(1, "D")).astype("datetime64[us]")
    still_open = resolved >= window_close
    resolved = np.where(still_open, np.datetime64("NaT"), resolved)
    csat = cat(ticket_parts, 6, np.float64)
    tickets = pd.DataFrame(
        {
            "ticket_id": np.arange(1, created.size + 1, dtype=np.int64),
            "customer_id": cat(ticket_parts, 0, np.int64),
            "created_at": pd.to_datetime(created).astype("datetime64[us]"),
            "resolved_at": pd.to_datetime(resolved).astype("datetime64[us]"),
            "category": TICKET_CATEGORIES[cat(ticket_parts, 4, np.int64)],
            "priority": TICKET_PRIORITIES[cat(ticket_parts, 5, np.int64)],
            # Satisfaction is only asked once a ticket is resolved.
            "satisfaction_score": pd.array(np.where(still_open, np.nan, csat), dtype="Int64"),
        }
    )

    churn_truth = pd.DataFrame(
        {
            "customer_id": customer_id,
            "churn_date": pd.to_datetime(churn_date).astype("datetime64[us]"),
        }
    )[seen].reset_index(drop=True)
    p_day = cat(truth_parts, 1, np.int64)
    probability_truth = pd.DataFrame(
        {
            "customer_id": cat(truth_parts, 0, np.int64),
            "snapshot_date": (start + p_day.astype("timedelta64[D]")).astype("datetime64[us]"),
            "churn_probability_30d": cat(truth_parts, 2, np.float64),
            **retention.truth_columns(truth_parts),
        }
    )
    tables = {
        "crm_customers": crm,
        "usage_events": usage,
        "billing_invoices": invoices,
        "support_tickets": tickets,
        "retention_actions": retention.actions_table(config.business, actions, window_end),
    }
    effect = retention.effect_truth(customer_id, offer_segment, offer_ratio)[seen].reset_index(drop=True)
    data = GeneratedData(tables, churn_truth, probability_truth, business=config.business, retention_effect=effect)
    if config.fault_rate > 0:
        data = inject_faults(data, config.fault_rate, seed=config.seed)
    return data


# Per source: (key column, numeric columns that must not be negative, categorical columns with
# declared values, time column, a required column that is neither key nor time). A fault is only
# injected where the source's declaration makes it a contract rule: every fault is caught.
_FAULT_TARGETS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str, str]] = {
    "crm_customers": (
        "customer_id",
        ("seats",),
        ("plan", "contract_type", "region"),
        "updated_at",
        "acquisition_channel",
    ),
    "usage_events": ("customer_id", ("sessions", "minutes"), (), "event_date", "feature_uses"),
    "billing_invoices": ("invoice_id", ("amount",), ("status",), "invoice_date", "customer_id"),
    # Category and priority are not declared (not features): their faults would go unseen.
    "support_tickets": ("ticket_id", ("satisfaction_score",), (), "created_at", "created_at"),
    # The consumer app declares no vocabularies (any country or plan is accepted) and users have no numbers.
    "users": ("user_key", (), (), "created_at", "created_at"),
    "subscriptions": ("subscription_ref", ("price_eur_month", "seats"), (), "start_ts", "user_key"),
    "app_events": ("user_key", (), (), "event_ts", "event_ts"),
    "payments": ("payment_ref", ("amount_eur",), (), "charged_at", "user_key"),
    "retention_actions": ("action_id", ("cost",), ("arm",), "contacted_at", "campaign"),
    "offer_sends": ("send_ref", ("cost_eur",), ("group_name",), "sent_at", "campaign_name"),
}
# Text in a numeric column: the column of each source it goes into (default: its first checked number).
_WRONG_TYPE_TARGET = {"app_events": "seconds_listened"}
FAULT_KINDS = (
    "duplicate",
    "null_key",
    "null_value",
    "negative_value",
    "unknown_category",
    "future_timestamp",
    "wrong_type",
)


def inject_faults(data: GeneratedData, rate: float, seed: int) -> GeneratedData:
    """Give ``rate`` of each source's rows one fault each; record every fault in ``data.faults``.

    Faults: an exact duplicate row (appended), an empty key, an empty required value, a negative
    value, an unknown category, a timestamp in 2099, or text in a numeric column (the column is then stored
    as text, as a CSV export would). Each faulty row violates its contract in exactly one way.
    """
    rng = np.random.default_rng([seed, 9_001])
    records: list[pd.DataFrame] = []
    out: dict[str, pd.DataFrame] = {}
    for name in data.tables:
        frame = getattr(data, name).copy()
        key, numeric, categorical, time_col, required = _FAULT_TARGETS[name]
        wrong_type = _WRONG_TYPE_TARGET.get(name, numeric[0] if numeric else None)
        kinds = [
            k
            for k in FAULT_KINDS
            if not (k == "unknown_category" and not categorical)
            and not (k == "negative_value" and not numeric)
            and not (k == "wrong_type" and wrong_type is None)
        ]
        n_faults = round(rate * len(frame))
        rows = rng.choice(len(frame), size=n_faults, replace=False)
        kind_of = np.array(kinds)[rng.integers(0, len(kinds), size=n_faults)]
        by_kind = {k: np.sort(rows[kind_of == k]) for k in kinds}

        if by_kind["null_key"].size:
            frame[key] = frame[key].astype("Int64" if pd.api.types.is_integer_dtype(frame[key]) else object)
            frame.loc[by_kind["null_key"], key] = pd.NA if pd.api.types.is_integer_dtype(frame[key]) else None
        if by_kind["null_value"].size:
            if pd.api.types.is_integer_dtype(frame[required]):
                frame[required] = frame[required].astype("Int64")
                frame.loc[by_kind["null_value"], required] = pd.NA
            else:
                frame[required] = frame[required].astype(object)
                frame.loc[by_kind["null_value"], required] = None
        negative = by_kind.get("negative_value", np.array([], dtype=np.int64))
        column_choice = rng.integers(0, max(len(numeric), 1), size=negative.size)
        for i, col in enumerate(numeric):
            target = negative[column_choice == i]
            if target.size:
                if pd.api.types.is_integer_dtype(frame[col]):
                    frame.loc[target, col] = -3
                else:
                    frame[col] = frame[col].astype("float64")
                    frame.loc[target, col] = -np.abs(frame.loc[target, col].fillna(1.0)) - 1.0
        if categorical and by_kind["unknown_category"].size:
            unknown = by_kind["unknown_category"]
            column_choice = rng.integers(0, len(categorical), size=unknown.size)
            for i, col in enumerate(categorical):
                frame.loc[unknown[column_choice == i], col] = "unknown_" + col
        if by_kind["future_timestamp"].size:
            frame.loc[by_kind["future_timestamp"], time_col] = pd.Timestamp("2099-01-01")
        if by_kind.get("wrong_type", np.array([])).size:
            # A numeric column with text in it arrives as a text column, as from a CSV export.
            text = frame[wrong_type].astype("string")
            text[by_kind["wrong_type"]] = "n/a"
            frame[wrong_type] = text
        single = np.concatenate([by_kind[k] for k in kinds if k != "duplicate"])
        single_kinds = np.concatenate([np.full(by_kind[k].size, k) for k in kinds if k != "duplicate"])
        records.append(pd.DataFrame({"source": name, "row": single, "fault": single_kinds}))
        duplicates = by_kind["duplicate"]
        if duplicates.size:
            first_new = len(frame)
            frame = pd.concat([frame, frame.iloc[duplicates]], ignore_index=True)
            records.append(
                pd.DataFrame(
                    {"source": name, "row": np.arange(first_new, first_new + duplicates.size), "fault": "duplicate"}
                )
            )
        out[name] = frame
    faults = (
        pd.concat(records, ignore_index=True)
        .astype({"row": "int64"})
        .sort_values(["source", "row"])
        .reset_index(drop=True)
        if records
        else pd.DataFrame(columns=["source", "row", "fault"])
    )
    return dataclasses.replace(data, tables=out, faults=faults)


def generate_to_dir(
    config: GeneratorConfig,
    out: Path,
    fmt: str = "parquet",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[GeneratedData, dict[str, int]]:
    """Generate and write the sources; usage is streamed to Parquet in monthly chunks, so
    memory stays proportional to the number of customers, not customers × days."""
    if fmt != "parquet" or config.fault_rate > 0:
        data = generate(config, progress=progress)
        return data, write_sources(data, out, fmt=fmt)
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state: dict[str, object] = {"writer": None, "rows": 0}
    usage = USAGE_SOURCE_OF[config.business]
    path = out / f"{usage}.parquet"

    def sink(chunk: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if state["writer"] is None:
            state["writer"] = pq.ParquetWriter(path, table.schema)
        state["writer"].write_table(table, row_group_size=1_000_000)  # type: ignore[union-attr]
        state["rows"] = int(state["rows"]) + len(chunk)  # type: ignore[arg-type]

    try:
        data = generate(config, progress=progress, usage_sink=sink)
    finally:
        if state["writer"] is not None:
            state["writer"].close()  # type: ignore[union-attr]
    if state["writer"] is None:
        data.tables[usage].to_parquet(path, index=False)
    counts = write_sources(data, out, fmt=fmt, skip=(usage,))
    counts[usage] = int(state["rows"])  # type: ignore[arg-type]
    return data, {name: counts[name] for name in SOURCES_OF[config.business]}


def write_sources(data: GeneratedData, out: Path, fmt: str = "parquet", skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Write the four sources under ``out`` and the ground truth under ``out/_ground_truth``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name, frame in data.sources().items():
        if name in skip:
            continue
        path = out / f"{name}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        elif fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            raise ValueError(f"unknown format {fmt!r}: use 'parquet' or 'csv'")
        counts[name] = len(frame)
    # The business's declaration beside its sources: `--sources <folder>` finds it there.
    (out / "churn_platform.yaml").write_text(declaration_path(data.business).read_text())
    truth = out / "_ground_truth"
    truth.mkdir(exist_ok=True)
    data.churn_truth.to_parquet(truth / "churn_truth.parquet", index=False)
    data.churn_probability_truth.to_parquet(truth / "churn_probability_truth.parquet", index=False)
    data.faults.to_parquet(truth / "faults.parquet", index=False)
    if data.retention_effect is not None:
        data.retention_effect.to_parquet(truth / retention.EFFECT_FILE, index=False)
    return counts
