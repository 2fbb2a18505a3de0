"""The entry points: the ``churn-platform`` command and what it drives (an in-process run of
the graph, the closed-loop demo, launching on a deployment, the dbt docs site, the Prometheus
exporter, the local Ray Serve runner, the development supervisor, the README's generated parts).

Drivers import both the Dagster definitions (``churn_platform.defs``) and the core packages;
nothing imports a driver."""
