"""The campaign scenario: two retention campaigns on simulated time, each measured against its controls.

``run_campaign_scenario`` drives the real platform (Dagster runs of the whole graph, dbt, the MLflow
registry) through the life of a simulated business:

1. **Cycle 1** — the business as known on the eve of a month start; the pipeline scores everyone and
   ``retention_worklist`` targets by risk, holding a large share out as a control (a first campaign
   is also the experiment an uplift model learns from). The contacts are made the next morning.
2. **Cycle 2** — two months later, the first campaign has matured: ``campaign_effect`` measures it
   and ``uplift_model`` learns from it. The worklist now targets by uplift (by the champion, or, when
   the gate found it no better than ranking by risk, by the refused challenger, to show what it
   would have done); the same budget spent by risk is drawn up too.
3. **Measured** — two months on again, each targeting's campaign is measured against its controls.
   The two second campaigns are run in two copies of the same simulated world (same customers, same
   random draws), one contacting the uplift worklist and one the risk worklist, so each is measured
   on the whole customer base with the whole budget.

On generated data the ground truth knows each customer's true effect of a contact, so each campaign
is also compared with what its contacts truly saved, and with the oracle's best targeting: the same
number of contacts given to the customers with the highest true expected benefit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn_platform.apps.simulated_time import SimulatedBusiness
from churn_platform.business.declaration import TREATED
from churn_platform.decisions.effect import CampaignEffect
from churn_platform.decisions.targeting import TargetingPolicy, expected_benefit
from churn_platform.settings import REGISTERED_MODEL_NAME, Settings

RISK, UPLIFT = "risk", "uplift"


@dataclasses.dataclass(frozen=True)
class CampaignPlan(SimulatedBusiness):
    """The scenario's settings: the simulated business, each campaign's budget and control shares."""

    customers: int = 20_000
    contacts: int = 2_000
    """Each campaign's budget in contacts (treated and control)."""
    learning_control_share: float = 0.5
    """The first campaign's control share: it is also the experiment the uplift model learns from."""
    control_share: float = 0.25
    """The second campaigns' control share."""

    def __post_init__(self) -> None:
        if self.days < 240:
            raise ValueError(f"the campaign scenario needs at least 240 days of history and campaigns, got {self.days}")
        if self.contacts < 100:
            raise ValueError(f"a campaign needs at least 100 contacts to be measured, got {self.contacts}")
        for name in ("learning_control_share", "control_share"):
            if not 0.05 <= getattr(self, name) <= 0.5:
                raise ValueError(f"{name} must lie in [0.05, 0.5], got {getattr(self, name)}")

    def month_starts(self) -> tuple[dt.date, dt.date, dt.date]:
        """The first campaign's day, the second's, and the day after the last one the sources know: the
        window's last month start and every two months before it."""
        return tuple(self.last_month_starts(3, every=2))  # type: ignore[return-value]


@dataclasses.dataclass
class CampaignResult:
    """One campaign as measured against its controls (``effect``), beside the ground truth."""

    cycle: int
    targeted_by: str
    effect: CampaignEffect
    true_saved_customers: float
    """What the treated contacts truly saved in expectation: the sum of their true 30-day uplifts."""
    true_saved_mrr: float
    oracle_saved_customers: float
    """What the oracle's targeting would truly save with as many contacts: the customers with the
    highest true expected benefit (true uplift × value − cost), while it is positive."""
    oracle_saved_mrr: float
    true_sleeping_dogs_treated: int

    @property
    def campaign(self) -> str:
        return self.effect.campaign

    def as_dict(self) -> dict[str, Any]:
        """Flat: the cycle and targeting, the measured effect's fields, then the ground truth's."""
        fields = dataclasses.asdict(self)
        return {"cycle": self.cycle, "targeted_by": self.targeted_by, **fields.pop("effect"), **fields}


@dataclasses.dataclass
class CampaignReport:
    plan: dict[str, Any]
    campaigns: list[CampaignResult]
    uplift: dict[str, Any]
    seconds: float
    home: str

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "campaigns": [c.as_dict() for c in self.campaigns]}


