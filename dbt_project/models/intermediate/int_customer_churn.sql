-- The observed cancellation of each customer, for labels: churn_date is the day it took effect,
-- churn_recorded_at when the data first showed it.
{%- if business()['cancellation'] == 'subscriptions' %}
-- Taken from subscriptions: a customer has churned on the end of their last subscription when
-- none runs after it; the end is known when it happens.
with ends as (
    select
        a.customer_id,
        max(s.started_at) as last_start,
        max(coalesce(s.ended_at, cast('9999-12-31' as timestamp))) as last_end
    from (select distinct customer_id from {{ ref('stg_accounts') }}) as a
    left join {{ ref('stg_subscriptions') }} as s on s.customer_id = a.customer_id
    group by a.customer_id
)

select
    customer_id,
    case when last_end < cast('9999-12-31' as timestamp) then cast(last_end as date) end as churn_date,
    case when last_end < cast('9999-12-31' as timestamp) then last_end end as churn_recorded_at
from ends
{%- else %}
-- Taken from the accounts' cancellation column: the first cancellation recorded, known from the
-- version that first shows it (or, without versions, when it took effect).
select
    customer_id,
    cast(min(cancelled_at) as date) as churn_date,
    {%- if business()['has_versions'] %}
    min(case when cancelled_at is not null then valid_from end) as churn_recorded_at
    {%- else %}
    min(cancelled_at) as churn_recorded_at
    {%- endif %}
from {{ ref('int_account_versions') }}
group by customer_id
{%- endif %}
