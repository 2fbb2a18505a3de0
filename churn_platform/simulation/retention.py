"""Retention offers in the built-in simulations, and their true effect.

Every simulated customer has a true response to a retention offer: a contact multiplies their
churn hazard by their ``hazard_ratio`` for ``EFFECT_DAYS`` days. Three kinds of customer:

* ``helped_a_little`` (most): the offer trims the hazard (ratio 0.75 to 0.95);
* ``persuadable``: price-sensitive customers the offer keeps (ratio 0.2 to 0.55);
* ``sleeping_dog``: customers who had stopped thinking about their subscription; the contact
  reminds them of it and they leave (ratio 1.6 to 2.5).

Who is which follows attributes the sources reveal (contract, price, usage, payment trouble) plus
chance, so an uplift model can learn it, but not perfectly. The effects come from their own random
stream: a simulation with offers is the one without them until the first contact.

The ground truth then gives, at every month start and for every active customer, the true 30-day
churn probability without an offer and with one made that day, and the customer's monthly revenue:
every targeting decision can be compared with the best possible one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pandas as pd

from churn_platform.business.declaration import ARMS, TREATED

SEGMENTS = np.array(["helped_a_little", "persuadable", "sleeping_dog"])
RATIO_RANGES = ((0.75, 0.95), (0.2, 0.55), (1.6, 2.5))
"""Each segment's hazard ratio under an offer: drawn uniformly in this range."""
EFFECT_DAYS = 60
"""How long a contact changes the hazard."""
EFFECT_FILE = "retention_effect.parquet"
"""In the ground truth: each customer's segment and hazard ratio."""


OFFERS = {
    # A customer-success review of the account's use, with two months at 15% off.
    "saas_b2b": "success_review",
    # Three months at half price, offered in the app.
    "consumer_app": "half_price_3_months",
}
"""Each built-in business's offer; what a contact costs is its declaration's ``retention.contact_cost``."""


@functools.cache
def declaration_of(business: str):
    """The built-in ``business``'s declaration: its contacts file's names and arms, the contact's cost."""
    from churn_platform.business.declaration import load_declaration
    from churn_platform.simulation.businesses import declaration_path

    return load_declaration(declaration_path(business))


def draw_effects(
    seed: int, persuadable_logit: np.ndarray, sleeping_dog_logit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's segment (an index into ``SEGMENTS``) and hazard ratio under an offer, from
    logits of being persuadable or a sleeping dog (a sleeping dog first, then persuadable among the
    rest). Deterministic for a seed; draws from its own stream."""
    rng = np.random.default_rng([seed, 16_016])
    n = persuadable_logit.size
    p_dog = 1.0 / (1.0 + np.exp(-sleeping_dog_logit))
    p_persuadable = (1.0 - p_dog) / (1.0 + np.exp(-persuadable_logit))
    u = rng.random(n)
    segment = np.where(u < p_dog, 2, np.where(u < p_dog + p_persuadable, 1, 0)).astype(np.int64)
    low = np.array([r[0] for r in RATIO_RANGES])[segment]
    high = np.array([r[1] for r in RATIO_RANGES])[segment]
    return segment, low + (high - low) * rng.random(n)


def standardised(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    spread = values.std()
    return (values - values.mean()) / (spread if spread > 0 else 1.0)


class Treatments:
    """The treated contacts of a simulation, as hazard multipliers by day.

    ``actions`` is a table of contacts (the business's contacts source, in its column names, see
    ``actions_source``); ``index_of`` maps customers' keys to their indices in the simulation (-1
    for a key it does not have). Control rows are recorded but change nothing: nobody contacted
    them."""

    def __init__(
        self,
        business: str,
        actions: pd.DataFrame,
        index_of: Callable[[np.ndarray], np.ndarray],
        start: np.datetime64,
        ratio: np.ndarray,
    ) -> None:
        _, columns, treated_value, control_value = actions_source(business)
        self.ratio = ratio
        self.last_contact = np.full(ratio.size, -(10**9), dtype=np.int64)
        self.by_day: dict[int, np.ndarray] = {}
        arms = actions[columns["arm"]].astype(str)
        wrong = sorted(set(arms) - {treated_value, control_value})
        if wrong:
            raise ValueError(f"an action's arm is {treated_value} or {control_value}, not {', '.join(wrong)}")
        treated = actions[arms == treated_value]
        if treated.empty:
            return
        who = np.asarray(index_of(treated[columns["customer_id"]].to_numpy()), dtype=np.int64)
        if (who < 0).any():
            unknown = treated[columns["customer_id"]].to_numpy()[who < 0]
            raise ValueError(f"actions name customers the simulation does not have: {unknown[:5].tolist()}")
        days = (pd.to_datetime(treated[columns["time"]]).to_numpy().astype("datetime64[D]") - start).astype(np.int64)
        for day in np.unique(days):
            self.by_day[int(day)] = who[days == day]

    def multiplier(self, idx: np.ndarray, t: int) -> np.ndarray:
        """The hazard multiplier of customers ``idx`` on day ``t`` (1 where no treated contact is in effect)."""
        contacted = self.by_day.get(t)
        if contacted is not None:
            self.last_contact[contacted] = t
        in_effect = (t - self.last_contact[idx]) < EFFECT_DAYS
        return np.where(in_effect, self.ratio[idx], 1.0)


def thirty_day(hazard: np.ndarray) -> np.ndarray:
    """The probability of churning within 30 days at a constant daily hazard."""
    return 1.0 - np.power(1.0 - np.minimum(hazard, 0.999), 30)


def truth_columns(parts: list[tuple[np.ndarray, ...]]) -> dict[str, np.ndarray]:
    """The truth's offer columns, from parts 3 to 5 of each month start's tuple: the 30-day churn
    probability without an offer and with one made that day, and the customer's monthly revenue."""

    def cat(i: int) -> np.ndarray:
        return np.concatenate([p[i] for p in parts]) if parts else np.array([], dtype=np.float32)

    untreated, offered = cat(3), cat(4)
    return {
        "churn_probability_30d_untreated": untreated,
        "churn_probability_30d_offered": offered,
        "uplift_30d": untreated - offered,
        "mrr": cat(5),
    }


