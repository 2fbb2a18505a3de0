"""The promotion gate: when a newly registered model version may become `champion`.

A version is promoted when both hold:

* its holdout ROC-AUC reaches an absolute floor (``floor``), and
* it is not worse than the current champion, scored on the same holdout rows, by more
  than ``tolerance``.

With ``metric="empc"`` (the declaration's ``policy.gate_metric``) the comparison with the champion
is by the expected maximum profit (EMPC, ``ml.profit``) on the same rows instead, and the tolerance
is a share of the champion's EMPC; the ROC-AUC floor holds either way.

With a rollout (the declaration's ``policy.rollout``: shadow or canary), a version that passes is
not made champion at once: ``stage`` gives it alias ``rollout``, the API serves it beside the
champion in that mode, and ``rollout_verdict`` later decides from the live comparison.

Otherwise it gets alias `challenger` and the champion stays where it is. The first
version of a model only has to reach the floor. A champion that cannot be scored on
the holdout (it fails to load, or expects other features) is reported, and the new
version is then judged by the floor alone.
"""

from __future__ import annotations

import dataclasses

from churn_platform import policy
from churn_platform.settings import CHAMPION_ALIAS as CHAMPION

CHALLENGER = "challenger"
ROLLOUT = "rollout"
"""The alias of a version that passed the gate and is served beside the champion until decided."""
ROLLOUT_MODE_TAG, ROLLOUT_SHARE_TAG = "rollout_mode", "rollout_share"
"""The version tags that tell the API how to serve a rollout."""
ROLLOUT_DECISION_TAG, ROLLOUT_REASON_TAG = "rollout_decision", "rollout_reason"
"""The version tags that keep how a rollout ended (promoted, rolled back) and why."""
DEFAULT_FLOOR = policy.ROC_AUC_FLOOR
DEFAULT_TOLERANCE = policy.GATE_TOLERANCE
METRICS = ("roc_auc", "empc")
"""What the gate compares a new version with the champion by."""


@dataclasses.dataclass(frozen=True)
class GateDecision:
    promoted: bool
    alias: str
    reason: str
    candidate_version: str
    candidate_roc_auc: float
    champion_version: str | None
    champion_roc_auc: float | None
    floor: float
    tolerance: float
    below_floor: bool
    metric: str = "roc_auc"
    candidate_empc: float | None = None
    champion_empc: float | None = None
    rollout_mode: str | None = None
    rollout_share: float | None = None

    def tags(self) -> dict[str, str]:
        """The decision as MLflow model-version tags (a rollout's mode and share are what the API reads)."""
        rollout = (
            {ROLLOUT_MODE_TAG: self.rollout_mode, ROLLOUT_SHARE_TAG: f"{self.rollout_share:g}"}
            if self.rollout_mode
            else {}
        )
        return {
            **rollout,
            "gate_decision": "promoted" if self.promoted else "rejected",
            "gate_reason": self.reason,
            "gate_floor": f"{self.floor:.4f}",
            "gate_tolerance": f"{self.tolerance:.4f}",
            "gate_candidate_roc_auc": f"{self.candidate_roc_auc:.4f}",
            "gate_champion_version": self.champion_version or "",
            "gate_champion_roc_auc": "" if self.champion_roc_auc is None else f"{self.champion_roc_auc:.4f}",
            "gate_metric": self.metric,
            "gate_candidate_empc": "" if self.candidate_empc is None else f"{self.candidate_empc:.4f}",
            "gate_champion_empc": "" if self.champion_empc is None else f"{self.champion_empc:.4f}",
        }


