"""Domain policy: the thresholds that decide what the platform does, kept once.

The promotion gate, the asset checks, the retrain sensor and batch scoring read these; each
can still be changed per run through the Dagster config of the asset that uses it."""

from __future__ import annotations

ROC_AUC_FLOOR = 0.70
"""The lowest holdout ROC-AUC a model may be promoted with, and the matured ROC-AUC below which the
champion is failing (the performance check errors and the retrain sensor asks for a new model)."""

GATE_TOLERANCE = 0.01
"""How much lower than the champion's (on the same holdout rows) a new version's ROC-AUC may be
and still be promoted."""

SURVIVAL_CALIBRATION_TOLERANCE = 0.02
"""The calibration error at each horizon (30, 60, 90 days) above which the survival model's check warns."""

DRIFT_THRESHOLD = 0.3
"""The share of drifted features above which the drift check warns and the sensor retrains
(``CHURN_PLATFORM_DRIFT_THRESHOLD`` overrides it)."""

ATTRIBUTION_DRIFT_THRESHOLD = 0.1
"""The total variation distance between the model's attribution shares on the training rows and on
the latest rows above which what the model leans on has changed (``segment_drift_report`` warns)."""
ATTRIBUTION_SAMPLE_ROWS = 2_000
"""The rows of each side whose contributions are computed for the attribution drift (seeded sample)."""

DRIFT_SAMPLE_ROWS = 100_000
"""The most rows of each side (the training set, the latest features) the drift report compares: a
larger side is compared through a seeded random sample of this many rows. Evidently's cost grows
with the rows (about 77 s for 1.2 million reference rows against 100,000 current ones on 2 cores),
while its tests above 1,000 rows are distances (Wasserstein, Jensen-Shannon) that a sample of this
size estimates to well within their 0.1 threshold."""

MAX_QUARANTINE_SHARE = 0.05
"""The share of a source's received rows that may be quarantined before its blocking check fails."""

HIGH_RISK_SHARE = 0.10
"""The top share of scored customers, by probability, in risk tier ``high``."""

MEDIUM_RISK_SHARE = 0.20
"""The next share, in tier ``medium``; the rest are ``low``."""
