-- Rates are shares and retention is a non-negative ratio; churned customers never exceed the base.
select *
from {{ ref('business_metrics_monthly') }}
where
    churn_rate < 0 or churn_rate > 1
    or mrr_churn_rate < 0 or mrr_churn_rate > 1
    or net_revenue_retention < 0
    or churned_customers > customers_at_start