def _contacts_from_worklist(business: str, worklist: pd.DataFrame, when: dt.date) -> pd.DataFrame:
    """The worklist's customers contacted (the treated arm) or held out (the control arm) at 09:00 on ``when``."""
    from churn_platform.simulation import retention

    ids = worklist["customer_id"].to_numpy()
    if retention.declaration_of(business).customer_id_type == "integer":
        ids = ids.astype(np.int64)
    campaign = str(worklist["campaign"].iloc[0])
    contacted = pd.Timestamp(when) + pd.Timedelta(hours=9)
    return retention.contacts(business, ids, worklist["arm"].to_numpy(), contacted, campaign)


def _truth_at(data, when: dt.date) -> pd.DataFrame:
    """The ground truth at ``when``: every active customer's true 30-day uplift, MRR and segment."""
    truth = data.churn_probability_truth
    rows = truth[truth["snapshot_date"] == pd.Timestamp(when)][["customer_id", "uplift_30d", "mrr"]]
    segments = data.retention_effect[["customer_id", "segment"]]
    out = rows.merge(segments, on="customer_id", how="left")
    out["customer_id"] = out["customer_id"].astype(str)
    return out.set_index("customer_id")


def _oracle(truth: pd.DataFrame, n_treated: int, policy: TargetingPolicy) -> tuple[float, float]:
    """The true expected saved customers and MRR of the oracle's targeting with ``n_treated``
    contacts: the worklist's expected benefit, with the true uplift as the estimate."""
    benefit = expected_benefit(truth["mrr"].to_numpy(), policy, uplift=truth["uplift_30d"].to_numpy())
    best = truth.assign(benefit=benefit).sort_values("benefit", ascending=False, kind="stable").head(n_treated)
    best = best[best["benefit"] > 0]
    return float(best["uplift_30d"].sum()), float((best["uplift_30d"] * best["mrr"]).sum())


def _measured(settings: Settings, campaign: str) -> CampaignEffect:
    from churn_platform.defs import warehouse_for

    warehouse = warehouse_for(settings).process_config_and_initialize()
    table = warehouse.read_table("decisions", "campaign_effects")
    row = table[table["campaign"] == campaign]
    if row.empty:
        raise RuntimeError(
            f"campaign {campaign} was not measured (decisions.campaign_effects has {list(table.campaign)})"
        )
    values = {k: (None if pd.isna(v) else getattr(v, "item", lambda v=v: v)()) for k, v in row.iloc[0].items()}
    return CampaignEffect(**values)


def _copy_table(source: Settings, target: Settings, schema: str, table: str) -> None:
    from churn_platform.defs import warehouse_for

    frame = warehouse_for(source).process_config_and_initialize().read_table(schema, table)
    warehouse_for(target).process_config_and_initialize().write_table(schema, table, frame)


def _qini_on(settings: Settings, version: str, churn_version: str, campaign: str, sources: Path) -> dict[str, Any]:
    """The Qini coefficient of uplift model ``version`` on ``campaign``'s matured contacts, that of
    ranking them by the risk of churn model ``churn_version``, and the true uplift's (the oracle's)."""
    from churn_platform.defs import warehouse_for
    from churn_platform.ml.registry import MLflowLocation, load_uplift, load_version
    from churn_platform.ml.training import features_frame
    from churn_platform.ml.uplift import qini_coefficient
    from churn_platform.simulation.landing import ground_truth_dir
    from churn_platform.simulation.oracle import load_uplift_truth, uplift_oracle_metrics

    warehouse = warehouse_for(settings).process_config_and_initialize()
    rows = warehouse.read_table("decisions", "uplift_training_set")
    rows = rows[rows["campaign"] == campaign].sort_values("action_id", ignore_index=True)
    location = MLflowLocation(settings.mlflow_tracking_uri, "")
    estimator, _ = load_uplift(location, None, version=version)
    estimate = estimator.predict(rows)
    churn = load_version(location, REGISTERED_MODEL_NAME, churn_version)
    risk = churn.model.predict_proba(features_frame(rows, churn.catalogue, fill_missing=True))[:, 1]
    treated, churned = (rows["arm"] == TREATED).to_numpy(), rows["churned"].astype(bool).to_numpy()
    return {
        "campaign": campaign,
        "contacts": len(rows),
        "qini": qini_coefficient(estimate, treated, churned),
        "churn_model_version": churn_version,
        "risk_qini": qini_coefficient(risk, treated, churned),
        **uplift_oracle_metrics(load_uplift_truth(ground_truth_dir(sources)), rows, estimate),
    }


