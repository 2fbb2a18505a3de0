"""A challenger against the champion on live traffic, from the prediction log.

During a rollout (see ``serving.rollout``) the same records are scored by both versions: a shadow
challenger scores the requests it shadows after the champion has answered, and under a canary the
champion still scores the records its challenger answers. Each such pair (the same request and
customer) compares the two versions on exactly the same input:

- **agreement**: how far apart their probabilities are (mean and 95th percentile of the absolute
  difference), how alike their rankings are (Spearman), and whether both put a customer in the
  top decile of the pairs (each version by its own cut-off);
- **score distributions**: each version's mean and quantiles, and the two-sample
  Kolmogorov-Smirnov statistic between them;
- **once the outcomes mature** (``churn_outcomes``): ROC-AUC and calibration error of each version
  on the same labelled customers, and their differences.

Records without a ``customer_id`` cannot be paired and are left out.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from churn_platform.ml.training import evaluate, expected_calibration_error
from churn_platform.serving.rollout import CANARY, CHAMPION, SHADOW

MIN_LABELLED_PAIRS = 200
"""The fewest matured pairs, with churners and stayers, before the versions' performance is compared."""


@dataclasses.dataclass(frozen=True)
class OnlineComparison:
    challenger_version: str
    champion_version: str
    mode: str
    pairs: int
    customers: int
    first_logged: str
    last_logged: str
    mean_champion: float
    mean_challenger: float
    mean_abs_difference: float
    p95_abs_difference: float
    rank_correlation: float
    """Spearman's correlation of the two versions' probabilities over the pairs."""
    top_decile_agreement: float
    """Of the customers either version puts in the pairs' top decile (the champion's cut-off for the
    champion, the challenger's for the challenger), the share both do."""
    ks_statistic: float
    labelled_pairs: int
    roc_auc_champion: float | None
    roc_auc_challenger: float | None
    ece_champion: float | None
    ece_challenger: float | None

    @property
    def roc_auc_difference(self) -> float | None:
        if self.roc_auc_champion is None or self.roc_auc_challenger is None:
            return None
        return self.roc_auc_challenger - self.roc_auc_champion

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "roc_auc_difference": self.roc_auc_difference}


def pairs_of(log: pd.DataFrame) -> pd.DataFrame:
    """Each challenger score with the champion's score of the same record (same request and customer):
    challenger_version, champion_version, mode, customer_id, as_of, logged_at and both probabilities."""
    columns = [
        "challenger_version",
        "champion_version",
        "mode",
        "customer_id",
        "as_of",
        "logged_at",
        "p_champion",
        "p_challenger",
    ]
    if log.empty or "arm" not in log.columns:
        return pd.DataFrame(columns=columns)
    rows = log[log["customer_id"].notna()]
    keys = ["request_id", "customer_id"]
    challenger = rows[rows["arm"].isin((SHADOW, CANARY))]
    champion = rows[rows["arm"] == CHAMPION].drop_duplicates(keys)
    joined = challenger.merge(champion, on=keys, suffixes=("_x", "_c"))
    return pd.DataFrame(
        {
            "challenger_version": joined["model_version_x"].astype(str),
            "champion_version": joined["model_version_c"].astype(str),
            "mode": joined["arm_x"].astype(str),
            "customer_id": joined["customer_id"].astype(str),
            "as_of": pd.to_datetime(joined["as_of_x"]),
            "logged_at": pd.to_datetime(joined["logged_at_x"], utc=True),
            "p_champion": joined["churn_probability_c"].astype(float),
            "p_challenger": joined["churn_probability_x"].astype(float),
        },
        columns=columns,
    )


def _top_decile_agreement(a: np.ndarray, b: np.ndarray) -> float:
    top_a, top_b = a >= np.quantile(a, 0.9), b >= np.quantile(b, 0.9)
    either = top_a | top_b
    return float((top_a & top_b).sum() / either.sum()) if either.any() else 1.0


def compare_online(
    log: pd.DataFrame, outcomes: pd.DataFrame | None = None, by_mode: bool = True
) -> list[OnlineComparison]:
    """Each challenger version against the champion version it was paired with, in each mode, from
    the prediction log; with matured ``outcomes`` (``churn_outcomes``: customer_id, as_of, matured,
    churned), also their ROC-AUC and calibration on the same labelled customers. With ``by_mode``
    false, a version's shadow and canary pairs are pooled (mode ``canary+shadow``): what a rollout
    that went from one to the other is judged on."""
    from scipy.stats import ks_2samp, spearmanr

    pairs = pairs_of(log)
    if not by_mode and len(pairs):
        versions = ["challenger_version", "champion_version"]
        pairs["mode"] = pairs.groupby(versions)["mode"].transform(lambda m: "+".join(sorted(set(m))))
    labels = None
    if outcomes is not None and len(outcomes):
        matured = outcomes[outcomes["matured"].astype(bool)]
        labels = matured.assign(
            customer_id=matured["customer_id"].astype(str), as_of=pd.to_datetime(matured["as_of"])
        ).drop_duplicates(["customer_id", "as_of"])[["customer_id", "as_of", "churned"]]
    out = []
    for (challenger, champion, mode), g in pairs.groupby(["challenger_version", "champion_version", "mode"]):
        a, b = g["p_champion"].to_numpy(), g["p_challenger"].to_numpy()
        diff = np.abs(b - a)
        rank = float(spearmanr(a, b).statistic) if len(g) > 2 and a.std() > 0 and b.std() > 0 else float("nan")
        auc_a = auc_b = ece_a = ece_b = None
        labelled = 0
        if labels is not None:
            # One pair per customer and day: the latest.
            judged = g.sort_values("logged_at").drop_duplicates(["customer_id", "as_of"], keep="last")
            judged = judged.merge(labels, on=["customer_id", "as_of"])
            labelled = len(judged)
            y = judged["churned"].astype(bool).to_numpy().astype(int)
            if labelled >= MIN_LABELLED_PAIRS and 0 < y.sum() < labelled:
                pa, pb = judged["p_champion"].to_numpy(), judged["p_challenger"].to_numpy()
                auc_a, auc_b = evaluate(y, pa)["roc_auc"], evaluate(y, pb)["roc_auc"]
                ece_a, ece_b = expected_calibration_error(y, pa), expected_calibration_error(y, pb)
        out.append(
            OnlineComparison(
                challenger_version=str(challenger),
                champion_version=str(champion),
                mode=str(mode),
                pairs=len(g),
                customers=int(g["customer_id"].nunique()),
                first_logged=str(g["logged_at"].min()),
                last_logged=str(g["logged_at"].max()),
                mean_champion=float(a.mean()),
                mean_challenger=float(b.mean()),
                mean_abs_difference=float(diff.mean()),
                p95_abs_difference=float(np.quantile(diff, 0.95)),
                rank_correlation=rank,
                top_decile_agreement=_top_decile_agreement(a, b),
                ks_statistic=float(ks_2samp(a, b).statistic),
                labelled_pairs=labelled,
                roc_auc_champion=auc_a,
                roc_auc_challenger=auc_b,
                ece_champion=ece_a,
                ece_challenger=ece_b,
            )
        )
    return out


def comparisons_frame(comparisons: list[OnlineComparison]) -> pd.DataFrame:
    columns = [f.name for f in dataclasses.fields(OnlineComparison)] + ["roc_auc_difference"]
    return pd.DataFrame([c.as_dict() for c in comparisons], columns=columns)
