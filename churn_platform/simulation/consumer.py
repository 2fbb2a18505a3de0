"""A seeded simulation of a consumer subscription app (the ``consumer_app`` business).

Another shape than the B2B example, to keep the platform honest: text user ids, users without a
cancellation column (churn is the end of the last subscription), subscriptions on four plans,
monthly or annual, some with an introductory discount, a raw event log of six event types with
opposite effects on churn (and the profile that did it), payments without statuses, no support
tickets, and its own names for everything (see ``businesses/consumer_app.yaml``).

The simulation runs day by day, vectorised over users. Each user has a latent engagement that
drives what they do in the app: engaged users play, save to playlists, share and download for
offline use; disengaged users skip more and open the cancellation flow, which itself raises the
hazard for a while. The hazard also rises when an introductory discount ends, is lower on annual
plans (which end at their renewal) and for family plans, and falls with tenure. The true churn
probability within 30 days at each month start is written to the ground truth, as for the B2B
example, so models can be compared with the best achievable ranking.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from churn_platform.simulation import retention

COUNTRIES = np.array(["de", "fr", "gb", "es", "it", "br", "us", "in"])
COUNTRY_SHARE = np.array([0.2, 0.14, 0.14, 0.1, 0.08, 0.12, 0.14, 0.08])
PLATFORMS = np.array(["ios", "android", "web"])
PLATFORM_SHARE = np.array([0.42, 0.46, 0.12])
SOURCES = np.array(["organic", "app_store_search", "social_ads", "referral", "podcast_promo"])
SOURCE_SHARE = np.array([0.32, 0.24, 0.22, 0.14, 0.08])
PLANS = np.array(["individual", "duo", "family", "student"])
PLAN_SHARE = np.array([0.55, 0.15, 0.17, 0.13])
PLAN_PRICE = np.array([10.99, 14.99, 17.99, 5.99])
PLAN_SEATS = np.array([1, 2, 6, 1])
EVENT_TYPES = np.array(["play", "playlist_add", "share", "skip", "offline_download", "cancel_flow_view"])
INTRO_DISCOUNT = 0.5
INTRO_MONTHS = 3
ANNUAL_DISCOUNT = 0.17


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def user_key(index: np.ndarray) -> np.ndarray:
    """Text ids, as a consumer app exports them: ``usr_`` and eight hex digits, not in signup order."""
    scrambled = (index.astype(np.uint64) * np.uint64(2_654_435_761)) % np.uint64(2**32)
    return np.array([f"usr_{v:08x}" for v in scrambled])


def generate_consumer(
    config,
    progress: Callable[[int, int], None] | None = None,
    events_sink: Callable[[pd.DataFrame], None] | None = None,
    actions: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """The app's four sources and its ground truth (``churn_truth``, ``churn_probability_truth``),
    deterministic for a given config (``customers``, ``days``, ``seed``, ``start_date``,
    ``existing_share``, ``drift_scenario``).

    With ``events_sink``, the app's events (by far the largest source) are handed over in chunks of
    about a month as they are simulated, in the order of the whole table, instead of being kept in
    memory; the returned ``app_events`` is then empty. ``actions``: retention contacts (the app's
    ``offer_sends``), as for ``generator.generate``; ``retention_effect`` gives each user's true
    response to an offer."""
    rng = np.random.default_rng([config.seed, 20_26])
    n, days = config.customers, config.days
    start = np.datetime64(config.start_date, "D")
    keys = user_key(np.arange(1, n + 1))

    # ---- users -----------------------------------------------------------------------
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_SHARE)
    platform = rng.choice(len(PLATFORMS), size=n, p=PLATFORM_SHARE)
    source = rng.choice(len(SOURCES), size=n, p=SOURCE_SHARE)
    existing = rng.random(n) < config.existing_share
    signup_offset = np.where(
        existing, -rng.integers(1, 3 * 365, size=n), rng.integers(0, max(1, days - 30), size=n)
    ).astype(np.int64)
    signup_seconds = rng.integers(0, 86_400, size=n)

    # ---- latent state ----------------------------------------------------------------
    mu = rng.normal(0.0, 0.55, size=n) + np.where(source == 3, 0.25, 0.0) - np.where(source == 2, 0.2, 0.0)
    engagement = mu + rng.normal(0.0, 0.35, size=n)
    base_play = rng.lognormal(np.log(1.1), 0.45, size=n)
    skip_taste = rng.beta(2.0, 6.0, size=n)
    fading = np.zeros(n, dtype=np.int64)
    cancel_intent = np.zeros(n)  # decaying memory of visits to the cancellation flow

    # ---- subscriptions: the current one of each user ---------------------------------
    plan = rng.choice(len(PLANS), size=n, p=PLAN_SHARE)
    annual = rng.random(n) < np.where(plan == 3, 0.05, 0.22)
    intro = (~annual) & (rng.random(n) < 0.3)
    sub_start = signup_offset.copy()  # day the current subscription started
    sub_number = np.ones(n, dtype=np.int64)
    churned = np.zeros(n, dtype=bool)
    churn_day = np.full(n, -1, dtype=np.int64)

    # ---- retention offers: each user's true response (its own random stream) ------------
    # Users on an introductory discount, students and users won by social ads are persuadable by a
    # cheaper price; annual subscribers who barely listen are the sleeping dogs.
    offer_segment, offer_ratio = retention.draw_effects(
        config.seed,
        persuadable_logit=-1.2 + 1.0 * intro + 0.8 * (plan == 3) + 0.6 * (source == 2) + 0.5 * (~annual),
        sleeping_dog_logit=-3.0 + 1.6 * annual - 0.9 * retention.standardised(np.log(base_play)),
    )

    def index_of(wanted: np.ndarray) -> np.ndarray:
        position = {k: i for i, k in enumerate(keys)}
        return np.array([position.get(k, -1) for k in wanted], dtype=np.int64)

    treatments = (
        None if actions is None else retention.Treatments(config.business, actions, index_of, start, offer_ratio)
    )

    sub_rows: list[tuple] = []  # (user, number, start_day, end_day or -1, plan, annual, intro)
    event_parts: list[tuple[np.ndarray, ...]] = []
    payment_parts: list[tuple[np.ndarray, ...]] = []
    truth_parts: list[tuple[np.ndarray, ...]] = []
    start_us = start.astype("datetime64[us]")

    def events_frame(parts: list[tuple[np.ndarray, ...]]) -> pd.DataFrame:
        """The events of ``parts`` (whole days), in time order (then by user)."""

        def cat(i: int, dtype) -> np.ndarray:
            return (
                np.concatenate([p[i] for p in parts]).astype(dtype, copy=False) if parts else np.array([], dtype=dtype)
            )

        who = cat(0, np.int64)
        return (
            pd.DataFrame(
                {
                    "user_key": keys[who],
                    "event_ts": pd.to_datetime(
                        start_us
                        + cat(1, np.int64).astype("timedelta64[D]")
                        + cat(2, np.int64).astype("timedelta64[ms]")
                    ).astype("datetime64[us]"),
                    "event_name": EVENT_TYPES[cat(3, np.int64)],
                    "seconds_listened": cat(4, np.float64),
                    "profile_id": np.char.add("p", cat(5, np.int64).astype(str)).astype(object),
                }
            )
            .sort_values(["event_ts", "user_key"], kind="stable")
            .reset_index(drop=True)
        )

    def monthly_price(users: np.ndarray, on_day: int) -> np.ndarray:
        price = PLAN_PRICE[plan[users]] * np.where(annual[users], 1 - ANNUAL_DISCOUNT, 1.0)
        in_intro = intro[users] & (on_day - sub_start[users] < INTRO_MONTHS * 30)
        return np.round(price * np.where(in_intro, 1 - INTRO_DISCOUNT, 1.0), 2)

    start_day_num = int(start.astype("int64"))
    last = config.simulated_days
    for t in range(last):
        active = (signup_offset <= t) & ~churned
        idx = np.flatnonzero(active)
        if idx.size == 0:
            if progress:
                progress(t + 1, last)
            continue
        m = idx.size
        e = engagement[idx]
        tenure = (t - signup_offset[idx]).astype(np.float64)

        # Fading episodes: engagement slides for 45 days.
        starting = (fading[idx] == 0) & (rng.random(m) < 0.003)
        fading[idx[starting]] = 45
        sliding = fading[idx] > 0
        mu[idx[sliding]] -= 0.035
        fading[idx[sliding]] -= 1
        e = e + 0.06 * (mu[idx] - e) + rng.normal(0.0, 0.09, size=m)
        drifting = config.drift_scenario != "none" and t >= config.drift_start
        if drifting and config.drift_scenario == "usage_shift":
            e = e - 0.002 * (t - config.drift_start)

        # The day's events, per type: counts driven by engagement (skips and the cancellation flow by its lack).
        weekday = (start_day_num + t + 3) % 7
        weekend = 1.25 if weekday >= 5 else 1.0
        seats = PLAN_SEATS[plan[idx]]
        play_rate = base_play[idx] * np.exp(0.9 * e) * weekend * (1 + 0.25 * np.log(seats))
        rates = np.stack(
            [
                play_rate,
                0.16 * play_rate * np.exp(0.5 * e),
                0.05 * np.exp(0.9 * e),
                play_rate * (0.25 + skip_taste[idx]) * np.exp(-0.8 * e),
                0.06 * np.exp(0.6 * e) * (plan[idx] != 3),
                0.004 * np.exp(-1.6 * e),
            ],
            axis=1,
        )
        counts = rng.poisson(rates)
        total = counts.sum()
        if total:
            who = np.repeat(np.repeat(idx, len(EVENT_TYPES)), counts.ravel())
            what = np.repeat(np.tile(np.arange(len(EVENT_TYPES)), m), counts.ravel())
            # Milliseconds into the day: two events of a user are never at the very same moment.
            millis = rng.integers(0, 86_400_000, size=total)
            listened = np.where(what == 0, np.round(rng.gamma(2.0, 90.0, size=total)), np.nan)
            profile = rng.integers(0, PLAN_SEATS[plan[who]])
            event_parts.append((who, np.full(total, t, dtype=np.int32), millis, what, listened, profile))
        views = counts[:, 5]
        cancel_intent[idx] = cancel_intent[idx] * 0.93 + views

        # Payments: on the subscription's monthly (or yearly) anniversary.
        age = t - sub_start[idx]
        due = (age > 0) & np.where(annual[idx], age % 365 == 0, age % 30 == 0)
        due |= age == 0
        if due.any():
            payers = idx[due]
            amount = np.where(annual[payers], monthly_price(payers, t) * 12, monthly_price(payers, t))
            payment_parts.append(
                (payers, np.full(payers.size, t, dtype=np.int32), rng.integers(0, 86_400, size=payers.size), amount)
            )

        # Plan changes: engaged users move up (duo, family), others down; a new subscription each time.
        changing = (rng.random(m) < 0.0012) & (tenure > 45)
        if changing.any():
            c_idx = idx[changing]
            up = engagement[c_idx] > 0
            new_plan = np.where(up, rng.choice([1, 2], size=c_idx.size), rng.choice([0, 3], size=c_idx.size))
            moved = new_plan != plan[c_idx]
            for u, p in zip(c_idx[moved], new_plan[moved]):
                sub_rows.append((u, sub_number[u], sub_start[u], t, plan[u], annual[u], intro[u]))
                sub_number[u] += 1
                plan[u], sub_start[u], intro[u] = p, t, False

        # The hazard: low engagement, visits to the cancellation flow, an introductory discount that
        # just ended, monthly billing, a student plan; family plans and tenure hold users.
        discount_ended = intro[idx] & (age >= INTRO_MONTHS * 30) & (age < INTRO_MONTHS * 30 + 30)
        price_up = 0.45 if drifting and config.drift_scenario == "price_increase" else 0.0
        logit = (
            -7.3
            - 1.35 * e
            + 0.85 * np.log1p(cancel_intent[idx])
            + 0.9 * discount_ended
            + 0.7 * (~annual[idx])
            + 0.35 * (plan[idx] == 3)
            - 0.45 * (plan[idx] == 2)
            - 0.25 * np.log1p(tenure / 30.4)
            + price_up
        )
        hazard = _sigmoid(logit)
        actual = hazard if treatments is None else np.minimum(hazard * treatments.multiplier(idx, t), 0.999)
        day = start + np.timedelta64(t, "D")
        if str(day)[8:10] == "01":
            truth_parts.append(
                (
                    idx,
                    np.full(m, t, dtype=np.int32),
                    1.0 - np.power(1.0 - actual, 30),
                    retention.thirty_day(hazard).astype(np.float32),
                    retention.thirty_day(hazard * offer_ratio[idx]).astype(np.float32),
                    monthly_price(idx, t).astype(np.float32),
                )
            )
        leaving = rng.random(m) < actual
        engagement[idx] = e
        if leaving.any():
            l_idx = idx[leaving]
            churned[l_idx] = True
            churn_day[l_idx] = t
        if events_sink is not None and (t % 30 == 29 or t == last - 1) and event_parts:
            events_sink(events_frame(event_parts))
            event_parts.clear()
        if progress:
            progress(t + 1, last)

    # ---- assemble --------------------------------------------------------------------
    seen = signup_offset < last
    for u in np.flatnonzero(seen):
        end = churn_day[u] if churned[u] else -1
        sub_rows.append((u, sub_number[u], sub_start[u], end, plan[u], annual[u], intro[u]))
    subs = pd.DataFrame(sub_rows, columns=["u", "number", "start", "end", "plan", "annual", "intro"])
    subs = subs.sort_values(["u", "number"], kind="stable").reset_index(drop=True)

    def at(day_offsets: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        return start_us + day_offsets.astype("timedelta64[D]") + seconds.astype("timedelta64[s]")

    sub_seconds = (np.asarray(subs["u"]) * 7919 + np.asarray(subs["number"]) * 104_729) % 86_400
    started = at(subs["start"].to_numpy(), sub_seconds)
    ended = np.where(
        subs["end"].to_numpy() >= 0,
        at(np.maximum(subs["end"].to_numpy(), 0), (sub_seconds + 3_600) % 86_400),
        np.datetime64("NaT"),
    )
    # A change ends one subscription and starts the next at the same moment.
    price = PLAN_PRICE[subs["plan"].to_numpy()] * np.where(subs["annual"].to_numpy(), 1 - ANNUAL_DISCOUNT, 1.0)
    discount = np.where(
        subs["intro"].to_numpy(), INTRO_DISCOUNT, np.where(subs["annual"].to_numpy(), ANNUAL_DISCOUNT, 0.0)
    )
    intro_price = np.where(subs["intro"].to_numpy(), np.round(price * (1 - INTRO_DISCOUNT), 2), np.round(price, 2))
    subscriptions = pd.DataFrame(
        {
            "subscription_ref": [f"sub_{k}_{n_}" for k, n_ in zip(keys[subs["u"]], subs["number"])],
            "user_key": keys[subs["u"]],
            "start_ts": pd.to_datetime(started).astype("datetime64[us]"),
            "end_ts": pd.to_datetime(ended).astype("datetime64[us]"),
            "plan_name": PLANS[subs["plan"]],
            "billing_cycle": np.where(subs["annual"], "annual", "monthly"),
            # The monthly price at the start (the introductory one while it lasts).
            "price_eur_month": intro_price,
            "discount_rate": discount,
            "seats": PLAN_SEATS[subs["plan"]],
        }
    )

    users = pd.DataFrame(
        {
            "user_key": keys[seen],
            "created_at": pd.to_datetime(at(signup_offset[seen], signup_seconds[seen])).astype("datetime64[us]"),
            "country": COUNTRIES[country[seen]],
            "platform": PLATFORMS[platform[seen]],
            "acquisition_source": SOURCES[source[seen]],
        }
    )

    def cat(parts, i, dtype):
        return np.concatenate([p[i] for p in parts]).astype(dtype, copy=False) if parts else np.array([], dtype=dtype)

    events = events_frame(event_parts)

    payer = cat(payment_parts, 0, np.int64)
    payments = pd.DataFrame(
        {
            "payment_ref": [f"pay_{i:09d}" for i in range(1, payer.size + 1)],
            "user_key": keys[payer],
            "charged_at": pd.to_datetime(at(cat(payment_parts, 1, np.int64), cat(payment_parts, 2, np.int64))).astype(
                "datetime64[us]"
            ),
            "amount_eur": cat(payment_parts, 3, np.float64),
        }
    )

    churn_truth = pd.DataFrame(
        {
            "customer_id": keys[seen],
            "churn_date": pd.to_datetime(
                np.where(
                    churn_day[seen] >= 0,
                    start + np.maximum(churn_day[seen], 0).astype("timedelta64[D]"),
                    np.datetime64("NaT"),
                )
            ).astype("datetime64[us]"),
        }
    )
    t_who = cat(truth_parts, 0, np.int64)
    probability_truth = pd.DataFrame(
        {
            "customer_id": keys[t_who],
            "snapshot_date": (start + cat(truth_parts, 1, np.int64).astype("timedelta64[D]")).astype("datetime64[us]"),
            "churn_probability_30d": cat(truth_parts, 2, np.float64),
            **retention.truth_columns(truth_parts),
        }
    )
    return {
        "users": users,
        "subscriptions": subscriptions,
        "app_events": events,
        "payments": payments,
        "offer_sends": retention.actions_table(config.business, actions, np.datetime64(config.known_until, "D")),
        "churn_truth": churn_truth,
        "churn_probability_truth": probability_truth,
        "retention_effect": retention.effect_truth(keys[seen], offer_segment[seen], offer_ratio[seen]),
    }