def effect_truth(keys: np.ndarray, segment: np.ndarray, ratio: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": keys,
            "segment": pd.Categorical.from_codes(segment, categories=list(SEGMENTS)),
            "hazard_ratio": ratio.astype(np.float32),
        }
    )


def actions_table(business: str, actions: pd.DataFrame | None, known_until: np.datetime64) -> pd.DataFrame:
    """The business's contacts source as the simulation lands it: the contacts made up to the end of
    ``known_until`` (none before a first campaign), typed, in time order."""
    _, columns, _, _ = actions_source(business)
    key_dtype = "int64" if declaration_of(business).customer_id_type == "integer" else "string"
    types = {
        columns["action_id"]: "string",
        columns["customer_id"]: key_dtype,
        columns["time"]: "datetime64[us]",
        columns["campaign"]: "string",
        columns["arm"]: "string",
        columns["offer"]: "string",
        columns["cost"]: "float64",
    }
    if actions is None:
        return pd.DataFrame({name: pd.Series([], dtype=kind) for name, kind in types.items()})
    missing = sorted(set(types) - set(actions.columns))
    if missing:
        raise ValueError(f"the actions lack columns {', '.join(missing)} (expected {', '.join(types)})")
    out = actions[list(types)].astype(types)
    cutoff = (np.datetime64(known_until, "D") + np.timedelta64(1, "D")).astype("datetime64[us]")
    out = out[out[columns["time"]].to_numpy() < cutoff]
    return out.sort_values([columns["time"], columns["action_id"]], kind="stable").reset_index(drop=True)


def actions_source(business: str) -> tuple[str, dict[str, str], str, str]:
    """The built-in ``business``'s contacts file as its declaration describes it: the file's name,
    its columns (the platform's name -> the business's), and its values for the treated and the
    control arm."""
    actions = declaration_of(business).sources.actions
    if actions is None:
        raise ValueError(f"the {business} declaration has no actions source")
    return actions.location, actions.columns.model_dump(), actions.treated[0], actions.control[0]


def contacts(
    business: str,
    customer_ids,
    arms,
    when,
    campaign: str,
    cost: float | None = None,
) -> pd.DataFrame:
    """A contacts table in the business's names (its ``actions_source``): one row per customer, in
    arm ``treated`` or ``control`` (the platform's words; written in the business's), contacted at
    ``when``, offered the business's offer at its declared cost (or ``cost``). The control arm costs
    nothing."""
    _, columns, treated_value, control_value = actions_source(business)
    arms = np.asarray(arms).astype(str)
    if not set(arms) <= set(ARMS):
        raise ValueError(f"arms are {' or '.join(ARMS)}, not {sorted(set(arms) - set(ARMS))}")
    ids = np.asarray(customer_ids)
    treated = arms == TREATED
    return pd.DataFrame(
        {
            columns["action_id"]: [f"{campaign}-{i}" for i in ids],
            columns["customer_id"]: ids,
            columns["time"]: pd.Series(pd.to_datetime(np.full(ids.size, np.datetime64(when, "us")))).astype(
                "datetime64[us]"
            ),
            columns["campaign"]: campaign,
            columns["arm"]: np.where(treated, treated_value, control_value),
            columns["offer"]: OFFERS[business],
            columns["cost"]: np.where(
                treated, declaration_of(business).retention.contact_cost if cost is None else cost, 0.0
            ),
        }
    )
