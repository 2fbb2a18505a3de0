-- One PostgreSQL server, three databases: the warehouse (dbt-postgres), the Dagster
-- instance and the MLflow backend store. Run once by the postgres image on first start.
CREATE DATABASE churn_platform;
CREATE DATABASE dagster;
CREATE DATABASE mlflow;
