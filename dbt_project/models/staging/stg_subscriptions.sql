-- Subscriptions as loaded, typed, one row per subscription (optional source).
{{ config(enabled=has_source('subscriptions')) }}
select
    cast(subscription_id as varchar) as subscription_id,
    cast(customer_id as {{ customer_id_type() }}) as customer_id,
    cast(started_at as timestamp) as started_at,
    cast(ended_at as timestamp) as ended_at,
    cast(mrr as double precision) as mrr,
    cast(plan as varchar) as plan,
    cast(quantity as double precision) as quantity,
    cast(billing_period as varchar) as billing_period,
    cast(discount as double precision) as discount
from {{ source('raw', 'subscriptions') }}
