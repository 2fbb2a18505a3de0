-- Each retention contact with its outcome: did the customer cancel within the label horizon after
-- the contact (empty until that horizon has been observed in the usage data), and the customer's
-- revenue in the last complete month before it.
{{ config(enabled=has_source('actions')) }}
{%- set horizon = business()['label_horizon_days'] %}
{%- set revenue = has_source('subscriptions') or has_source('invoices') %}
with churn as (
    select
        customer_id,
        min(churn_date) as churn_date
    from {{ ref('int_customer_churn') }}
    where churn_date is not null
    group by customer_id
),

observed as (
    -- The last day the usage data covers: a horizon ending on it has been observed.
    select max(event_date) as data_end
    from {{ ref('int_daily_usage') }}
),

judged as (
    select
        a.action_id,
        a.campaign,
        a.customer_id,
        a.contacted_at,
        a.contact_date,
        a.arm,
        a.offer,
        a.cost,
        c.churn_date,
        {%- if revenue %}
        coalesce(cast(r.mrr as double precision), 0.0) as mrr,
        {%- else %}
        cast(0.0 as double precision) as mrr,
        {%- endif %}
        coalesce(a.contact_date + {{ horizon }} <= o.data_end + 1, false) as matured,
        coalesce(c.churn_date >= a.contact_date and c.churn_date < a.contact_date + {{ horizon }}, false)
            as churned_within_horizon
    from {{ ref('stg_actions') }} as a
    cross join observed as o
    left join churn as c on a.customer_id = c.customer_id
    {%- if revenue %}
    left join {{ ref('int_monthly_mrr') }} as r
        on
            a.customer_id = r.customer_id
            and r.month = cast(date_trunc('month', a.contact_date) - interval '1 month' as date)
    {%- endif %}
)

select
    action_id,
    campaign,
    customer_id,
    contacted_at,
    contact_date,
    arm,
    offer,
    cost,
    mrr,
    matured,
    case when matured then churned_within_horizon end as churned,
    churn_date
from judged
