"""The rollout scenario: a new version served beside the champion before it replaces it, on simulated
time, under steady load.

``run_rollout_scenario`` drives the real platform (Dagster runs, dbt, the MLflow registry, Ray Serve
over HTTP) through four month starts of a simulated business whose declaration asks for rollouts
(``policy.rollout: shadow``):

1. **First month** — the whole pipeline; its first version becomes champion and is served. A load
   generator starts: clients scoring the served snapshot's customers by id, round after round.
2. **Second month** — the pipeline retrains; the new version passes the gate and is staged as
   ``@rollout`` in shadow: it scores a share of the requests and is only logged. An operator then
   turns it into a canary (``registry.change_rollout``): it answers a share of the customers.
3. **Third month** — the second month's outcomes have matured: ``online_comparison`` compares both
   versions on the same customers and promotes the new one. A broken version (trained on shuffled
   labels, as a pipeline that mislabels its rows would train it) is then put in canary by hand.
4. **Fourth month** — its outcomes have matured too: ``online_comparison`` rolls it back.

Every answer the load generator gets is counted: the scenario fails if any request failed, or if a
decision is not the one its version deserves.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import itertools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from churn_platform.apps.pipeline import WAREHOUSE_SELECTION
from churn_platform.apps.simulated_time import SimulatedBusiness
from churn_platform.settings import REGISTERED_MODEL_NAME, Settings

ONLINE_SELECTION = f"({WAREHOUSE_SELECTION}) or key:prediction_log or key:churn_outcomes or key:online_comparison"
"""What a month's new data needs for the online comparison: the warehouse, the prediction log, the
outcomes and the comparison (no retraining: a rollout is in progress)."""


@dataclasses.dataclass(frozen=True)
class RolloutPlan(SimulatedBusiness):
    """The scenario's settings: the simulated business, the rollout's shares and the load."""

    shadow_share: float = 0.5
    """The share of requests the staged version also scores in shadow."""
    canary_share: float = 0.3
    """The share of customers a canary answers."""
    min_matured: int = 200
    """Live scores with matured outcomes a rollout needs before it is decided (policy.rollout_min_matured)."""
    clients: int = 2
    batch: int = 25
    """Customers per request."""
    pause_s: float = 0.1
    """Each client's pause between requests."""

    def __post_init__(self) -> None:
        from churn_platform.ml.gate import check_rollout

        check_rollout("shadow", self.shadow_share)
        check_rollout("canary", self.canary_share)
        if self.customers < 1_000:
            raise ValueError(
                f"the rollout scenario needs at least 1,000 customers to compare versions, got {self.customers}"
            )
        if self.min_matured < 50:
            raise ValueError(f"min_matured must be at least 50, got {self.min_matured}")
        if not 1 <= self.clients <= 16 or not 1 <= self.batch <= 500:
            raise ValueError("the load generator takes 1 to 16 clients and 1 to 500 customers per request")

    def month_starts(self, label_horizon_days: int) -> tuple[dt.date, dt.date, dt.date, dt.date]:
        """The window's last four month starts. The data of each phase ends on the eve of one; the
        outcomes of a month's scores have matured by the next when the month is at least the label
        horizon long."""
        starts = tuple(self.last_month_starts(4))
        for a, b in itertools.pairwise(starts[1:]):
            if (b - a).days < label_horizon_days:
                raise ValueError(
                    f"the month from {a} is {(b - a).days} days, shorter than the label horizon "
                    f"({label_horizon_days} days): its scores would not have matured by {b}; choose other --days"
                )
        if (starts[0] - self.start).days < 240:
            raise ValueError(
                f"the rollout scenario needs at least 240 days before its first month, got --days {self.days}"
            )
        return starts  # type: ignore[return-value]


