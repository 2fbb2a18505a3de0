-- Subscriptions as loaded, one row per subscription (optional source).
{{ config(enabled=has_source('subscriptions')) }}
select
    subscription_id,
    customer_id,
    started_at,
    ended_at,
    mrr,
    plan,
    quantity,
    billing_period,
    discount
from {{ source('raw', 'subscriptions') }}
