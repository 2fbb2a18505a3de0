"""What a churn model's ranking is worth: the expected maximum profit measure for customer churn (EMPC).

EMPC (Verbraken, Verbeke and Baesens, 2013) is the profit per customer of the best retention
campaign a model's scores allow: contact the top of the ranking, down to the cut-off that pays
most; a contacted churner is kept with a probability drawn from a Beta distribution (the save
rate), worth the customer lifetime value; every contact costs. Computed by ``empulse``. The
economics come from the business's declaration (``retention``): the contact cost, the save rate,
and a lifetime value of ``value_months`` months of the customers' mean monthly revenue.
"""

from __future__ import annotations

import dataclasses

import numpy as np

BETA_CONCENTRATION = 20.0
"""α + β of the save rate's Beta distribution (its mean is the declared save rate)."""


@dataclasses.dataclass(frozen=True)
class ChurnEconomics:
    clv: float
    """What keeping a customer is worth (``value_months`` × mean MRR)."""
    contact_cost: float
    save_rate: float

    @classmethod
    def of(cls, retention, mrr) -> ChurnEconomics | None:
        """From the declaration's ``retention`` section and the customers' monthly revenue; None when
        there is no revenue to value customers by."""
        values = np.asarray(mrr, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0 or values.mean() <= 0:
            return None
        return cls(
            clv=float(values.mean() * retention.value_months),
            contact_cost=float(retention.contact_cost),
            save_rate=float(retention.save_rate),
        )

    def empc(self, y_true, proba) -> tuple[float, float]:
        """The EMPC of ``proba`` on labels ``y_true`` (profit per customer) and the share of customers
        the best campaign contacts."""
        from empulse.metrics import empc_score

        alpha = self.save_rate * BETA_CONCENTRATION
        beta = (1.0 - self.save_rate) * BETA_CONCENTRATION
        y, p = np.asarray(y_true).astype(int), np.asarray(proba, dtype=np.float64)
        kwargs = {
            "alpha": alpha,
            "beta": beta,
            "clv": self.clv,
            "incentive_cost": 0.0,
            "contact_cost": self.contact_cost,
        }
        return float(empc_score(y, p, **kwargs)), float(empc_score.optimal_rate(y, p, **kwargs))