class LoadGenerator:
    """Clients scoring customers by id (``POST /v1/predict/customers``) in batches, round after round,
    until stopped; every answer is counted by the version and arm that gave it, every failure kept."""

    def __init__(self, url: str, clients: int = 2, batch: int = 25, pause_s: float = 0.1) -> None:
        self.url, self.batch, self.pause_s = url, batch, pause_s
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._position = 0
        self._numbers = itertools.count()
        self.phase = "start"
        self.requests = 0
        self.scored = 0
        self.failures: list[dict[str, Any]] = []
        self.answers: collections.Counter = collections.Counter()
        """(phase, model_version, arm) → customers answered."""
        self._answered_by: dict[tuple[str, str], set[tuple[str, str]]] = collections.defaultdict(set)
        """(phase, customer) → every (model_version, arm) that answered the customer in the phase."""
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, name=f"load-{k}", daemon=True) for k in range(clients)]

    def use(self, ids: list[str] | None, phase: str) -> None:
        """Score these customers (None: the same ones) from now on, counting answers under ``phase``."""
        with self._lock:
            if ids is not None:
                self._ids, self._position = list(ids), 0
            self.phase = phase

    def start(self) -> LoadGenerator:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def _next(self) -> tuple[list[str], str, str]:
        with self._lock:
            if not self._ids:
                return [], self.phase, ""
            n = len(self._ids)
            batch = [self._ids[(self._position + k) % n] for k in range(min(self.batch, n))]
            self._position = (self._position + len(batch)) % n
            return batch, self.phase, f"rollout-{next(self._numbers)}"

    def _client(self) -> None:
        import httpx

        with httpx.Client(timeout=60) as session:
            while not self._stop.is_set():
                ids, phase, request_id = self._next()
                if not ids:
                    time.sleep(0.1)
                    continue
                try:
                    r = session.post(
                        f"{self.url}/v1/predict/customers",
                        json={"customer_ids": ids},
                        headers={"X-Request-ID": request_id},
                    )
                except httpx.HTTPError as exc:
                    self._failed(phase, None, f"{type(exc).__name__}: {exc}")
                else:
                    if r.status_code == 200:
                        self._answered(phase, ids, [x for x in r.json()["results"] if x["found"]])
                    else:
                        self._failed(phase, r.status_code, r.text[:300])
                self._stop.wait(self.pause_s)

    def _answered(self, phase: str, ids: list[str], found: list[dict]) -> None:
        with self._lock:
            self.requests += 1
            self.scored += len(ids)
            self.answers.update((phase, x["model_version"], x["arm"]) for x in found)
            for x in found:
                self._answered_by[phase, x["customer_id"]].add((x["model_version"], x["arm"]))

    def _failed(self, phase: str, status: int | None, detail: str) -> None:
        with self._lock:
            self.requests += 1
            self.failures.append({"phase": phase, "status": status, "detail": detail})

    def rounds(self, count: float, timeout_s: float = 600.0) -> None:
        """Wait until ``count`` rounds over the current customers have been scored."""
        with self._lock:
            target = self.scored + count * max(len(self._ids), 1)
        deadline = time.monotonic() + timeout_s
        while self.scored < target:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the load generator scored {self.scored:,} of {target:,.0f} customers in {timeout_s:.0f}s; "
                    f"{len(self.failures)} requests failed, the last: {self.failures[-1] if self.failures else 'none'}"
                )
            time.sleep(0.2)

    def switched(self, phase: str) -> int:
        """Customers answered by more than one version or arm in ``phase``."""
        return sum(len(arms) > 1 for (p, _), arms in self._answered_by.items() if p == phase)

    def by_arm(self, phase: str) -> dict[str, int]:
        """Customers answered in ``phase`` by ``v<version> <arm>``."""
        return {f"v{v} {a}": n for (p, v, a), n in sorted(self.answers.items()) if p == phase}


@dataclasses.dataclass
class RolloutStep:
    phase: str
    data_until: str
    """The simulated day the phase's data reaches."""
    version: str
    """The version the phase is about."""
    what: str
    """What happened, in a sentence."""
    answers: dict[str, int] = dataclasses.field(default_factory=dict)
    """Customers answered while the phase lasted, by ``v<version> <arm>``."""
    switched: int = 0
    """Customers answered by more than one version or arm within the phase (a stable phase has none)."""


@dataclasses.dataclass
class RolloutReport:
    plan: dict[str, Any]
    steps: list[RolloutStep]
    requests: int
    failed_requests: int
    failures: list[dict[str, Any]]
    answers: dict[str, dict[str, int]]
    """Customers answered in every phase, the transitions (a run deciding a version) included."""
    comparisons: list[dict[str, Any]]
    seconds: float
    home: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _declaration_with_rollout(folder: Path, plan: RolloutPlan) -> None:
    """The business's declaration beside its sources, with the rollout policy: a version that passes
    the gate is served in shadow first and decided by its live comparison."""
    path = folder / "churn_platform.yaml"
    text = path.read_text()
    if "\npolicy:" in text:
        raise RuntimeError(f"{path} already has a policy section")
    path.write_text(
        text.rstrip("\n")
        + "\npolicy:\n"
        + "  rollout: shadow\n"
        + f"  rollout_share: {plan.shadow_share:g}\n"
        + f"  rollout_min_matured: {plan.min_matured}\n"
    )


