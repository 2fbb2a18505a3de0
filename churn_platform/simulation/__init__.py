"""The built-in example business: a seeded simulation of a subscription company's sources
(with known true churn probabilities and injected faults), and the oracle that measures a
model against that truth.

Nothing in the platform imports this package: the drivers (``churn_platform.apps``) land the
simulation as source files when no sources are configured, and give the model asset its ground
truth through an optional resource."""