def _champion_version(settings: Settings) -> str:
    """The churn model version that is champion now (the one the risk worklist was drawn up by)."""
    from churn_platform.ml.registry import MLflowLocation, resolve_alias
    from churn_platform.settings import CHAMPION_ALIAS

    return resolve_alias(MLflowLocation(settings.mlflow_tracking_uri, ""), REGISTERED_MODEL_NAME, CHAMPION_ALIAS)


def _read_worklist(settings: Settings, campaign: str) -> pd.DataFrame:
    """A campaign's worklist, from the CRM export the ``retention_worklist`` asset wrote."""
    path = settings.reports_dir / "worklists" / f"{campaign}.parquet"
    return pd.read_parquet(path)


def run_campaign_scenario(
    plan: CampaignPlan,
    home: Path,
    say: Callable[[str], None] = print,
    log_level: str = "WARNING",
) -> CampaignReport:
    from churn_platform.apps.pipeline import WAREHOUSE_SELECTION, materialize_selection, run_pipeline
    from churn_platform.defs.scores import HISTORY_TABLE, SCORES_SCHEMA
    from churn_platform.simulation import retention

    started = time.monotonic()
    declaration = retention.declaration_of(plan.business)
    policy = TargetingPolicy.of(declaration.retention)
    first, second, end = plan.month_starts()
    sources = home / "sources"

    def land(until: dt.date, actions: pd.DataFrame | None, folder: Path):
        return plan.land(until, folder, actions)

    def settings_for(root: Path, folder: Path) -> Settings:
        return Settings(home=root, sources=str(folder), days=plan.days, business=plan.business)

    def worklist_config(campaign: str, by_uplift: bool, control_share: float, alias: str = "champion") -> dict:
        """``retention_worklist``'s config for a campaign of the plan's budget."""
        return {
            "retention_worklist": {
                "campaign": campaign,
                "by_uplift": by_uplift,
                "uplift_alias": alias,
                "max_contacts": plan.contacts,
                "control_share": control_share,
            }
        }

    settings = settings_for(home, sources)
    # Cycle 1: targeting by risk.
    say(
        f"\n[1/4] Cycle 1, {first}: the {plan.business} business ({plan.customers:,} customers) as known on "
        f"{first - dt.timedelta(days=1)}; the whole pipeline, then a worklist by risk"
    )
    land(first, None, sources)
    c1 = "cycle-1-risk"
    report = run_pipeline(
        settings, log_level=log_level, asset_config=worklist_config(c1, False, plan.learning_control_share)
    )
    say(
        f"  run {report.dagster_run_id[:8]} in {report.seconds:.0f}s; churn model v{report.model['model_version']} "
        f"(@{report.model['alias']}, ROC-AUC {report.model['roc_auc']:.3f})"
    )
    list1 = _read_worklist(settings, c1)
    actions1 = _contacts_from_worklist(plan.business, list1, first)
    say(_worklist_line(list1))

    # Cycle 2: the first campaign measured and learnt from; targeting by uplift, and by risk for comparison.
    say(f"\n[2/4] Cycle 2, {second}: cycle 1 has matured; it is measured, an uplift model learns from it")
    land(second, actions1, sources)
    c2u, c2r = "cycle-2-uplift", "cycle-2-risk"
    report = run_pipeline(settings, log_level=log_level, asset_config=worklist_config(c2r, False, plan.control_share))
    uplift = report.uplift
    say(
        f"  run {report.dagster_run_id[:8]} in {report.seconds:.0f}s; uplift model: {uplift.get('status')}"
        + (
            f", {uplift.get('model_version') and 'v' + str(uplift['model_version'])} @{uplift.get('alias')} "
            f"({uplift.get('candidate')}), Qini {uplift.get('qini'):.5f} by {uplift.get('held_out')}"
            if uplift.get("status") == "trained"
            else f" ({uplift.get('reason')})"
        )
    )
    if uplift.get("status") != "trained":
        raise RuntimeError(
            f"no uplift model was trained after cycle 1 ({uplift}); the second cycle cannot target by uplift"
        )
    alias = uplift["alias"]
    if alias != "champion":
        # The gate kept targeting by risk; the uplift campaign shows what the refused version would have done.
        say(f"  the gate refused it ({uplift.get('reason')}): cycle 2 by uplift uses churn_uplift@{alias}")
    materialize_selection(
        settings,
        "key:retention_worklist",
        "campaign-scenario",
        log_level,
        asset_config=worklist_config(c2u, True, plan.control_share, alias),
    )
    list2r, list2u = _read_worklist(settings, c2r), _read_worklist(settings, c2u)
    churn_version = _champion_version(settings)
    targeting_version = str(uplift["model_version"])
    say(_worklist_line(list2u))
    say(_worklist_line(list2r) + " (the same budget by risk, for comparison)")

    # Measurement: the uplift world is the home's; the risk world is a copy of the same simulation.
    say(f"\n[3/4] {end}: both second campaigns have matured, each in its own copy of the same simulated world")
    actions2u = _contacts_from_worklist(plan.business, list2u, second)
    actions2r = _contacts_from_worklist(plan.business, list2r, second)
    world_u = land(end, pd.concat([actions1, actions2u], ignore_index=True), sources)
    # The whole graph but a new worklist: no third campaign is drawn up.
    run_id = materialize_selection(settings, "not key:retention_worklist", "campaign-scenario", log_level)
    say(f"  uplift world: run {run_id[:8]} (the whole graph but the worklist)")
    risk_home = home / "risk_world"
    if risk_home.exists():
        shutil.rmtree(risk_home)
    risk_settings = settings_for(risk_home, risk_home / "sources")
    world_r = land(end, pd.concat([actions1, actions2r], ignore_index=True), risk_home / "sources")
    # Both worlds share their past up to cycle 2's contacts, and so the scores drawn up before them,
    # which the effects are adjusted by.
    _copy_table(settings, risk_settings, SCORES_SCHEMA, HISTORY_TABLE)
    run_id = materialize_selection(
        risk_settings, f"({WAREHOUSE_SELECTION}) or key:campaign_effect", "campaign-scenario", log_level
    )
    say(f"  risk world: run {run_id[:8]} (sources, dbt and campaign_effect)")

    results = []
    for cycle, campaign, targeted_by, worklist, world, s, when in (
        (1, c1, RISK, list1, world_u, settings, first),
        (2, c2r, RISK, list2r, world_r, risk_settings, second),
        (2, c2u, UPLIFT, list2u, world_u, settings, second),
    ):
        measured = _measured(s, campaign)
        truth = _truth_at(world, when)
        treated = truth.reindex(worklist.loc[worklist["arm"] == TREATED, "customer_id"].astype(str))
        oracle_customers, oracle_mrr = _oracle(truth, measured.treated, policy)
        results.append(
            CampaignResult(
                cycle=cycle,
                targeted_by=targeted_by,
                effect=measured,
                true_saved_customers=float(treated["uplift_30d"].sum()),
                true_saved_mrr=float((treated["uplift_30d"] * treated["mrr"]).sum()),
                oracle_saved_customers=oracle_customers,
                oracle_saved_mrr=oracle_mrr,
                true_sleeping_dogs_treated=int((treated["segment"] == "sleeping_dog").sum()),
            )
        )
    out = CampaignReport(
        plan=dataclasses.asdict(plan),
        campaigns=results,
        uplift={
            "model_version": targeting_version,
            "alias": alias,
            "gate": uplift.get("reason"),
            "risk_qini_cycle_1": uplift.get("risk_qini"),
            "qini_cycle_1": uplift.get("qini"),
            **_qini_on(settings, targeting_version, churn_version, c2u, sources),
        },
        seconds=round(time.monotonic() - started, 1),
        home=str(home),
    )
    (home / "campaign_report.json").write_text(json.dumps(out.as_dict(), indent=2, default=str) + "\n")
    return out