def _scoring_ids(settings: Settings) -> tuple[list[str], dt.date]:
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        frame = con.execute("select customer_id, snapshot_date from marts.scoring_features order by customer_id").df()
    return frame["customer_id"].astype(str).tolist(), pd.Timestamp(frame["snapshot_date"].max()).date()


def _wait(predicate: Callable[[], Any], what: str, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _model(url: str) -> dict[str, Any]:
    import httpx

    return httpx.get(f"{url}/v1/model", timeout=30).json()


def _served_as(url: str, version: str, challenger: tuple[str, str, float] | None) -> bool:
    """Whether the API serves ``version`` as champion with this challenger (version, mode, share) loaded."""
    info = _model(url)
    shown = info.get("challenger")
    if challenger is None:
        return info["version"] == version and shown is None
    return (
        info["version"] == version
        and shown is not None
        and shown["loaded"]
        and (shown["version"], shown["mode"], shown["share"]) == challenger
    )


def _registry_state(settings: Settings, version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    from churn_platform.ml.gate import ROLLOUT_DECISION_TAG, ROLLOUT_REASON_TAG
    from churn_platform.ml.registry import MLflowLocation

    MLflowLocation(settings.mlflow_tracking_uri, "").activate_registry()
    mv = MlflowClient().get_model_version(REGISTERED_MODEL_NAME, version)
    tags = mv.tags or {}
    return {
        "aliases": ", ".join(mv.aliases or []) or "none",
        "decision": tags.get(ROLLOUT_DECISION_TAG, ""),
        "reason": tags.get(ROLLOUT_REASON_TAG, ""),
    }


def train_broken_version(settings: Settings, seed: int) -> tuple[str, float]:
    """Train and register a churn model on the current training set with its labels shuffled within
    each snapshot (what a pipeline that mislabels its rows would train): the platform's candidates,
    selection and calibration, logged and registered like any version, with no alias. Returns the
    version and its holdout ROC-AUC (near 0.5; the gate would refuse it)."""
    import numpy as np

    from churn_platform.apps.location import find_declaration
    from churn_platform.business.catalogue import ID_COLUMN, LABEL_COLUMN, TIME_COLUMN
    from churn_platform.defs import warehouse_for
    from churn_platform.defs.resources import BusinessResource
    from churn_platform.ml.registry import MLflowLocation, log_and_register
    from churn_platform.ml.training import calibrate_best, select_best, train_candidates
    from churn_platform.settings import EXPERIMENT_NAME

    warehouse = warehouse_for(settings).process_config_and_initialize()
    # In a fixed order, so that the same seed shuffles the same labels onto the same rows.
    data = warehouse.read_table("marts", "training_set").sort_values([TIME_COLUMN, ID_COLUMN], ignore_index=True)
    catalogue = BusinessResource.of(find_declaration(settings)).catalogue(warehouse)
    rng = np.random.default_rng(seed)
    labels = data[LABEL_COLUMN].to_numpy().copy()
    for _, index in data.groupby(TIME_COLUMN).indices.items():
        labels[index] = rng.permutation(labels[index])
    data[LABEL_COLUMN] = labels
    split, results = train_candidates(data, catalogue, seed=seed)
    selected = calibrate_best(split, select_best(results), catalogue)
    registered = log_and_register(
        MLflowLocation(settings.mlflow_tracking_uri, EXPERIMENT_NAME, settings.mlflow_artifact_location),
        split,
        results,
        selected,
        catalogue,
        registered_model_name=REGISTERED_MODEL_NAME,
        extra_tags={"churn_platform.trained_by": "rollout scenario: labels shuffled within each snapshot"},
    )
    return registered.version, float(registered.metrics["roc_auc"])


def run_rollout_scenario(
    plan: RolloutPlan,
    home: Path,
    port: int = 8000,
    say: Callable[[str], None] = print,
    log_level: str = "WARNING",
) -> RolloutReport:
    from churn_platform.apps import serve_local as runner
    from churn_platform.apps.pipeline import materialize_selection, run_pipeline
    from churn_platform.ml.gate import ROLLOUT
    from churn_platform.ml.registry import MLflowLocation, change_rollout, stage_rollout
    from churn_platform.simulation import retention

    started = time.monotonic()
    horizon = retention.declaration_of(plan.business).label.horizon_days
    first, second, third, end = plan.month_starts(horizon)
    sources = home / "sources"
    settings = Settings(home=home, sources=str(sources), days=plan.days, business=plan.business)
    location = MLflowLocation(settings.mlflow_tracking_uri, "")
    steps: list[RolloutStep] = []

    def land(until: dt.date) -> None:
        plan.land(until, sources)
        _declaration_with_rollout(sources, plan)

    def decide(
        load: LoadGenerator, url: str, until: dt.date, version: str, expected: str, champion: str
    ) -> tuple[dict, list[str], dt.date]:
        """A month more of data and the online comparison, under load: ``version``'s rollout must end
        ``expected`` (promoted, rolled back) and ``champion`` then answer every customer alone. Returns
        the decision, and the new snapshot's customers and day, which the load then scores."""
        land(until)
        load.use(None, f"deciding v{version}")
        run_id = materialize_selection(settings, ONLINE_SELECTION, "rollout-scenario", log_level)
        state = _registry_state(settings, version)
        say(f"  run {run_id[:8]}: v{version} {state['decision'] or 'not decided'}: {state['reason']}")
        if state["decision"] != expected:
            raise RuntimeError(f"version {version} should have been {expected} on its live comparison: {state}")
        _wait(lambda: _served_as(url, champion, None), f"v{champion} alone, v{version} {expected}")
        ids, as_of = _scoring_ids(settings)
        load.use(ids, expected)
        return state, ids, as_of

    def stable(load: LoadGenerator, phase: str, until: dt.date, version: str, what: str, rounds: float) -> RolloutStep:
        """Score the customers ``rounds`` times in a phase where nothing changes; record it."""
        load.rounds(rounds)
        step = RolloutStep(
            phase,
            str(until - dt.timedelta(days=1)),
            version,
            what,
            load.by_arm(phase),
            load.switched(phase),
        )
        steps.append(step)
        say(f"  {what}: {_answers(step)}")
        return step

    # 1. The first version, served under load.
    say(
        f"\n[1/6] {first}: the {plan.business} business ({plan.customers:,} customers) as known on "
        f"{first - dt.timedelta(days=1)}, declared with policy.rollout: shadow ({plan.shadow_share:.0%} of requests)"
    )
    land(first)
    report = run_pipeline(settings, log_level=log_level)
    v1 = str(report.model["model_version"])
    say(f"  run {report.dagster_run_id[:8]} in {report.seconds:.0f}s: version {v1} @{report.model['alias']}")
    if report.model["alias"] != "champion":
        raise RuntimeError(f"the first version should become champion, it is @{report.model['alias']}")

    with runner.serving(settings, port=port) as url:
        load = LoadGenerator(url, plan.clients, plan.batch, plan.pause_s).start()
        try:
            ids, as_of = _scoring_ids(settings)
            load.use(ids, "champion")
            stable(
                load,
                "champion",
                first,
                v1,
                f"v{v1} served at {url}; {plan.clients} clients score the {len(ids):,} customers of {as_of} by id, "
                f"{plan.batch} per request",
                1,
            )

            # 2. A retrained version staged in shadow, then widened to a canary.
            say(f"\n[2/6] {second}: a month more of data; the pipeline retrains under load")
            land(second)
            load.use(None, "retraining")
            report = run_pipeline(settings, log_level=log_level)
            v2, alias = str(report.model["model_version"]), report.model["alias"]
            say(
                f"  run {report.dagster_run_id[:8]} in {report.seconds:.0f}s: version {v2} @{alias} "
                f"({report.model.get('gate_reason', '')})"
            )
            if alias != ROLLOUT:
                raise RuntimeError(
                    f"the retrained version {v2} did not pass the gate, so there is nothing to roll out (it is @{alias}: "
                    f"{report.model.get('gate_reason', '')}); on a business this small the holdouts are noisy: try "
                    "more --customers or another --seed"
                )
            _wait(lambda: _served_as(url, v1, (v2, "shadow", plan.shadow_share)), f"v{v2} in shadow beside v{v1}")
            ids, as_of = _scoring_ids(settings)
            load.use(ids, "shadow")
            stable(
                load,
                "shadow",
                second,
                v2,
                f"the API follows @{ROLLOUT}: v{v2} also scores {plan.shadow_share:.0%} of the requests, logged only, "
                f"and v{v1} answers them all",
                2,
            )
            change_rollout(location, REGISTERED_MODEL_NAME, "canary", plan.canary_share)
            _wait(lambda: _served_as(url, v1, (v2, "canary", plan.canary_share)), f"v{v2} as a canary")
            load.use(ids, "canary")
            stable(
                load,
                "canary",
                second,
                v2,
                f"widened (churn-platform rollout --mode canary --share {plan.canary_share:g}): v{v2} answers "
                f"{plan.canary_share:.0%} of the customers, each always by the same version",
                2,
            )

            # 3. Its outcomes matured: compared online and promoted; then a broken version in canary.
            say(f"\n[3/6] {third}: the scores of {as_of} have matured; online_comparison decides v{v2}")
            state, ids, as_of = decide(load, url, third, v2, "promoted", v2)
            stable(load, "promoted", third, v2, f"v{v2} promoted: {state['reason']}; every customer answered by it", 1)

            say("\n[4/6] a broken version (labels shuffled) is registered and put in canary by hand")
            bad, bad_auc = train_broken_version(settings, plan.seed)
            stage_rollout(
                location,
                REGISTERED_MODEL_NAME,
                bad,
                "canary",
                plan.canary_share,
                "rollout scenario: a version trained on shuffled labels, put in canary to be caught online",
            )
            _wait(lambda: _served_as(url, v2, (bad, "canary", plan.canary_share)), f"v{bad} as a canary")
            load.use(ids, "bad canary")
            stable(
                load,
                "bad canary",
                third,
                bad,
                f"v{bad} (holdout ROC-AUC {bad_auc:.3f}: the gate would refuse it; churn-platform rollout --version "
                f"{bad} --mode canary --share {plan.canary_share:g}) answers {plan.canary_share:.0%} of the customers",
                2,
            )

            # 4. Its outcomes matured: rolled back.
            say(f"\n[5/6] {end}: the scores of {as_of} have matured; online_comparison decides v{bad}")
            state, _, _ = decide(load, url, end, bad, "rolled back", v2)
            stable(
                load,
                "rolled back",
                end,
                bad,
                f"v{bad} rolled back (now @{state['aliases']}): {state['reason']}; every customer answered by v{v2}",
                1,
            )
        finally:
            load.stop()

    from churn_platform.defs import warehouse_for

    table = warehouse_for(settings).process_config_and_initialize().read_table("monitoring", "online_comparison")
    phases = list(dict.fromkeys(p for p, _, _ in load.answers))
    out = RolloutReport(
        plan=dataclasses.asdict(plan),
        steps=steps,
        requests=load.requests,
        failed_requests=len(load.failures),
        failures=load.failures[:20],
        answers={p: load.by_arm(p) for p in phases},
        comparisons=json.loads(table.to_json(orient="records")),
        seconds=round(time.monotonic() - started, 1),
        home=str(home),
    )
    (home / "rollout_report.json").write_text(json.dumps(out.as_dict(), indent=2, default=str) + "\n")
    return out


def _answers(step: RolloutStep) -> str:
    answered = ", ".join(f"{k} {n:,}" for k, n in step.answers.items()) or "none"
    return f"{answered} customers answered" + (f"; {step.switched} switched version" if step.switched else "")


def summary(report: RolloutReport) -> str:
    """The scenario's figures: the load and its failures, each phase's answers, the decisions and
    the online comparisons they were made on."""
    lines = [
        f"Rollouts under load: {report.requests:,} requests, {report.failed_requests} failed",
    ]
    for step in report.steps:
        lines.append(f"  {step.phase} (data until {step.data_until}): {_answers(step)}")
    lines.append("Online comparisons, each challenger against the champion on the same customers")
    for c in report.comparisons:
        judged = (
            f"ROC-AUC {c['roc_auc_challenger']:.3f} against {c['roc_auc_champion']:.3f} on {c['labelled_pairs']:,} "
            "matured"
            if c.get("roc_auc_challenger") is not None
            else f"{c['labelled_pairs']:,} matured"
        )
        lines.append(
            f"  v{c['challenger_version']} ({c['mode']}) against v{c['champion_version']}: {c['pairs']:,} pairs, "
            f"rank correlation {c['rank_correlation']:.3f}, top-decile agreement {c['top_decile_agreement']:.0%}; {judged}"
        )
    decided = [s for s in report.steps if s.phase in ("promoted", "rolled back")]
    lines.append("Decisions: " + "; ".join(f"v{s.version} {s.phase}" for s in decided))
    return "\n".join(lines)