def decide(
    candidate_version: str,
    candidate_roc_auc: float,
    champion_version: str | None,
    champion_roc_auc: float | None,
    floor: float = DEFAULT_FLOOR,
    tolerance: float = DEFAULT_TOLERANCE,
    champion_note: str = "",
    metric: str = "roc_auc",
    candidate_empc: float | None = None,
    champion_empc: float | None = None,
) -> GateDecision:
    if metric not in METRICS:
        raise ValueError(f"the gate compares by {' or '.join(METRICS)}, not {metric!r}")
    if metric == "empc" and candidate_empc is None:
        raise ValueError("the gate compares by EMPC, but the candidate has none (its holdout has no revenue to value)")
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"the promotion floor is a ROC-AUC between 0 and 1, got {floor}")
    if tolerance < 0:
        raise ValueError(f"the promotion tolerance cannot be negative, got {tolerance}")

    def result(promoted: bool, reason: str, below: bool = False) -> GateDecision:
        return GateDecision(
            promoted=promoted,
            alias=CHAMPION if promoted else CHALLENGER,
            reason=reason,
            candidate_version=candidate_version,
            candidate_roc_auc=candidate_roc_auc,
            champion_version=champion_version,
            champion_roc_auc=champion_roc_auc,
            floor=floor,
            tolerance=tolerance,
            below_floor=below,
            metric=metric,
            candidate_empc=candidate_empc,
            champion_empc=champion_empc,
        )

    if not candidate_roc_auc >= floor:  # NaN fails too
        return result(False, f"holdout ROC-AUC {candidate_roc_auc:.4f} is below the floor {floor:.4f}", below=True)
    if champion_version is None:
        return result(
            True, f"first model version; holdout ROC-AUC {candidate_roc_auc:.4f} reaches the floor {floor:.4f}"
        )
    if champion_roc_auc is None:
        note = f" ({champion_note})" if champion_note else ""
        return result(
            True,
            f"champion version {champion_version} could not be scored on the holdout{note}; "
            f"ROC-AUC {candidate_roc_auc:.4f} reaches the floor {floor:.4f}",
        )
    if metric == "empc":
        if champion_empc is None:
            return result(
                True,
                f"champion version {champion_version} has no EMPC on the holdout; holdout ROC-AUC "
                f"{candidate_roc_auc:.4f} reaches the floor {floor:.4f}",
            )
        if candidate_empc < champion_empc - tolerance * abs(champion_empc):  # type: ignore[operator]
            return result(
                False,
                f"holdout EMPC {candidate_empc:.2f} per customer is below champion version {champion_version}'s "
                f"{champion_empc:.2f} on the same rows by more than {tolerance:.0%} of it",
            )
        return result(
            True,
            f"holdout EMPC {candidate_empc:.2f} per customer against champion version {champion_version}'s "
            f"{champion_empc:.2f} on the same rows (tolerance {tolerance:.0%} of it); ROC-AUC "
            f"{candidate_roc_auc:.4f} reaches the floor {floor:.4f}",
        )
    if candidate_roc_auc < champion_roc_auc - tolerance:
        return result(
            False,
            f"holdout ROC-AUC {candidate_roc_auc:.4f} is worse than champion version {champion_version}'s "
            f"{champion_roc_auc:.4f} on the same rows by more than {tolerance:.4f}",
        )
    return result(
        True,
        f"holdout ROC-AUC {candidate_roc_auc:.4f} against champion version {champion_version}'s "
        f"{champion_roc_auc:.4f} on the same rows (tolerance {tolerance:.4f})",
    )


ROLLOUT_MODES = ("shadow", "canary")


def check_rollout(mode: str, share: float) -> None:
    """Raise ``ValueError`` unless ``mode`` is shadow or canary and ``share`` lies in (0, 1]."""
    if mode not in ROLLOUT_MODES or not 0 < share <= 1:
        raise ValueError(f"a rollout is shadow or canary with a share in (0, 1], not {mode!r} with {share}")


def stage(decision: GateDecision, mode: str, share: float) -> GateDecision:
    """A promoted decision turned into a rollout (``mode`` shadow or canary, with ``share``): alias
    ``rollout`` instead of ``champion``. A first version, a refused one, or mode ``none`` is unchanged."""
    if mode == "none" or not decision.promoted or decision.champion_version is None:
        return decision
    check_rollout(mode, share)
    return dataclasses.replace(
        decision,
        alias=ROLLOUT,
        reason=f"{decision.reason}; served in {mode} ({share:.0%}) beside champion version {decision.champion_version} "
        "until its live comparison decides",
        rollout_mode=mode,
        rollout_share=share,
    )


@dataclasses.dataclass(frozen=True)
class RolloutVerdict:
    action: str
    """``promote`` (the rollout becomes champion), ``roll back`` or ``wait``."""
    reason: str


def rollout_verdict(
    version: str,
    champion_version: str,
    labelled_pairs: int,
    roc_auc: float | None,
    champion_roc_auc: float | None,
    min_matured: int,
    tolerance: float = DEFAULT_TOLERANCE,
) -> RolloutVerdict:
    """What to do with rollout ``version`` given its live comparison with the champion on the same
    customers: wait for ``min_matured`` matured pairs; then promote it unless its ROC-AUC is below the
    champion's by more than ``tolerance``, in which case roll it back."""
    if labelled_pairs < min_matured or roc_auc is None or champion_roc_auc is None:
        return RolloutVerdict(
            "wait", f"version {version}: {labelled_pairs} of {min_matured} live scores needed have matured outcomes"
        )
    difference = roc_auc - champion_roc_auc
    compared = (
        f"version {version}'s live ROC-AUC {roc_auc:.4f} against champion version {champion_version}'s "
        f"{champion_roc_auc:.4f} on the same {labelled_pairs} customers"
    )
    if difference < -tolerance:
        return RolloutVerdict("roll back", f"{compared}: worse by more than {tolerance:g}")
    return RolloutVerdict("promote", f"{compared}: not worse by more than {tolerance:g}")