def _worklist_line(worklist: pd.DataFrame) -> str:
    treated = worklist[worklist["arm"] == TREATED]
    return (
        f"  worklist {worklist['campaign'].iloc[0]} (by {worklist['targeted_by'].iloc[0]}): {len(treated):,} to contact, "
        f"{len(worklist) - len(treated):,} held out; expected benefit {treated['expected_benefit'].sum():,.0f}"
    )


def _interval(value, low, high, fmt: str) -> str:
    if value is None:
        return "not measured"
    return f"{value:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def summary(report: CampaignReport) -> str:
    """The scenario's figures: each campaign measured against its controls with 90% intervals, beside
    what it truly saved and the oracle's best with as many contacts; the ratios the targets name."""
    lines = ["Campaigns, each measured against its controls (90% bootstrap intervals)"]
    for c in report.campaigns:
        e = c.effect
        roi = "n/a" if e.roi is None else f"{e.roi:+.2f}"
        lines += [
            f"  cycle {c.cycle} {e.campaign} (by {c.targeted_by}): {e.treated:,} contacted, {e.control:,} held out; "
            f"churn {_pct(e.churn_treated)} treated against {_pct(e.churn_control)} control; {e.verdict}",
            f"    saved customers {_interval(e.saved_customers, e.saved_customers_low, e.saved_customers_high, ',.1f')}; "
            f"saved MRR {_interval(e.saved_mrr, e.saved_mrr_low, e.saved_mrr_high, ',.0f')}; cost {e.cost:,.0f}; ROI {roi}",
            f"    {_adjustment(e)}",
            f"    truly saved (ground truth): {c.true_saved_customers:,.1f} customers, {c.true_saved_mrr:,.0f} MRR; "
            f"sleeping dogs contacted: {c.true_sleeping_dogs_treated:,}",
            f"    the oracle's best with {e.treated:,} contacts: {c.oracle_saved_customers:,.1f} customers, "
            f"{c.oracle_saved_mrr:,.0f} MRR",
        ]
    by_risk = next(c for c in report.campaigns if c.cycle == 2 and c.targeted_by == RISK)
    by_uplift = next(c for c in report.campaigns if c.cycle == 2 and c.targeted_by == UPLIFT)
    lines.append("Cycle 2, uplift against risk with the same budget")
    lines.append(
        f"  measured saved MRR: uplift / risk {_ratio(by_uplift.effect.saved_mrr, by_risk.effect.saved_mrr)}, "
        f"uplift / oracle {_ratio(by_uplift.effect.saved_mrr, by_uplift.oracle_saved_mrr)}"
    )
    lines.append(
        f"  truly saved MRR: uplift / risk {_ratio(by_uplift.true_saved_mrr, by_risk.true_saved_mrr)}, "
        f"uplift / oracle {_ratio(by_uplift.true_saved_mrr, by_uplift.oracle_saved_mrr)}"
    )
    u = report.uplift
    lines.append(f"  uplift model v{u['model_version']} (@{u['alias']}; the gate after cycle 1: {u.get('gate')})")
    lines.append(
        f"  on the {u['contacts']:,} matured contacts it chose in cycle 2: Qini {u['qini']:.5f}, ranking them by "
        f"risk {u['risk_qini']:.5f}, the true uplift's {u.get('oracle_qini', float('nan')):.5f}; "
        f"model / oracle {u.get('qini_over_oracle', float('nan')):.2f}"
    )
    return "\n".join(lines)


def _adjustment(e: CampaignEffect) -> str:
    if e.effect is None:
        return "not measured yet"
    if e.adjusted_by is None:
        return "unadjusted: not every contact has a score from before it"
    return (
        f"adjusted by the churn score before the contact: intervals {e.interval_vs_unadjusted:.0%} (customers) "
        f"and {e.mrr_interval_vs_unadjusted:.0%} (MRR) of the unadjusted widths"
    )


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _ratio(a, b) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"
